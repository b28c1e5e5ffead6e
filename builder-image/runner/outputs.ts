/**
 * What happens to the outputs after the builder exits 0 (Nix 2.8
 * `LocalDerivationGoal::registerOutputs` and `checkOutputs`, `canonicalisePathMetaData`):
 * existence, canonical metadata, NAR hash and size, reference scan over the NAR, the
 * fixed-output hash check, topological order, and the reference/size checks.
 * Registration itself is `store/register-built.ts`.
 */
import { chmod, lstat, lutimes, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Hasher, type Hash } from '../../nix/hash.js';
import { dumpPath } from '../../nix/nar/writer.js';
import { hashFile } from '../../nix/path-hash.js';
import { ReferenceScanner } from '../../nix/references.js';
import { makeFixedOutputPath, parseStorePath } from '../../nix/store-path.js';
import { printContentAddress } from '../../nix/content-address.js';
import { isErrno } from '../../store/fs-util.js';
import { BuildError, BuildErrorCode, hintfmt } from './errors.js';
import { BuildStatus } from './result.js';
import type { JsonValue } from './json.js';

export const CANONICAL_MTIME = 1;

/**
 * Canonicalises a tree in place like Nix: regular files and directories get 0444, or
 * 0555 if the owner-execute bit was set (0011 is not executable); setuid, setgid and
 * sticky go; mtime (and atime) 1 on everything, symlinks included (lutimes); other file
 * types are refused. `skipRootMode` leaves a root directory's mode for the commit
 * (renaming a read-only directory needs write permission when not root).
 */
export async function canonicaliseOutput(path: string, skipRootMode: boolean): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) {
    for (const name of await readdir(path)) await canonicaliseOutput(join(path, name), false);
  } else if (!st.isFile() && !st.isSymbolicLink()) {
    throw new BuildError(
      BuildErrorCode.OUTPUT_BAD_FILE_TYPE,
      BuildStatus.OutputRejected,
      hintfmt("file '%s' has an unsupported type", path),
      { path },
    );
  }
  if (!st.isSymbolicLink() && !(skipRootMode && st.isDirectory())) {
    const mode = st.mode & 0o7777;
    if (mode !== 0o444 && mode !== 0o555) await chmod(path, (st.mode & 0o100) !== 0 ? 0o555 : 0o444);
  }
  await lutimes(path, CANONICAL_MTIME, CANONICAL_MTIME);
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false;
    throw err;
  }
}

export interface ScannedOutput {
  readonly name: string;
  /** The path the output is registered under (for a wrong fixed-output hash, the real one). */
  readonly path: string;
  /** Physical location, canonical. */
  readonly physical: string;
  readonly narHash: Hash;
  readonly narSize: number;
  readonly references: string[];
  readonly ca: string | undefined;
}

/** NAR hash, NAR size and the referenced paths among `candidates` (hash part → path). */
export async function scanOutput(
  physical: string,
  candidates: ReadonlyMap<string, string>,
): Promise<{ narHash: Hash; narSize: number; references: string[] }> {
  const hasher = new Hasher('sha256');
  const scanner = new ReferenceScanner(candidates.keys());
  let narSize = 0;
  for await (const chunk of dumpPath(physical)) {
    hasher.update(chunk);
    scanner.update(chunk);
    narSize += chunk.length;
  }
  const references = [...scanner.found()].map((h) => candidates.get(h)!).sort();
  return { narHash: hasher.digest(), narSize, references };
}

export function hashPartMap(paths: Iterable<string>, storeDir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of paths) m.set(parseStorePath(p, storeDir).hashPart, p);
  return m;
}

export interface FixedCheck {
  readonly drvPath: string;
  /** Where Nix 2.8 says the output is (`<drv>.chroot<path>`). */
  readonly actualPath: string;
  readonly method: 'flat' | 'recursive';
  readonly wanted: Hash;
  readonly outputPathName: string;
  readonly storeDir: string;
}

/**
 * The fixed-output checks: a flat output must be a non-executable regular file; the hash
 * is compared. Returns the content address and the path it really belongs to, and the
 * mismatch error to raise after registration (Nix 2.8 registers the produced path).
 */
export async function checkFixedOutput(
  scanned: { physical: string; narHash: Hash; references: readonly string[]; path: string },
  fc: FixedCheck,
): Promise<{ ca: string; path: string; mismatch: BuildError | undefined }> {
  if (scanned.references.length > 0) {
    throw new BuildError(
      BuildErrorCode.FIXED_OUTPUT_REFERENCES,
      BuildStatus.OutputRejected,
      hintfmt(
        "the fixed-output derivation '%s' must not reference store paths: '%s' references '%s'",
        fc.drvPath,
        scanned.path,
        scanned.references.join("', '"),
      ),
      { drvPath: fc.drvPath, path: scanned.path, reference: scanned.references[0] },
    );
  }
  let got: Hash;
  if (fc.method === 'flat') {
    const st = await lstat(scanned.physical);
    if (!st.isFile() || (st.mode & 0o100) !== 0) {
      throw new BuildError(
        BuildErrorCode.FIXED_OUTPUT_NOT_FLAT_FILE,
        BuildStatus.OutputRejected,
        hintfmt(
          "output path '%s' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)",
          fc.actualPath,
        ),
        { path: scanned.path },
      );
    }
    got = (await hashFile(scanned.physical, fc.wanted.algo)).hash;
  } else if (fc.wanted.algo === 'sha256') {
    got = scanned.narHash;
  } else {
    const h = new Hasher(fc.wanted.algo);
    for await (const chunk of dumpPath(scanned.physical)) h.update(chunk);
    got = h.digest();
  }
  const ca = printContentAddress({ method: { kind: 'fixed', method: fc.method }, hash: got });
  const path = makeFixedOutputPath(fc.outputPathName, { method: fc.method, hash: got }, fc.storeDir);
  const mismatch = got.equals(fc.wanted)
    ? undefined
    : new BuildError(
        BuildErrorCode.HASH_MISMATCH,
        BuildStatus.OutputRejected,
        hintfmt(
          "hash mismatch in fixed-output derivation '%s':\n  specified: %s\n     got:    %s",
          fc.drvPath,
          fc.wanted.toSri(),
          got.toSri(),
        ),
        { drvPath: fc.drvPath, specified: fc.wanted.toSri(), got: got.toSri() },
      );
  return { ca, path, mismatch };
}

/** Outputs in an order where each comes after the outputs it refers to (`topoSort`). */
export function sortOutputs<T extends { path: string; references: readonly string[] }>(
  outputs: readonly T[],
): T[] {
  const byPath = new Map(outputs.map((o) => [o.path, o]));
  const done = new Set<string>();
  const visiting = new Set<string>();
  const order: T[] = [];
  const visit = (o: T, parent: T | undefined): void => {
    if (done.has(o.path)) return;
    if (visiting.has(o.path)) {
      throw new BuildError(
        BuildErrorCode.OUTPUT_CYCLE,
        BuildStatus.OutputRejected,
        hintfmt("cycle detected in the references of '%s' from '%s'", o.path, parent?.path ?? o.path),
        { path: o.path },
      );
    }
    visiting.add(o.path);
    for (const r of o.references) {
      const dep = byPath.get(r);
      if (dep && dep !== o) visit(dep, o);
    }
    visiting.delete(o.path);
    done.add(o.path);
    order.push(o);
  };
  for (const o of [...outputs].sort((a, b) => (a.path < b.path ? -1 : 1))) visit(o, undefined);
  return order;
}

export interface Checks {
  ignoreSelfRefs: boolean;
  maxSize?: number | undefined;
  maxClosureSize?: number | undefined;
  allowedReferences?: string[] | undefined;
  allowedRequisites?: string[] | undefined;
  disallowedReferences?: string[] | undefined;
  disallowedRequisites?: string[] | undefined;
}

export interface InfoLite {
  readonly narSize: number;
  readonly references: readonly string[];
}

/** `checkOutputs` of Nix 2.8, for one output. */
export function applyChecks(
  out: ScannedOutput,
  checks: Checks,
  outputsByName: ReadonlyMap<string, ScannedOutput>,
  infoOf: (path: string) => InfoLite,
  isStorePathS: (s: string) => boolean,
): void {
  const byPath = new Map([...outputsByName.values()].map((o) => [o.path, o]));
  const closure = (): { paths: Set<string>; size: number } => {
    const paths = new Set<string>();
    let size = 0;
    const queue = [out.path];
    while (queue.length > 0) {
      const p = queue.shift()!;
      if (paths.has(p)) continue;
      paths.add(p);
      const info = byPath.get(p) ?? infoOf(p);
      size += info.narSize;
      queue.push(...info.references);
    }
    return { paths, size };
  };
  const reject = (code: BuildErrorCode, msg: string): BuildError =>
    new BuildError(code, BuildStatus.OutputRejected, msg, { path: out.path, output: out.name });
  if (checks.maxSize !== undefined && out.narSize > checks.maxSize) {
    throw reject(
      BuildErrorCode.OUTPUT_TOO_LARGE,
      hintfmt("path '%s' is too large at %d bytes; limit is %d bytes", out.path, out.narSize, checks.maxSize),
    );
  }
  if (checks.maxClosureSize !== undefined) {
    const size = closure().size;
    if (size > checks.maxClosureSize) {
      throw reject(
        BuildErrorCode.OUTPUT_TOO_LARGE,
        hintfmt(
          "closure of path '%s' is too large at %d bytes; limit is %d bytes",
          out.path,
          size,
          checks.maxClosureSize,
        ),
      );
    }
  }
  const checkRefs = (value: string[] | undefined, allowed: boolean, recursive: boolean): void => {
    if (value === undefined) return;
    const spec = new Set<string>();
    for (const i of value) {
      if (isStorePathS(i)) spec.add(i);
      else if (outputsByName.has(i)) spec.add(outputsByName.get(i)!.path);
      else {
        throw reject(
          BuildErrorCode.OUTPUT_REFERENCES,
          hintfmt("derivation contains an illegal reference specifier '%s'", i),
        );
      }
    }
    const used = recursive ? closure().paths : new Set(out.references);
    if (recursive && checks.ignoreSelfRefs) used.delete(out.path);
    const bad = [...used].filter((p) => (allowed ? !spec.has(p) : spec.has(p))).sort();
    if (bad.length > 0) {
      throw reject(
        BuildErrorCode.OUTPUT_REFERENCES,
        hintfmt(
          "output '%s' is not allowed to refer to the following paths:%s",
          out.path,
          bad.map((p) => `\n  ${p}`).join(''),
        ),
      );
    }
  };
  checkRefs(checks.allowedReferences, true, false);
  checkRefs(checks.allowedRequisites, true, true);
  checkRefs(checks.disallowedReferences, false, false);
  checkRefs(checks.disallowedRequisites, false, true);
}

/** `outputChecks.<name>` of structured attrs. */
export function structuredChecks(
  attrs: ReadonlyMap<string, JsonValue>,
  outputName: string,
  drvPath: string,
): Checks | undefined {
  const oc = attrs.get('outputChecks');
  if (oc?.t !== 'object') return undefined;
  const o = oc.v.get(outputName);
  if (o?.t !== 'object') return undefined;
  const num = (k: string): number | undefined => {
    const v = o.v.get(k);
    return v?.t === 'int' ? Number(v.v) : v?.t === 'float' ? v.v : undefined;
  };
  const strs = (k: string): string[] | undefined => {
    const v = o.v.get(k);
    if (v === undefined) return undefined;
    if (v.t !== 'array' || v.v.some((x) => x.t !== 'string')) {
      throw new BuildError(
        BuildErrorCode.ATTRS_INVALID,
        BuildStatus.MiscFailure,
        hintfmt("attribute '%s' of derivation '%s' must be a list of strings", k, drvPath),
        { drvPath },
      );
    }
    return v.v.map((x) => (x as { v: string }).v);
  };
  return {
    ignoreSelfRefs: false,
    maxSize: num('maxSize'),
    maxClosureSize: num('maxClosureSize'),
    allowedReferences: strs('allowedReferences'),
    allowedRequisites: strs('allowedRequisites'),
    disallowedReferences: strs('disallowedReferences'),
    disallowedRequisites: strs('disallowedRequisites'),
  };
}
