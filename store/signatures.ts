/**
 * Nix path signatures (`crypto.cc`, protocol/README.md §11 "Signatures"): Ed25519 over
 * the ASCII fingerprint of a path info (`fingerprint` in path-info.ts).
 *   public key  `<name>:<base64 of 32 bytes>`   (trusted-public-keys)
 *   secret key  `<name>:<base64 of 64 bytes>`   (libsodium: seed then public key)
 *   signature   `<name>:<base64 of 64 bytes>`   (the entries of `sigs`)
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { StoreError, StoreErrorCode } from './errors.js';
import { fingerprint, type PathInfo } from './path-info.js';

export interface PublicKey {
  readonly name: string;
  readonly key: KeyObject;
}

export interface SecretKey {
  readonly name: string;
  readonly key: KeyObject;
}

function splitNamed(text: string, what: string, size: number): { name: string; bytes: Buffer } {
  const colon = text.indexOf(':');
  const bad = (why: string): StoreError =>
    new StoreError(StoreErrorCode.KEY_INVALID, `${what} '${text}' is corrupt: ${why}`, { what });
  if (colon <= 0) throw bad('expected <name>:<base64>');
  const b64 = text.slice(colon + 1);
  const bytes = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || bytes.length !== size) {
    throw bad(`expected ${size} base64-encoded bytes`);
  }
  return { name: text.slice(0, colon), bytes };
}

const b64url = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = splitNamed(text, 'public key', 32);
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(bytes) }, format: 'jwk' });
  return { name, key };
}

export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = splitNamed(text, 'secret key', 64);
  const key = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: b64url(bytes.subarray(0, 32)), x: b64url(bytes.subarray(32)) },
    format: 'jwk',
  });
  return { name, key };
}

/** `<name>:<base64 signature>` of `message` (Nix's `SecretKey::signDetached`). */
export function signDetached(message: string, secret: SecretKey): string {
  return `${secret.name}:${sign(null, Buffer.from(message), secret.key).toString('base64')}`;
}

/**
 * Whether `sig` (`<name>:<base64>`) is a valid signature of `message` by the key of that
 * name among `keys`. Unknown key names and malformed signatures are simply not valid.
 */
export function verifyDetached(message: string, sig: string, keys: readonly PublicKey[]): boolean {
  const colon = sig.indexOf(':');
  if (colon <= 0) return false;
  const name = sig.slice(0, colon);
  const bytes = Buffer.from(sig.slice(colon + 1), 'base64');
  if (bytes.length !== 64) return false;
  return keys.some((k) => k.name === name && verify(null, Buffer.from(message), k.key, bytes));
}

/** The signature a secret key gives a path info. */
export function signPathInfo(
  info: Pick<PathInfo, 'path' | 'narHash' | 'narSize' | 'references'>,
  secret: SecretKey,
): string {
  return signDetached(fingerprint(info), secret);
}

/** How many of the info's signatures are valid under `keys` (Nix's `checkSignatures`). */
export function countValidSignatures(
  info: Pick<PathInfo, 'path' | 'narHash' | 'narSize' | 'references' | 'sigs'>,
  keys: readonly PublicKey[],
): number {
  const fp = fingerprint(info);
  return new Set(info.sigs.filter((s) => verifyDetached(fp, s, keys))).size;
}

/** Parses `trusted-public-keys` entries (whitespace-separated, as in nix.conf). */
export function parsePublicKeys(text: string): PublicKey[] {
  return text
    .split(/\s+/)
    .filter((s) => s.length > 0)
    .map(parsePublicKey);
}
