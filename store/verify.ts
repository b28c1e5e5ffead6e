/**
 * Operator checks: `verify` compares records, content and index without changing
 * anything; `reindex` rebuilds the index from the records (the truth).
 */
import { hashPath } from '../nix/path-hash.js';
import { isStorePath } from '../nix/store-path.js';
import { isStoreError } from './errors.js';
import type { StoreContext } from './import.js';
import type { PathInfo } from './path-info.js';
import { readRecord, serializeRecord } from './records.js';
import { isErrno } from './fs-util.js';
import { lstat } from 'node:fs/promises';

export type VerifyProblemKind =
  /** A record that cannot be parsed. */
  | 'corrupt-record'
  /** A record whose content is missing. */
  | 'missing-content'
  /** Content without a record (not valid; left over from a crash, or junk). */
  | 'unregistered-content'
  /** Content whose NAR hash or size differs from its record (--check-contents). */
  | 'hash-mismatch'
  /** A record referring to a path without a record. */
  | 'dangling-reference'
  /** A record the index does not know. */
  | 'index-missing'
  /** An index entry without a record. */
  | 'index-stale'
  /** An index entry that differs from its record. */
  | 'index-differs';

export interface VerifyProblem {
  readonly kind: VerifyProblemKind;
  /** The logical store path, or the file name for corrupt records and stray entries. */
  readonly path: string;
  readonly message: string;
}

export interface VerifyReport {
  /** Number of records checked. */
  readonly checked: number;
  readonly problems: VerifyProblem[];
}

export interface VerifyOptions {
  /** Recompute every NAR hash (reads all content). */
  readonly checkContents?: boolean;
}

interface RecordScan {
  readonly infos: Map<string, PathInfo>;
  readonly problems: VerifyProblem[];
}

async function scanRecords(ctx: StoreContext): Promise<RecordScan> {
  const { layout } = ctx;
  const infos = new Map<string, PathInfo>();
  const problems: VerifyProblem[] = [];
  for (const base of await layout.recordBaseNames()) {
    const path = layout.storePathOf(base);
    if (!isStorePath(path, layout.storeDir)) {
      problems.push({
        kind: 'corrupt-record',
        path: base,
        message: `record '${base}' is not named after a store path`,
      });
      continue;
    }
    try {
      const info = await readRecord(layout, path);
      if (info) infos.set(path, info);
    } catch (err) {
      if (!isStoreError(err)) throw err;
      problems.push({ kind: 'corrupt-record', path, message: err.message });
    }
  }
  return { infos, problems };
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

export async function verifyStore(ctx: StoreContext, options: VerifyOptions = {}): Promise<VerifyReport> {
  const { layout, index } = ctx;
  const { infos, problems } = await scanRecords(ctx);
  for (const [path, info] of infos) {
    const content = layout.contentPath(path);
    if (!(await exists(content))) {
      problems.push({
        kind: 'missing-content',
        path,
        message: `path '${path}' is registered but its content is missing`,
      });
    } else if (options.checkContents) {
      const actual = await hashPath(content);
      if (!actual.hash.equals(info.narHash) || actual.size !== info.narSize) {
        problems.push({
          kind: 'hash-mismatch',
          path,
          message:
            `path '${path}' was modified! expected hash '${info.narHash.toTyped()}', got '${actual.hash.toTyped()}'` +
            (actual.size !== info.narSize ? ` (size ${info.narSize}, got ${actual.size})` : ''),
        });
      }
    }
    for (const ref of info.references) {
      if (!infos.has(ref)) {
        problems.push({
          kind: 'dangling-reference',
          path,
          message: `path '${path}' references path '${ref}', which is not valid`,
        });
      }
    }
  }
  for (const base of await layout.contentBaseNames()) {
    const path = layout.storePathOf(base);
    if (!infos.has(path)) {
      problems.push({
        kind: 'unregistered-content',
        path,
        message: `'${path}' has content in the store but no record (it is not valid)`,
      });
    }
  }
  const indexed = new Set(await index.all());
  const fromIndex = await index.getMany([...infos.keys()]);
  for (const [path, info] of infos) {
    const entry = fromIndex.get(path);
    if (!entry) {
      problems.push({
        kind: 'index-missing',
        path,
        message: `path '${path}' is valid but missing from the index`,
      });
    } else if (serializeRecord(entry) !== serializeRecord(info)) {
      problems.push({
        kind: 'index-differs',
        path,
        message: `the index entry of '${path}' differs from its record`,
      });
    }
  }
  for (const path of indexed) {
    if (!infos.has(path)) {
      problems.push({ kind: 'index-stale', path, message: `the index lists '${path}', which has no record` });
    }
  }
  return { checked: infos.size, problems };
}

export interface ReindexReport {
  /** Paths now in the index. */
  readonly indexed: number;
  /** Index entries dropped because they had no record. */
  readonly dropped: number;
  /** Corrupt records (left out of the index). */
  readonly problems: VerifyProblem[];
}

/**
 * Rebuilds the index from the records: puts every record, then drops entries without
 * one. The index is never empty in between, so it can run while the store serves, and
 * while other processes write to a shared (Redis) index: each entry is replaced in
 * place, never removed and re-added, and the final pass asks the volume again about
 * every entry, so a path deleted since the scan is dropped even if the scan saw it.
 * (What it cannot see: another process changing a record's signatures between the scan
 * and the put leaves the older signatures in the index until the next reindex; `verify`
 * reports it as index-differs.)
 */
export async function reindex(ctx: StoreContext): Promise<ReindexReport> {
  const { infos, problems } = await scanRecords(ctx);
  for (const info of infos.values()) await ctx.index.put(info);
  let dropped = 0;
  for (const path of await ctx.index.all()) {
    // Re-check on disk: an import may have registered it since the scan, or a deletion
    // removed it since.
    if (!(await exists(ctx.layout.recordPath(path)))) {
      await ctx.index.delete(path);
      dropped++;
    }
  }
  return { indexed: infos.size, dropped, problems };
}
