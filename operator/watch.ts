/**
 * Informers that keep going. client-node 1.4.0's informer stops for good on any error
 * but 410, and its watch request has no timeout, so a half-open connection can hang it
 * silently (kubernetes/NOTES.md §2.2). Here: restart after an error with jittered,
 * capped backoff, and restart (list, then watch anew) every relist interval; each list
 * also reports every object, which is the operator's periodic resync.
 *
 * The cache is this class's own, not the informer's: it outlives each restart (between
 * the stop of one informer and the first list of the next it is stale, never empty),
 * a list replaces it whole (objects gone from the list are reported as deleted), and
 * it can be indexed (e.g. Jobs by the NixBuild label) so that a reader gets its few
 * objects without a scan. Events of an informer that has been replaced are ignored.
 */
import * as k8s from '@kubernetes/client-node';

export interface WatchOptions<T extends k8s.KubernetesObject> {
  readonly kubeConfig: k8s.KubeConfig;
  /** e.g. /apis/batch/v1/namespaces/builds/jobs */
  readonly path: string;
  readonly list: () => Promise<k8s.KubernetesListObject<T>>;
  readonly labelSelector?: string;
  /** Called for every add, update and delete, and for every object of each list. */
  readonly onObject: (obj: T, event: 'add' | 'update' | 'delete' | 'list') => void;
  /** The cache's index key of an object (undefined: not indexed); read with byIndex. */
  readonly indexBy?: (obj: T) => string | undefined;
  readonly relistMs: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly onRestart?: (reason: 'error' | 'relist', err?: unknown) => void;
}

const keyOf = (o: k8s.KubernetesObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class ResilientWatch<T extends k8s.KubernetesObject> {
  private informer: (k8s.Informer<T> & k8s.ObjectCache<T>) | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private synced = false;
  private readonly objects = new Map<string, T>();
  private readonly index = new Map<string, Map<string, T>>();
  private readonly indexed = new Map<string, string>();
  private syncWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly options: WatchOptions<T>) {}

  /** True once a list has succeeded (the cache then holds what the API server had). */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once a list has succeeded (at once if one has); rejects if stopped before. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    if (this.stopped) return Promise.reject(new Error(`the watch of ${this.options.path} is stopped`));
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  /** Every object in the cache. */
  list(): readonly T[] {
    return [...this.objects.values()];
  }

  /** The cached objects whose index key (options.indexBy) is `key`. */
  byIndex(key: string): readonly T[] {
    const bucket = this.index.get(key);
    return bucket ? [...bucket.values()] : [];
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.run();
    this.relistTimer = setInterval(() => void this.restart('relist'), this.options.relistMs);
    this.relistTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.relistTimer) clearInterval(this.relistTimer);
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w.reject(new Error(`the watch of ${this.options.path} is stopped`));
    const informer = this.informer;
    this.informer = undefined;
    await informer?.stop();
  }

  private put(obj: T): void {
    const key = keyOf(obj);
    this.objects.set(key, obj);
    const was = this.indexed.get(key);
    const now = this.options.indexBy?.(obj);
    if (was !== undefined && was !== now) this.unindex(key, was);
    if (now === undefined) return;
    let bucket = this.index.get(now);
    if (!bucket) this.index.set(now, (bucket = new Map<string, T>()));
    bucket.set(key, obj);
    this.indexed.set(key, now);
  }

  private remove(obj: T): void {
    const key = keyOf(obj);
    this.objects.delete(key);
    const was = this.indexed.get(key);
    if (was !== undefined) this.unindex(key, was);
  }

  private unindex(key: string, value: string): void {
    const bucket = this.index.get(value);
    bucket?.delete(key);
    if (bucket?.size === 0) this.index.delete(value);
    this.indexed.delete(key);
  }

  private markSynced(): void {
    this.synced = true;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const { options } = this;
    // Called only after `informer` below is set (the list runs from informer.start()).
    const current = () => this.informer === informer;
    const list = async () => {
      const result = await options.list();
      // Replaced meanwhile: fail, so that this informer neither applies it nor watches.
      if (!current()) throw new Error('superseded by a newer list');
      // The list is the whole truth as of its resourceVersion: what it lacks is gone.
      const listed = new Set(result.items.map(keyOf));
      for (const [key, old] of [...this.objects]) {
        if (listed.has(key)) continue;
        this.remove(old);
        options.onObject(old, 'delete');
      }
      for (const item of result.items) this.put(item);
      // Only a list that worked ends a run of failures ('connect' comes before the list).
      this.failures = 0;
      this.markSynced();
      for (const item of result.items) options.onObject(item, 'list');
      return result;
    };
    const informer = k8s.makeInformer<T>(options.kubeConfig, options.path, list, options.labelSelector);
    informer.on('add', (o) => {
      if (!current()) return;
      this.put(o);
      options.onObject(o, 'add');
    });
    informer.on('update', (o) => {
      if (!current()) return;
      this.put(o);
      options.onObject(o, 'update');
    });
    informer.on('delete', (o) => {
      if (!current()) return;
      this.remove(o);
      options.onObject(o, 'delete');
    });
    informer.on('error', (err: unknown) => {
      if (this.informer !== informer) return;
      this.scheduleRestart(err);
    });
    this.informer = informer;
    try {
      // Resolves after a failed list too (reported through 'error'); throws if the watch does.
      await informer.start();
    } catch (err) {
      if (current()) this.scheduleRestart(err);
    }
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || this.timer) return;
    this.failures++;
    const min = this.options.minBackoffMs ?? 1000;
    const max = this.options.maxBackoffMs ?? 30_000;
    const base = Math.min(max, min * 2 ** Math.min(this.failures - 1, 16));
    const delay = base / 2 + (Math.random() * base) / 2;
    this.options.onRestart?.('error', err);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.restart();
    }, delay);
    this.timer.unref();
  }

  private async restart(reason?: 'relist'): Promise<void> {
    if (this.stopped) return;
    if (reason) this.options.onRestart?.(reason);
    const old = this.informer;
    this.informer = undefined;
    await old?.stop().catch(() => {});
    await this.run();
  }
}
