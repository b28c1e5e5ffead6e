/**
 * An index that is the records themselves: every query reads meta/ directly. For short
 * processes on a shared volume (a `nixyard build-drv` child, a build pod) that ask about
 * a few dozen paths: opening costs nothing, where an in-process index would first read
 * every record of the store. Writes are no-ops — the records already say it all.
 */
import { HASH_PART_LENGTH } from '../nix/store-path.js';
import type { StoreLayout } from './layout.js';
import type { PathIndex } from './path-index.js';
import type { PathInfo } from './path-info.js';
import { readRecord } from './records.js';

export class RecordPathIndex implements PathIndex {
  constructor(private readonly layout: StoreLayout) {}

  async has(paths: readonly string[]): Promise<Set<string>> {
    return new Set((await this.getMany(paths)).keys());
  }

  get(path: string): Promise<PathInfo | undefined> {
    return readRecord(this.layout, path);
  }

  async getMany(paths: readonly string[]): Promise<Map<string, PathInfo>> {
    const out = new Map<string, PathInfo>();
    for (const p of new Set(paths)) {
      const info = await readRecord(this.layout, p);
      if (info) out.set(p, info);
    }
    return out;
  }

  put(): Promise<void> {
    return Promise.resolve();
  }

  delete(): Promise<void> {
    return Promise.resolve();
  }

  async all(): Promise<string[]> {
    return (await this.layout.recordBaseNames()).map((b) => `${this.layout.storeDir}/${b}`).sort();
  }

  async referrers(path: string): Promise<string[]> {
    const infos = await this.getMany(await this.all());
    return [...infos.values()].filter((i) => i.references.includes(path)).map((i) => i.path);
  }

  async fromHashPart(hashPart: string): Promise<string | undefined> {
    const base = (await this.layout.recordBaseNames()).find((b) => b.slice(0, HASH_PART_LENGTH) === hashPart);
    return base === undefined ? undefined : `${this.layout.storeDir}/${base}`;
  }

  clear(): Promise<void> {
    return Promise.resolve();
  }
}
