/**
 * NAR (Nix ARchive) tokens and encoding helpers shared by the writer and the parser
 * (`archive.cc`; protocol reference §10). A NAR is a sequence of strings, each encoded
 * as a u64 little-endian length, the bytes, then zero padding to a multiple of 8.
 */

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The tokens of the NAR grammar, as bytes. */
export const Token = {
  MAGIC: ascii('nix-archive-1'),
  OPEN: ascii('('),
  CLOSE: ascii(')'),
  TYPE: ascii('type'),
  REGULAR: ascii('regular'),
  SYMLINK: ascii('symlink'),
  DIRECTORY: ascii('directory'),
  EXECUTABLE: ascii('executable'),
  EMPTY: new Uint8Array(0),
  CONTENTS: ascii('contents'),
  TARGET: ascii('target'),
  ENTRY: ascii('entry'),
  NAME: ascii('name'),
  NODE: ascii('node'),
} as const;

/** Zero bytes needed after `length` bytes to reach a multiple of 8. */
export function paddingFor(length: number | bigint): number {
  return Number((8n - (BigInt(length) % 8n)) % 8n);
}

/** The full encoding of one string token: length, bytes, padding. */
export function encodeToken(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + bytes.length + paddingFor(bytes.length));
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  return out;
}

/** The 8-byte length prefix alone (for file contents, which are streamed). */
export function encodeLength(length: number | bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(length), true);
  return out;
}

/** Byte-wise comparison, the order of Nix's `std::map<std::string>` of entries. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A readable rendering of a NAR path for error messages (`/` for the root). */
export function describePath(path: readonly Uint8Array[]): string {
  const decoder = new TextDecoder();
  return '/' + path.map((name) => decoder.decode(name)).join('/');
}
