/**
 * The simulated cluster's clock: wall time plus an offset that tests can advance, so
 * that activeDeadlineSeconds, ttlSecondsAfterFinished, grace periods and node-loss
 * timeouts can pass in milliseconds. Timers fire on real time or when advanced past.
 */
export class SimClock {
  private offset = 0;
  private timers = new Set<{ at: number; fn: () => void; handle: NodeJS.Timeout }>();

  now(): number {
    return Date.now() + this.offset;
  }

  /** Runs fn once `ms` of simulated time have passed. Returns a cancel function. */
  after(ms: number, fn: () => void): () => void {
    const timer = {
      at: this.now() + ms,
      fn,
      handle: setTimeout(() => this.fire(timer), Math.max(0, ms)),
    };
    timer.handle.unref();
    this.timers.add(timer);
    return () => {
      clearTimeout(timer.handle);
      this.timers.delete(timer);
    };
  }

  /** Jumps simulated time forward; due timers run now. */
  advance(ms: number): void {
    this.offset += ms;
    const now = this.now();
    for (const t of [...this.timers].sort((a, b) => a.at - b.at)) if (t.at <= now) this.fire(t);
  }

  private fire(t: { fn: () => void; handle: NodeJS.Timeout }): void {
    if (!this.timers.delete(t as never)) return;
    clearTimeout(t.handle);
    t.fn();
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t.handle);
    this.timers.clear();
  }
}
