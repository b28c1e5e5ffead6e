/**
 * Metadata records: the durable truth of which paths are valid. One JSON file per
 * valid path (`<data>/meta/<hash>-<name>.json`, layout.ts), for example
 *
 *   {"version":1,"path":"/nix/store/…-hello","deriver":null,
 *    "narHash":"sha256:<nix32>","narSize":880,"references":["/nix/store/…"],
 *    "signatures":[],"ca":null,"registrationTime":1700000000,"ultimate":false}
 *
 * JSON because operators read these files with `cat` and `jq` while debugging, and the
 * records are small. Parsing is strict: anything unexpected is ERR_STORE_CORRUPT_RECORD.
 */
import { readFile } from 'node:fs/promises';
import { parseHash } from '../nix/hash.js';
import { isStorePath } from '../nix/store-path.js';
import { StoreError, StoreErrorCode } from './errors.js';
import { writeFileAtomic, isErrno, unlinkDurable } from './fs-util.js';
import type { StoreLayout } from './layout.js';
import { sortPaths, type PathInfo } from './path-info.js';

export const RECORD_VERSION = 1;

interface RecordJson {
  version: number;
  path: string;
  deriver: string | null;
  narHash: string;
  narSize: number;
  references: string[];
  signatures: string[];
  ca: string | null;
  registrationTime: number;
  ultimate: boolean;
}

export function serializeRecord(info: PathInfo): string {
  const json: RecordJson = {
    version: RECORD_VERSION,
    path: info.path,
    deriver: info.deriver ?? null,
    narHash: info.narHash.toTyped('base32'),
    narSize: info.narSize,
    references: sortPaths(info.references),
    signatures: [...info.sigs],
    ca: info.ca ?? null,
    registrationTime: info.registrationTime,
    ultimate: info.ultimate,
  };
  return JSON.stringify(json) + '\n';
}

/** Parses a record; `where` names the file for the error message. */
export function parseRecord(text: string, where: string, storeDir?: string): PathInfo {
  const corrupt = (why: string): StoreError =>
    new StoreError(StoreErrorCode.CORRUPT_RECORD, `corrupt store record '${where}': ${why}`, { file: where });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw corrupt('not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt('not an object');
  const r = raw as Partial<Record<keyof RecordJson, unknown>>;
  if (r.version !== RECORD_VERSION) throw corrupt(`unsupported version ${String(r.version)}`);
  const isPath = (p: unknown): p is string => typeof p === 'string' && isStorePath(p, storeDir);
  const isStrings = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string');
  if (!isPath(r.path)) throw corrupt('bad path');
  if (r.deriver !== null && !isPath(r.deriver)) throw corrupt('bad deriver');
  if (typeof r.narHash !== 'string') throw corrupt('bad narHash');
  let narHash;
  try {
    narHash = parseHash(r.narHash, 'sha256');
  } catch {
    throw corrupt('bad narHash');
  }
  if (typeof r.narSize !== 'number' || !Number.isSafeInteger(r.narSize) || r.narSize < 0) {
    throw corrupt('bad narSize');
  }
  if (!isStrings(r.references) || !r.references.every((p) => isPath(p))) throw corrupt('bad references');
  if (!isStrings(r.signatures)) throw corrupt('bad signatures');
  if (r.ca !== null && typeof r.ca !== 'string') throw corrupt('bad ca');
  if (typeof r.registrationTime !== 'number' || !Number.isSafeInteger(r.registrationTime)) {
    throw corrupt('bad registrationTime');
  }
  if (typeof r.ultimate !== 'boolean') throw corrupt('bad ultimate');
  return {
    path: r.path,
    deriver: r.deriver ?? undefined,
    narHash,
    narSize: r.narSize,
    references: sortPaths(r.references),
    sigs: r.signatures,
    ca: r.ca ?? undefined,
    registrationTime: r.registrationTime,
    ultimate: r.ultimate,
  };
}

/** Reads the record of `path`, or undefined if there is none (the path is not valid). */
export async function readRecord(layout: StoreLayout, path: string): Promise<PathInfo | undefined> {
  const file = layout.recordPath(path);
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  const info = parseRecord(text, file, layout.storeDir);
  if (info.path !== path) {
    throw new StoreError(
      StoreErrorCode.CORRUPT_RECORD,
      `corrupt store record '${file}': it describes '${info.path}'`,
      { file, path },
    );
  }
  return info;
}

/** Writes (or replaces) the record of `info.path` atomically and durably. */
export async function writeRecord(layout: StoreLayout, info: PathInfo): Promise<void> {
  await writeFileAtomic(layout.recordPath(info.path), serializeRecord(info));
}

/** Removes the record of `path`: from then on the path is not valid. */
export async function deleteRecord(layout: StoreLayout, path: string): Promise<void> {
  await unlinkDurable(layout.recordPath(path));
}
