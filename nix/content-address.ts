/**
 * Content addresses as Nix prints them in path infos: `text:sha256:<nix32>`,
 * `fixed:<r:?><algo>:<nix32>`; and the method-only form (`text:sha256`, `fixed:r:sha256`)
 * that AddToStore sends. Reference: protocol/README.md §6.7, `content-address.cc`.
 */
import { ErrorCode, NixFormatError } from './errors.js';
import { Hash, parseHash, parseHashAlgo, type HashAlgo } from './hash.js';
import { makeFixedOutputPath, makeTextPath, STORE_DIR, type FileIngestionMethod } from './store-path.js';

export type ContentAddressMethod =
  { readonly kind: 'text' } | { readonly kind: 'fixed'; readonly method: FileIngestionMethod };

export interface ContentAddress {
  readonly method: ContentAddressMethod;
  readonly hash: Hash;
}

function invalid(text: string, why: string): NixFormatError {
  return new NixFormatError(ErrorCode.CONTENT_ADDRESS_INVALID, `invalid content address '${text}': ${why}`, {
    ca: text,
  });
}

/** Parses `text:<algo>` / `fixed:<r:?><algo>` (the method with its algorithm, no digest). */
export function parseContentAddressMethod(text: string): { method: ContentAddressMethod; algo: HashAlgo } {
  if (text.startsWith('text:')) {
    const algo = parseHashAlgo(text.slice('text:'.length));
    if (algo !== 'sha256') throw invalid(text, 'text content addresses must use sha256');
    return { method: { kind: 'text' }, algo };
  }
  if (text.startsWith('fixed:r:')) {
    return {
      method: { kind: 'fixed', method: 'recursive' },
      algo: parseHashAlgo(text.slice('fixed:r:'.length)),
    };
  }
  if (text.startsWith('fixed:')) {
    return { method: { kind: 'fixed', method: 'flat' }, algo: parseHashAlgo(text.slice('fixed:'.length)) };
  }
  throw invalid(text, "expected a 'text:' or 'fixed:' prefix");
}

export function printContentAddressMethod(method: ContentAddressMethod, algo: HashAlgo): string {
  if (method.kind === 'text') return `text:${algo}`;
  return `fixed:${method.method === 'recursive' ? 'r:' : ''}${algo}`;
}

/** Parses a full content address: the method, the algorithm and the digest (any encoding). */
export function parseContentAddress(text: string): ContentAddress {
  const lastColon = text.lastIndexOf(':');
  if (lastColon < 0) throw invalid(text, 'missing hash');
  const { method, algo } = parseContentAddressMethod(text.slice(0, lastColon));
  try {
    return { method, hash: parseHash(text.slice(lastColon + 1), algo) };
  } catch (err) {
    if (err instanceof NixFormatError) throw invalid(text, err.message);
    throw err;
  }
}

/** Prints as Nix does: digest in Nix base32. */
export function printContentAddress(ca: ContentAddress): string {
  return `${printContentAddressMethod(ca.method, ca.hash.algo)}:${ca.hash.toBase32()}`;
}

/** The store path a content-addressed object must have. */
export function contentAddressedPath(
  name: string,
  ca: ContentAddress,
  references: Iterable<string> = [],
  selfReference = false,
  storeDir = STORE_DIR,
): string {
  if (ca.method.kind === 'text') {
    if (selfReference) throw invalid(printContentAddress(ca), 'text paths cannot refer to themselves');
    return makeTextPath(name, ca.hash, references, storeDir);
  }
  return makeFixedOutputPath(
    name,
    { method: ca.method.method, hash: ca.hash, references, selfReference },
    storeDir,
  );
}
