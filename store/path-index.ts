/**
 * The index: a fast, rebuildable view of the records, answering batched queries
 * without touching the volume per path. In-process now (memory-index.ts); Redis,
 * shared between gateway replicas and build pods, later — behind this interface.
 *
 * The index is never the truth: records are. Losing it loses nothing; `reindex`
 * (verify.ts) rebuilds it from the records. Writers update it after the record is
 * durable, so it may briefly lag behind a new record, never run ahead of one.
 */
import type { PathInfo } from './path-info.js';

export interface PathIndex {
  /** The subset of `paths` that is valid. */
  has(paths: readonly string[]): Promise<Set<string>>;
  get(path: string): Promise<PathInfo | undefined>;
  /** Infos of the valid ones among `paths` (invalid ones are absent from the map). */
  getMany(paths: readonly string[]): Promise<Map<string, PathInfo>>;
  /** Adds or replaces the info of `info.path`. */
  put(info: PathInfo): Promise<void>;
  delete(path: string): Promise<void>;
  /** All valid paths, sorted. */
  all(): Promise<string[]>;
  /** Valid paths whose references include `path` (including `path` itself if it refers to itself). */
  referrers(path: string): Promise<string[]>;
  /** The valid path with this 32-character hash part, if any. */
  fromHashPart(hashPart: string): Promise<string | undefined>;
  clear(): Promise<void>;
  /**
   * Told when a complete reindex has just filled the index (optional): a shared index
   * remembers it, so replicas that start later need not rebuild it again.
   */
  reindexed?(): Promise<void>;
}
