/**
 * Informers that keep going. client-node 1.4.0's informer stops for good on any error
 * but 410, and its watch request has no timeout, so a half-open connection can hang it
 * silently (kubernetes/NOTES.md §2.2). Here: restart after an error with jittered,
 * capped backoff, and restart (list, then watch anew) every relist interval; each list
 * also reports every object, which is the operator's periodic resync.
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
  readonly relistMs: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly onRestart?: (reason: 'error' | 'relist', err?: unknown) => void;
}

export class ResilientWatch<T extends k8s.KubernetesObject> {
  private informer: (k8s.Informer<T> & k8s.ObjectCache<T>) | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private synced = false;

  constructor(private readonly options: WatchOptions<T>) {}

  /** True once a list has succeeded (and until a restart fails). */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** Objects in the cache of the current informer. */
  list(): readonly T[] {
    return this.informer?.list() ?? [];
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
    const informer = this.informer;
    this.informer = undefined;
    await informer?.stop();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const { options } = this;
    const list = async () => {
      const result = await options.list();
      for (const item of result.items) options.onObject(item, 'list');
      return result;
    };
    const informer = k8s.makeInformer<T>(options.kubeConfig, options.path, list, options.labelSelector);
    informer.on('add', (o) => options.onObject(o, 'add'));
    informer.on('update', (o) => options.onObject(o, 'update'));
    informer.on('delete', (o) => options.onObject(o, 'delete'));
    informer.on('connect', () => {
      this.failures = 0;
      this.synced = true;
    });
    informer.on('error', (err: unknown) => {
      if (this.informer !== informer) return;
      this.scheduleRestart(err);
    });
    this.informer = informer;
    try {
      await informer.start();
      this.synced = true;
      this.failures = 0;
    } catch (err) {
      this.scheduleRestart(err);
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
