/**
 * Path infos between the protocols' wire form (ValidPathInfo: narHash in base16, "" for
 * absent) and the store's (PathInfo, NarClaim). Worker and serve uploads share `toClaim`.
 */
import { parseHash } from '../nix/hash.js';
import type { ValidPathInfo } from '../nix/protocol/types.js';
import type { PathInfo } from '../store/path-info.js';
import type { NarClaim } from '../store/staging.js';

export function toWireInfo(info: PathInfo): ValidPathInfo {
  return {
    path: info.path,
    deriver: info.deriver ?? '',
    narHash: info.narHash.toBase16(),
    references: [...info.references],
    registrationTime: info.registrationTime,
    narSize: info.narSize,
    ultimate: info.ultimate,
    sigs: [...info.sigs],
    ca: info.ca ?? '',
  };
}

export function toClaim(info: Omit<ValidPathInfo, 'registrationTime'>): NarClaim {
  return {
    path: info.path,
    deriver: info.deriver === '' ? undefined : info.deriver,
    narHash: parseHash(info.narHash, 'sha256'),
    narSize: info.narSize,
    references: info.references,
    sigs: info.sigs,
    ca: info.ca === '' ? undefined : info.ca,
    ultimate: false,
  };
}
