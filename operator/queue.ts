/**
 * A per-key work queue in front of reconcile (controller-runtime's workqueue, in small):
 * a key queued twice is reconciled once; one key is never reconciled twice at once (an
 * add during its reconcile runs it again afterwards); failures come back after a
 * per-key exponential backoff; `addAfter` schedules a requeue.
 */
export interface QueueOptions {
  readonly concurrency?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly onDepth?: (depth: number) => void;
}

export type Worker = (key: string) => Promise<{ requeueAfterMs?: number } | void>;

export class WorkQueue {
  private readonly queued: string[] = [];
  private readonly queuedSet = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  private readonly running = new Set<Promise<void>>();
  private closed = false;
  private readonly concurrency: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly worker: Worker,
    private readonly options: QueueOptions = {},
    private readonly onError: (key: string, err: unknown) => void = () => {},
  ) {
    this.concurrency = options.concurrency ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 5 * 60_000;
  }

  get depth(): number {
    return this.queued.length;
  }

  add(key: string): void {
    if (this.closed) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queuedSet.has(key)) return;
    this.queuedSet.add(key);
    this.queued.push(key);
    this.options.onDepth?.(this.queued.length);
    this.pump();
  }

  /** Adds the key after `ms`, unless a requeue of it is due sooner. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    const due = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { timer, due });
  }

  /** The backoff after the n-th consecutive failure of a key. */
  backoffMs(failures: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.max(0, failures - 1));
  }

  private pump(): void {
    while (!this.closed && this.active.size < this.concurrency && this.queued.length > 0) {
      const key = this.queued.shift()!;
      this.queuedSet.delete(key);
      this.options.onDepth?.(this.queued.length);
      this.active.add(key);
      const p = this.process(key).finally(() => {
        this.running.delete(p);
        this.active.delete(key);
        if (this.dirty.delete(key)) this.add(key);
        this.pump();
      });
      this.running.add(p);
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.worker(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      this.onError(key, err);
      this.addAfter(key, this.backoffMs(n));
    }
  }

  /** Stops taking work and waits for the reconciles in progress. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t.timer);
    this.timers.clear();
    this.queued.length = 0;
    this.queuedSet.clear();
    await Promise.allSettled([...this.running]);
  }

  /** Resolves when nothing is queued or running (tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0 || this.queued.length > 0) await Promise.allSettled([...this.running]);
  }
}
