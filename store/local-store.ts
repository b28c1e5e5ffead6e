/**
 * The store on a data directory (layout.ts): imports, queries, signatures, deletion,
 * and the operator checks. Queries are answered by the index (path-index.ts), never by
 * touching the volume per path; records on the volume are the truth it is rebuilt from.
 */
import { isNixBase32Char } from '../nix/hash.js';
import { dumpPath } from '../nix/nar/writer.js';
import { HASH_PART_LENGTH, isStorePath, STORE_DIR } from '../nix/store-path.js';
import { StoreError, StoreErrorCode, notValid } from './errors.js';
import { removeTree, renameAway } from './fs-util.js';
import {
  memoryCoordination,
  type Coordination,
  type PathLockOptions,
  type SessionHandle,
  type SessionOpenOptions,
} from './coordination.js';
import {
  addToStore,
  importBatch,
  importNar,
  type BatchItem,
  type CommitOptions,
  type ImportOptions,
  type StoreContext,
} from './import.js';
import { StoreLayout } from './layout.js';
import { MemoryPathIndex } from './memory-index.js';
import { RecordPathIndex } from './record-index.js';
import type { PathIndex } from './path-index.js';
import type { PathInfo } from './path-info.js';
import { deleteRecord, readRecord, writeRecord } from './records.js';
import type { AddToStoreRequest, NarClaim } from './staging.js';
import type { TempRootRegistry } from './redis-registry.js';
import { registerBuiltPaths, type BuiltPath } from './register-built.js';
import { reindex, verifyStore, type ReindexReport, type VerifyOptions, type VerifyReport } from './verify.js';

export interface LocalStoreOptions {
  /** The data directory (created if missing). */
  readonly dataDir: string;
  /** Logical store directory; `/nix/store` unless testing. */
  readonly storeDir?: string;
  /**
   * Default: a fresh in-process index. `'records'`: read the records on every query and
   * skip the reindex (short-lived processes that ask about few paths: build-drv, CLIs).
   */
  readonly index?: PathIndex | 'records';
  /** Rebuild the index from the records on open. Default true (an in-process index starts empty). */
  readonly reindex?: boolean;
  /**
   * Remove leftover staging on open. Default true; false for tools that open a store
   * another process may be serving (its uploads in progress live in staging/);
   * `{ olderThanMs }` for processes sharing the volume (only stale leftovers go).
   */
  readonly cleanStaging?: boolean | { readonly olderThanMs: number };
  /** Clock for registrationTime, in unix seconds. */
  readonly now?: () => number;
  /**
   * Locks, sessions and temp roots, and the GC lock (coordination.ts). Default: in this
   * process only; `redisCoordination` when replicas and build pods share the volume.
   */
  readonly coordination?: Coordination;
}

export class LocalStore {
  readonly layout: StoreLayout;
  readonly index: PathIndex;
  readonly coordination: Coordination;
  private readonly ctx: StoreContext;

  private constructor(layout: StoreLayout, index: PathIndex, now: () => number, coordination: Coordination) {
    this.layout = layout;
    this.index = index;
    this.coordination = coordination;
    this.ctx = { layout, index, locks: coordination.locks, tempRoots: coordination.tempRoots, now };
  }

  /**
   * Opens (creating if needed) the store in `dataDir`: removes staging left over from a
   * crash and, unless told otherwise, rebuilds the index. Several processes may open one
   * data directory only with a shared index and coordination (Redis) and
   * `cleanStaging: { olderThanMs }` (or false).
   */
  static async open(options: LocalStoreOptions): Promise<LocalStore> {
    const layout = new StoreLayout(options.dataDir, options.storeDir ?? STORE_DIR);
    await layout.create();
    const clean = options.cleanStaging ?? true;
    if (clean !== false) await layout.cleanStaging(clean === true ? undefined : clean.olderThanMs);
    const fromRecords = options.index === 'records';
    const index =
      options.index === 'records' ? new RecordPathIndex(layout) : (options.index ?? new MemoryPathIndex());
    const store = new LocalStore(
      layout,
      index,
      options.now ?? (() => Math.floor(Date.now() / 1000)),
      options.coordination ?? memoryCoordination(),
    );
    if (options.reindex ?? !fromRecords) await store.reindex();
    return store;
  }

  get storeDir(): string {
    return this.layout.storeDir;
  }

  // ---- sessions, temp roots, locks (coordination.ts) ----

  /** Temp roots of every live session (of every replica, with Redis). */
  get tempRoots(): TempRootRegistry {
    return this.coordination.tempRoots;
  }

  /** Registers a protocol session or a build; its temp roots count until it is closed. */
  openSession(sessionId: string, options?: SessionOpenOptions): Promise<SessionHandle> {
    return this.coordination.openSession(sessionId, options);
  }

  /** Runs `fn` holding the per-path locks of `paths` (a build's outputs). */
  withPathLocks<T>(
    paths: readonly string[],
    fn: (signal: AbortSignal) => Promise<T>,
    options?: PathLockOptions,
  ): Promise<T> {
    return this.coordination.locks.with(paths, fn, options);
  }

  /** Runs `fn` as the only garbage collector on this store (cluster-wide with Redis). */
  withGcLock<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.coordination.withGcLock(fn);
  }

  // ---- imports (import.ts) ----

  /** AddToStoreNar: import one NAR as `claim.path` after verifying it. */
  importNar(claim: NarClaim, nar: AsyncIterable<Uint8Array>, options?: ImportOptions): Promise<PathInfo> {
    return importNar(this.ctx, claim, nar, options);
  }

  /** AddMultipleToStore / ImportPaths: references may point forward within the batch. */
  importBatch(items: AsyncIterable<BatchItem>, options?: ImportOptions): Promise<PathInfo[]> {
    return importBatch(this.ctx, items, options);
  }

  /** AddToStore: content-address `data` by `req.method` and store it. */
  addToStore(
    req: AddToStoreRequest,
    data: AsyncIterable<Uint8Array>,
    options?: ImportOptions,
  ): Promise<PathInfo> {
    return addToStore(this.ctx, req, data, options);
  }

  /** AddTextToStore (and `builtins.toFile`): a `text:sha256` path. */
  addTextToStore(
    name: string,
    text: string | Uint8Array,
    references: readonly string[] = [],
    options?: ImportOptions,
  ): Promise<PathInfo> {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    return addToStore(this.ctx, { name, method: 'text:sha256', references }, oneChunk(bytes), options);
  }

  // ---- queries (index only) ----

  /** The info of a valid path, or undefined. */
  queryPathInfo(path: string): Promise<PathInfo | undefined> {
    return this.index.get(path);
  }

  /** Like `queryPathInfo`, but `path '…' is not valid` if it is not. */
  async requirePathInfo(path: string): Promise<PathInfo> {
    const info = await this.index.get(path);
    if (!info) throw notValid(path);
    return info;
  }

  queryPathInfos(paths: readonly string[]): Promise<Map<string, PathInfo>> {
    return this.index.getMany(paths);
  }

  async isValid(path: string): Promise<boolean> {
    return (await this.index.has([path])).has(path);
  }

  /** The valid subset of `paths` (one index query for the whole batch). */
  queryValid(paths: readonly string[]): Promise<Set<string>> {
    return this.index.has(paths);
  }

  queryAll(): Promise<string[]> {
    return this.index.all();
  }

  queryReferrers(path: string): Promise<string[]> {
    return this.index.referrers(path);
  }

  /**
   * The recorded deriver of `path`, if it is valid itself. (Nix also finds .drvs that
   * name `path` as an output; that needs derivation parsing and lives above the store.)
   */
  async queryValidDerivers(path: string): Promise<string[]> {
    const deriver = (await this.index.get(path))?.deriver;
    if (deriver === undefined) return [];
    return (await this.index.has([deriver])).has(deriver) ? [deriver] : [];
  }

  /** The valid path with this hash part (QueryPathFromHashPart), if any. */
  async queryPathFromHashPart(hashPart: string): Promise<string | undefined> {
    if (hashPart.length !== HASH_PART_LENGTH || ![...hashPart].every(isNixBase32Char)) return undefined;
    return this.index.fromHashPart(hashPart);
  }

  /**
   * The NAR of a valid path (NarFromPath). Validity is checked before this resolves, so
   * the caller can answer `path '…' is not valid` before it starts streaming.
   */
  async narFromPath(path: string): Promise<AsyncIterable<Uint8Array>> {
    if (!isStorePath(path, this.storeDir) || !(await this.isValid(path))) throw notValid(path);
    return dumpPath(this.layout.contentPath(path));
  }

  /** The closure of `paths` under references (invalid starting paths are an error). */
  async queryClosure(paths: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    let frontier = [...new Set(paths)];
    while (frontier.length > 0) {
      const infos = await this.index.getMany(frontier);
      const next: string[] = [];
      for (const p of frontier) {
        const info = infos.get(p);
        if (!info) throw notValid(p);
        out.add(p);
        for (const r of info.references) if (!out.has(r)) next.push(r);
      }
      frontier = [...new Set(next)].filter((p) => !out.has(p));
    }
    return out;
  }

  // ---- changes to valid paths ----

  /** Adds signatures to a valid path's record (AddSignatures); duplicates are dropped. */
  async addSignatures(path: string, sigs: readonly string[]): Promise<PathInfo> {
    return this.ctx.locks.with(path, async () => {
      const info = await readRecord(this.layout, path);
      if (!info) throw notValid(path);
      const merged = [...new Set([...info.sigs, ...sigs])];
      if (merged.length === info.sigs.length) return info;
      const updated: PathInfo = { ...info, sigs: merged };
      await writeRecord(this.layout, updated);
      await this.index.put(updated);
      return updated;
    });
  }

  /**
   * Deletes a valid path (`nix-store --delete`): refused while another valid path refers
   * to it or a session (of any replica) holds it as a temp root. The record goes first
   * (the path stops being valid), then the index entry, then the content.
   *
   * A session roots a path before it relies on the path being valid (import.ts), so
   * between the check here and the deletion a session elsewhere may have rooted it and
   * found it valid, or registered a path referring to it. So the check runs again once
   * the path is invalid; if it fails now, the record is put back (the content was not
   * touched yet) and the deletion refused.
   */
  async deletePath(path: string): Promise<void> {
    await this.ctx.locks.with(path, async (signal) => {
      const info = await readRecord(this.layout, path);
      if (!info) throw notValid(path);
      await this.checkDeletable(path);
      signal.throwIfAborted();
      await deleteRecord(this.layout, path);
      await this.index.delete(path);
      try {
        await this.checkDeletable(path);
        signal.throwIfAborted();
      } catch (err) {
        await writeRecord(this.layout, info);
        await this.index.put(info);
        throw err;
      }
      const trash = await this.layout.newStagingDir();
      try {
        await renameAway(this.layout.contentPath(path), `${trash}/content`);
      } finally {
        await removeTree(trash);
      }
    });
  }

  private async checkDeletable(path: string): Promise<void> {
    const referrers = (await this.index.referrers(path)).filter((r) => r !== path);
    if (referrers.length > 0) {
      throw new StoreError(
        StoreErrorCode.PATH_IN_USE,
        `cannot delete path '${path}' because it is in use by '${referrers[0]}'`,
        { path, referrer: referrers[0] },
      );
    }
    if (await this.tempRoots.has(path)) {
      throw new StoreError(
        StoreErrorCode.PATH_IN_USE,
        `cannot delete path '${path}' since it is still alive (a session holds it)`,
        { path },
      );
    }
  }

  /**
   * Registers the canonical outputs of a local build (register-built.ts); `locked` when
   * the caller holds the outputs' locks (`withPathLocks`).
   */
  registerBuilt(outputs: readonly BuiltPath[], options?: CommitOptions): Promise<PathInfo[]> {
    return registerBuiltPaths(this.ctx, outputs, options);
  }

  /**
   * Re-reads the records of `paths` into the index: another process (a build run as a
   * child, a build pod) may have registered or deleted them on the shared volume.
   */
  async refresh(paths: readonly string[]): Promise<void> {
    for (const path of paths) {
      const info = await readRecord(this.layout, path);
      if (info) await this.index.put(info);
      else await this.index.delete(path);
    }
  }

  // ---- operators ----

  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    return verifyStore(this.ctx, options);
  }

  async reindex(): Promise<ReindexReport> {
    const report = await reindex(this.ctx);
    await this.index.reindexed?.();
    return report;
  }
}

// eslint-disable-next-line @typescript-eslint/require-await -- the data is already in memory
async function* oneChunk(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.length > 0) yield bytes;
}
