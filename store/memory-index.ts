/** The in-process `PathIndex` of the embedded default (and of tests). */
import { HASH_PART_LENGTH } from '../nix/store-path.js';
import type { PathIndex } from './path-index.js';
import type { PathInfo } from './path-info.js';

export class MemoryPathIndex implements PathIndex {
  private readonly infos = new Map<string, PathInfo>();
  /** path → paths that refer to it. */
  private readonly referrersOf = new Map<string, Set<string>>();
  /** hash part → paths with that hash part (normally one). */
  private readonly byHashPart = new Map<string, Set<string>>();

  has(paths: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(paths.filter((p) => this.infos.has(p))));
  }

  get(path: string): Promise<PathInfo | undefined> {
    return Promise.resolve(this.infos.get(path));
  }

  getMany(paths: readonly string[]): Promise<Map<string, PathInfo>> {
    const out = new Map<string, PathInfo>();
    for (const p of paths) {
      const info = this.infos.get(p);
      if (info) out.set(p, info);
    }
    return Promise.resolve(out);
  }

  put(info: PathInfo): Promise<void> {
    this.remove(info.path);
    this.infos.set(info.path, info);
    for (const ref of info.references) addTo(this.referrersOf, ref, info.path);
    addTo(this.byHashPart, hashPartOf(info.path), info.path);
    return Promise.resolve();
  }

  delete(path: string): Promise<void> {
    this.remove(path);
    return Promise.resolve();
  }

  all(): Promise<string[]> {
    return Promise.resolve([...this.infos.keys()].sort());
  }

  referrers(path: string): Promise<string[]> {
    return Promise.resolve([...(this.referrersOf.get(path) ?? [])].sort());
  }

  fromHashPart(hashPart: string): Promise<string | undefined> {
    return Promise.resolve([...(this.byHashPart.get(hashPart) ?? [])].sort()[0]);
  }

  clear(): Promise<void> {
    this.infos.clear();
    this.referrersOf.clear();
    this.byHashPart.clear();
    return Promise.resolve();
  }

  private remove(path: string): void {
    const old = this.infos.get(path);
    if (!old) return;
    this.infos.delete(path);
    for (const ref of old.references) removeFrom(this.referrersOf, ref, path);
    removeFrom(this.byHashPart, hashPartOf(path), path);
  }
}

function hashPartOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.slice(0, HASH_PART_LENGTH);
}

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}
