/**
 * Store paths: `/nix/store/<32 base32 chars>-<name>`. Parsing and validation, and the
 * path computations of `store-api.cc` (makeStorePath and its text, fixed-output and
 * derivation-output forms). Reference: protocol/README.md §11.
 */
import { ErrorCode, NixFormatError } from './errors.js';
import { compressHash, encodeNixBase32, hashOf, isNixBase32Char, type Hash } from './hash.js';

export const STORE_DIR = '/nix/store';
export const HASH_PART_LENGTH = 32;
export const MAX_NAME_LENGTH = 211;

const NAME_RE = /^[A-Za-z0-9+\-._?=]+$/;

export interface StorePath {
  readonly hashPart: string;
  readonly name: string;
}

/** Why `name` cannot be a store path name, or undefined if it can. */
export function storePathNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'name is empty';
  if (name.length > MAX_NAME_LENGTH) return `name is longer than ${MAX_NAME_LENGTH} characters`;
  if (!NAME_RE.test(name)) {
    const bad = [...name].find((c) => !/[A-Za-z0-9+\-._?=]/.test(c)) ?? '';
    return `name contains the forbidden character ${JSON.stringify(bad)}`;
  }
  // Newer Nix rejects these; 2.8 accepts them, but they can only cause trouble.
  if (name === '.' || name === '..' || name.startsWith('.-') || name.startsWith('..-')) {
    return `name '${name}' is not allowed`;
  }
  return undefined;
}

export function validateStorePathName(name: string): string {
  const problem = storePathNameProblem(name);
  if (problem !== undefined) {
    throw new NixFormatError(ErrorCode.STORE_PATH_BAD_NAME, `invalid store path name '${name}': ${problem}`, {
      name,
    });
  }
  return name;
}

/** Parses a base name `<hash>-<name>`. */
export function parseStorePathBase(base: string): StorePath {
  const hashPart = base.slice(0, HASH_PART_LENGTH);
  if (base.length < HASH_PART_LENGTH + 2 || base[HASH_PART_LENGTH] !== '-') {
    throw new NixFormatError(
      ErrorCode.STORE_PATH_INVALID,
      `path '${base}' is not a valid store path base name`,
      {
        path: base,
      },
    );
  }
  if (![...hashPart].every(isNixBase32Char)) {
    throw new NixFormatError(ErrorCode.STORE_PATH_INVALID, `store path '${base}' has an invalid hash part`, {
      path: base,
    });
  }
  const name = base.slice(HASH_PART_LENGTH + 1);
  const problem = storePathNameProblem(name);
  if (problem !== undefined) {
    throw new NixFormatError(
      ErrorCode.STORE_PATH_BAD_NAME,
      `store path '${base}' has an invalid name: ${problem}`,
      {
        path: base,
      },
    );
  }
  return { hashPart, name };
}

/** Parses a full path directly inside `storeDir` (not a path below one). */
export function parseStorePath(path: string, storeDir = STORE_DIR): StorePath {
  if (!path.startsWith(`${storeDir}/`)) {
    throw new NixFormatError(ErrorCode.STORE_PATH_NOT_IN_STORE, `path '${path}' is not in the Nix store`, {
      path,
    });
  }
  const base = path.slice(storeDir.length + 1);
  if (base.includes('/')) {
    throw new NixFormatError(
      ErrorCode.STORE_PATH_INVALID,
      `path '${path}' is not a store path (it is inside one)`,
      {
        path,
      },
    );
  }
  return parseStorePathBase(base);
}

export function isStorePath(path: string, storeDir = STORE_DIR): boolean {
  try {
    parseStorePath(path, storeDir);
    return true;
  } catch {
    return false;
  }
}

export function printStorePath(p: StorePath, storeDir = STORE_DIR): string {
  return `${storeDir}/${p.hashPart}-${p.name}`;
}

/** `/nix/store/<hash>-<name>` → `<hash>-<name>` */
export function storePathBaseName(path: string, storeDir = STORE_DIR): string {
  const p = parseStorePath(path, storeDir);
  return `${p.hashPart}-${p.name}`;
}

/**
 * The primitive: `<storeDir>/<nix32(compress(sha256("<type>:sha256:<hex>:<storeDir>:<name>"), 20))>-<name>`.
 * `innerHash` must be a sha256 (Nix asserts the same).
 */
export function makeStorePath(type: string, innerHash: Hash, name: string, storeDir = STORE_DIR): string {
  validateStorePathName(name);
  if (innerHash.algo !== 'sha256') {
    throw new NixFormatError(
      ErrorCode.HASH_UNKNOWN_ALGO,
      `makeStorePath needs a sha256 hash, got ${innerHash.algo}`,
      {
        algo: innerHash.algo,
      },
    );
  }
  const fingerprint = `${type}:sha256:${innerHash.toBase16()}:${storeDir}:${name}`;
  const hashPart = encodeNixBase32(compressHash(hashOf('sha256', fingerprint).bytes, 20));
  return `${storeDir}/${hashPart}-${name}`;
}

/** `type` with `:<ref>` appended for each reference, sorted, and `:self` last if asked. */
function typeWithReferences(type: string, references: Iterable<string>, selfReference: boolean): string {
  const refs = [...new Set(references)].sort();
  return [type, ...refs, ...(selfReference ? ['self'] : [])].join(':');
}

/** Text paths: `.drv` files, `builtins.toFile`, `text:` content addresses. */
export function makeTextPath(
  name: string,
  contentHash: Hash,
  references: Iterable<string>,
  storeDir = STORE_DIR,
): string {
  if (contentHash.algo !== 'sha256') {
    throw new NixFormatError(
      ErrorCode.HASH_UNKNOWN_ALGO,
      `text paths need a sha256 hash, got ${contentHash.algo}`,
      {
        algo: contentHash.algo,
      },
    );
  }
  return makeStorePath(typeWithReferences('text', references, false), contentHash, name, storeDir);
}

export type FileIngestionMethod = 'flat' | 'recursive';

export interface FixedOutputInfo {
  readonly method: FileIngestionMethod;
  /** For `recursive`, the hash of the NAR; for `flat`, of the file's contents. */
  readonly hash: Hash;
  readonly references?: Iterable<string>;
  readonly selfReference?: boolean;
}

/**
 * Fixed-output paths (`nix-store --add`, `--add-fixed`, fixed-output derivations).
 * NAR-hashed sha256 is the special "source" form that may carry references; every
 * other combination hashes a `fixed:out:` descriptor and cannot have references.
 */
export function makeFixedOutputPath(name: string, info: FixedOutputInfo, storeDir = STORE_DIR): string {
  const references = [...(info.references ?? [])];
  if (info.method === 'recursive' && info.hash.algo === 'sha256') {
    return makeStorePath(
      typeWithReferences('source', references, info.selfReference ?? false),
      info.hash,
      name,
      storeDir,
    );
  }
  if (references.length > 0 || info.selfReference) {
    throw new NixFormatError(
      ErrorCode.CONTENT_ADDRESS_INVALID,
      `fixed-output path '${name}' hashed with ${info.method === 'recursive' ? 'r:' : ''}${info.hash.algo} cannot have references`,
      { name },
    );
  }
  const descriptor = `fixed:out:${info.method === 'recursive' ? 'r:' : ''}${info.hash.algo}:${info.hash.toBase16()}:`;
  return makeStorePath('output:out', hashOf('sha256', descriptor), name, storeDir);
}

/** Name of a derivation output's path: `<drvName>` for `out`, `<drvName>-<output>` otherwise. */
export function outputPathName(drvName: string, outputName: string): string {
  return outputName === 'out' ? drvName : `${drvName}-${outputName}`;
}

/** Output path of an input-addressed derivation, from its masked hashDerivationModulo. */
export function makeOutputPath(
  outputName: string,
  hashModulo: Hash,
  drvName: string,
  storeDir = STORE_DIR,
): string {
  return makeStorePath(`output:${outputName}`, hashModulo, outputPathName(drvName, outputName), storeDir);
}
