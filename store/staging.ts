/**
 * The verify-before-register half of an import: validate a claim, stream its NAR (or
 * file) into a fresh staging directory while hashing it, check what was claimed, and
 * canonicalise. Nothing here touches store/, meta/ or the index; import.ts commits.
 *
 * Every function here leaves no staging behind when it throws.
 */
import { constants as fsConstants, createReadStream } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { isNixFormatError, ErrorCode } from '../nix/errors.js';
import { Hash, Hasher, parseHash, type HashAlgo } from '../nix/hash.js';
import { hashFile, hashPath } from '../nix/path-hash.js';
import { parseStorePath, storePathNameProblem, type StorePath } from '../nix/store-path.js';
import {
  contentAddressedPath,
  parseContentAddress,
  parseContentAddressMethod,
  printContentAddress,
  type ContentAddress,
} from '../nix/content-address.js';
import { restoreNar } from '../nix/nar/restore.js';
import { canonicalisePath } from './canonicalise.js';
import { HashModulo } from './hash-modulo.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { removeTree } from './fs-util.js';
import type { StoreLayout } from './layout.js';
import { sortPaths, type PathInfo } from './path-info.js';
import type { SourceTap } from './source-tap.js';

/** What an uploader says about a path it sends (AddToStoreNar, AddMultipleToStore, import). */
export interface NarClaim {
  readonly path: string;
  /** sha256; a `Hash`, or any string form Nix accepts (bare base16 as on the wire). */
  readonly narHash: Hash | string;
  readonly narSize: number;
  readonly references: readonly string[];
  readonly deriver?: string | undefined;
  readonly sigs?: readonly string[];
  /** Printed content address, or undefined / '' for input-addressed paths. */
  readonly ca?: string | undefined;
  readonly ultimate?: boolean;
}

/** A verified, canonical tree in staging, ready to be moved into the store. */
export interface Staged {
  /** The info to register (its registrationTime is set at commit). */
  readonly info: PathInfo;
  /** The staging directory to remove afterwards. */
  readonly dir: string;
  /** The content inside `dir`. */
  readonly root: string;
}

function pathError(path: string, why: string): StoreError {
  return new StoreError(StoreErrorCode.PATH_INVALID, `path '${path}' is not a valid store path: ${why}`, {
    path,
  });
}

function checkStorePath(path: string, storeDir: string): StorePath {
  try {
    return parseStorePath(path, storeDir);
  } catch (err) {
    if (isNixFormatError(err)) throw pathError(path, err.message);
    throw err;
  }
}

/** Validates a claim into the info it would register. */
export function claimToInfo(claim: NarClaim, storeDir: string): PathInfo {
  const path = claim.path;
  checkStorePath(path, storeDir);
  for (const ref of claim.references) checkStorePath(ref, storeDir);
  if (claim.deriver !== undefined && claim.deriver !== '') checkStorePath(claim.deriver, storeDir);
  const invalid = (why: string): StoreError =>
    new StoreError(StoreErrorCode.CLAIM_INVALID, `invalid path info for '${path}': ${why}`, { path });
  let narHash: Hash;
  try {
    narHash = typeof claim.narHash === 'string' ? parseHash(claim.narHash, 'sha256') : claim.narHash;
  } catch (err) {
    if (isNixFormatError(err)) throw invalid(err.message);
    throw err;
  }
  if (narHash.algo !== 'sha256') throw invalid(`narHash must be sha256, got ${narHash.algo}`);
  if (!Number.isSafeInteger(claim.narSize) || claim.narSize < 0)
    throw invalid(`bad narSize ${claim.narSize}`);
  let ca: string | undefined;
  if (claim.ca !== undefined && claim.ca !== '') {
    try {
      ca = printContentAddress(parseContentAddress(claim.ca));
    } catch (err) {
      if (isNixFormatError(err)) throw invalid(err.message);
      throw err;
    }
  }
  return {
    path,
    deriver: claim.deriver === '' ? undefined : claim.deriver,
    narHash,
    narSize: claim.narSize,
    references: sortPaths(claim.references),
    sigs: [...new Set(claim.sigs ?? [])],
    ca,
    registrationTime: 0,
    ultimate: claim.ultimate ?? false,
  };
}

/**
 * For recursive content addresses, the tap hashes the NAR as it streams with the CA's
 * algorithm, modulo the path's own hash part (as Nix's `hashCAPath` does).
 */
function tapForContentAddress(info: PathInfo, source: SourceTap, storeDir: string): void {
  if (info.ca === undefined) return;
  const ca = parseContentAddress(info.ca);
  if (ca.method.kind === 'fixed' && ca.method.method === 'recursive') {
    source.hashAlso(ca.hash.algo, parseStorePath(info.path, storeDir).hashPart);
  }
}

/** Turns NAR format errors into import errors naming the path; others pass through. */
function narError(err: unknown, path: string): unknown {
  if (!isNixFormatError(err)) return err;
  if (err.code === ErrorCode.NAR_TRUNCATED) {
    return new StoreError(
      StoreErrorCode.NAR_TRUNCATED,
      `unexpected end-of-file importing path '${path}': ${err.message}`,
      { path, narCode: err.code },
      { cause: err },
    );
  }
  return new StoreError(
    StoreErrorCode.NAR_INVALID,
    `bad archive importing path '${path}': ${err.message}`,
    { path, narCode: err.code },
    { cause: err },
  );
}

/** Runs `fn` on a fresh staging directory; removes the directory if `fn` throws. */
async function inStaging<T>(layout: StoreLayout, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await layout.newStagingDir();
  try {
    return await fn(dir);
  } catch (err) {
    await removeTree(dir);
    throw err;
  }
}

/**
 * Restores the claimed NAR into staging and checks narHash, narSize and the content
 * address. The caller drains `source` if this throws.
 */
export function stageNar(layout: StoreLayout, info: PathInfo, source: SourceTap): Promise<Staged> {
  tapForContentAddress(info, source, layout.storeDir);
  return inStaging(layout, async (dir) => {
    const root = join(dir, parseStorePath(info.path, layout.storeDir).name);
    let restored;
    try {
      restored = await restoreNar(source, root);
    } catch (err) {
      throw narError(err, info.path);
    }
    const narHash = new Hash('sha256', restored.narHash);
    if (!narHash.equals(info.narHash)) {
      throw new StoreError(
        StoreErrorCode.NAR_HASH_MISMATCH,
        `hash mismatch importing path '${info.path}'; specified: ${info.narHash.toTyped()}; got: ${narHash.toTyped()}`,
        { path: info.path, specified: info.narHash.toTyped(), got: narHash.toTyped() },
      );
    }
    if (restored.narSize !== info.narSize) {
      throw new StoreError(
        StoreErrorCode.NAR_SIZE_MISMATCH,
        `size mismatch importing path '${info.path}'; specified: ${info.narSize}; got: ${restored.narSize}`,
        { path: info.path, specified: info.narSize, got: restored.narSize },
      );
    }
    if (info.ca !== undefined) await checkContentAddress(info, root, source.extraHash(), layout.storeDir);
    await canonicalisePath(root, { skipRootMode: true, sync: true });
    return { info, dir, root };
  });
}

/**
 * Checks that `info.path` is what its content address says, for the content at `root`
 * whose NAR hashed (modulo the path's hash part, with the CA's algorithm) to
 * `narModuloHash` for recursive addresses.
 */
async function checkContentAddress(
  info: PathInfo,
  root: string,
  narModuloHash: Hash | undefined,
  storeDir: string,
): Promise<void> {
  const ca = parseContentAddress(info.ca!);
  const mismatch = (why: string, extra: Record<string, string> = {}): StoreError =>
    new StoreError(
      StoreErrorCode.CA_MISMATCH,
      `path '${info.path}' claims to be content-addressed but isn't: ${why}`,
      {
        path: info.path,
        ca: info.ca,
        ...extra,
      },
    );
  const { hashPart } = parseStorePath(info.path, storeDir);
  const actual = await contentHash(ca, root, hashPart, narModuloHash, mismatch);
  if (!actual.equals(ca.hash)) {
    const got = printContentAddress({ method: ca.method, hash: actual });
    throw new StoreError(
      StoreErrorCode.CA_MISMATCH,
      `ca hash mismatch importing path '${info.path}'; specified: ${info.ca}; got: ${got}`,
      { path: info.path, specified: info.ca, got },
    );
  }
  const { name } = parseStorePath(info.path, storeDir);
  const self = info.references.includes(info.path);
  const others = info.references.filter((r) => r !== info.path);
  let computed: string;
  try {
    computed = contentAddressedPath(name, ca, others, self, storeDir);
  } catch (err) {
    if (isNixFormatError(err)) throw mismatch(err.message);
    throw err;
  }
  if (computed !== info.path) {
    throw mismatch(`its content address '${info.ca}' and references give the path '${computed}'`, {
      computed,
    });
  }
}

async function contentHash(
  ca: ContentAddress,
  root: string,
  hashPart: string,
  narModuloHash: Hash | undefined,
  mismatch: (why: string) => StoreError,
): Promise<Hash> {
  if (ca.method.kind === 'fixed' && ca.method.method === 'recursive') {
    if (narModuloHash === undefined) throw new Error('internal: recursive CA without its NAR hash');
    return narModuloHash;
  }
  const st = await lstat(root);
  if (!st.isFile())
    throw mismatch(`a ${ca.method.kind === 'text' ? 'text' : 'flat'} path must be a regular file`);
  const hasher = new HashModulo(ca.hash.algo, hashPart);
  for await (const chunk of createReadStream(root) as AsyncIterable<Buffer>) hasher.update(chunk);
  return hasher.digest();
}

/** What AddToStore sends: a name, a method with its algorithm, references, data. */
export interface AddToStoreRequest {
  readonly name: string;
  /** `text:sha256`, `fixed:sha256`, `fixed:r:sha256`, `fixed:r:sha1`, … */
  readonly method: string;
  readonly references?: readonly string[];
  /**
   * Whether the data is a NAR. Default: NAR for recursive methods, raw file contents
   * for `text:` and flat `fixed:` (protocol ≥ 1.25). Older clients send a NAR of the
   * single file for flat methods too: pass `true`.
   */
  readonly dataIsNar?: boolean;
}

/** Stages AddToStore data and computes its path, content address and NAR hash. */
export function stageAddToStore(
  layout: StoreLayout,
  req: AddToStoreRequest,
  source: SourceTap,
): Promise<Staged> {
  return inStaging(layout, async (dir) => {
    const problem = storePathNameProblem(req.name);
    if (problem !== undefined) {
      throw new StoreError(StoreErrorCode.PATH_INVALID, `invalid store path name '${req.name}': ${problem}`, {
        name: req.name,
      });
    }
    let method;
    try {
      method = parseContentAddressMethod(req.method);
    } catch (err) {
      if (isNixFormatError(err)) {
        throw new StoreError(StoreErrorCode.CLAIM_INVALID, err.message, { method: req.method });
      }
      throw err;
    }
    const references = sortPaths(req.references ?? []);
    for (const ref of references) checkStorePath(ref, layout.storeDir);
    const recursive = method.method.kind === 'fixed' && method.method.method === 'recursive';
    if (recursive && method.algo !== 'sha256') source.hashAlso(method.algo);
    const root = join(dir, req.name);
    let narHash: Hash;
    let narSize: number;
    let caHash: Hash;
    if (recursive || req.dataIsNar === true) {
      let restored;
      try {
        restored = await restoreNar(source, root);
      } catch (err) {
        throw narError(err, req.name);
      }
      narHash = new Hash('sha256', restored.narHash);
      narSize = restored.narSize;
      if (recursive) {
        caHash = method.algo === 'sha256' ? narHash : source.extraHash()!;
      } else {
        if (!(await lstat(root)).isFile()) {
          throw new StoreError(
            StoreErrorCode.CLAIM_INVALID,
            `'${req.name}': flat and text data must be a regular file`,
            {
              name: req.name,
            },
          );
        }
        caHash = (await hashFile(root, method.algo)).hash;
      }
    } else {
      caHash = await writeFileHashing(root, source, method.algo);
      ({ hash: narHash, size: narSize } = await hashPath(root));
    }
    const ca: ContentAddress = { method: method.method, hash: caHash };
    let path: string;
    try {
      path = contentAddressedPath(req.name, ca, references, false, layout.storeDir);
    } catch (err) {
      if (isNixFormatError(err))
        throw new StoreError(StoreErrorCode.CLAIM_INVALID, err.message, { name: req.name });
      throw err;
    }
    await canonicalisePath(root, { skipRootMode: true, sync: true });
    const info: PathInfo = {
      path,
      deriver: undefined,
      narHash,
      narSize,
      references,
      sigs: [],
      ca: printContentAddress(ca),
      registrationTime: 0,
      ultimate: false,
    };
    return { info, dir, root };
  });
}

/** Writes a stream to a new file, returning the hash of its bytes. */
async function writeFileHashing(
  file: string,
  source: AsyncIterable<Uint8Array>,
  algo: HashAlgo,
): Promise<Hash> {
  const hasher = new Hasher(algo);
  const handle = await open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o644);
  try {
    for await (const chunk of source) {
      hasher.update(chunk);
      let written = 0;
      while (written < chunk.length) written += (await handle.write(chunk, written)).bytesWritten;
    }
  } finally {
    await handle.close();
  }
  return hasher.digest();
}
