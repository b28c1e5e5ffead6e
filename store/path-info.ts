/**
 * What the store knows about a valid path: Nix's ValidPathInfo (protocol/README.md
 * §6.1), with the path itself. The protocol layer encodes it per version; the store
 * keeps it in records (records.ts) and the index (path-index.ts).
 */
import type { Hash } from '../nix/hash.js';
import { STORE_DIR } from '../nix/store-path.js';

export interface PathInfo {
  /** Logical store path, `/nix/store/<hash>-<name>`. */
  readonly path: string;
  /** The .drv that produced it, if known. */
  readonly deriver: string | undefined;
  /** sha256 of the NAR serialisation. */
  readonly narHash: Hash;
  readonly narSize: number;
  /** Full store paths, sorted, unique; may include `path` itself (self-reference). */
  readonly references: readonly string[];
  /** `<keyName>:<base64 signature>`, see signatures.ts. */
  readonly sigs: readonly string[];
  /** Printed content address (`fixed:r:sha256:<nix32>`, `text:sha256:…`), if any. */
  readonly ca: string | undefined;
  /** Unix seconds. */
  readonly registrationTime: number;
  /** Built here (trusted origin) rather than uploaded. */
  readonly ultimate: boolean;
}

/** Sorted by base name, like Nix's StorePathSet; duplicates dropped. */
export function sortPaths(paths: Iterable<string>): string[] {
  return [...new Set(paths)].sort();
}

/**
 * The string Nix signs (`ValidPathInfo::fingerprint`):
 * `1;<path>;<narHash sha256:nix32>;<narSize>;<refs joined by ",">`.
 */
export function fingerprint(
  info: Pick<PathInfo, 'path' | 'narHash' | 'narSize' | 'references'>,
  storeDir = STORE_DIR,
): string {
  if (!info.path.startsWith(`${storeDir}/`)) throw new Error(`fingerprint of a path outside ${storeDir}`);
  return `1;${info.path};${info.narHash.toTyped('base32')};${info.narSize};${sortPaths(info.references).join(',')}`;
}
