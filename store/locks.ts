/**
 * Per-key mutual exclusion within this process (one key per store path). Imports of
 * the same path from two sessions commit one after the other; different paths never
 * wait for each other. This is the in-process `Coordination`'s lock (coordination.ts);
 * across processes (several gateway replicas, build pods) `RedisLock` takes its role.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier holder of `key` is done. */
  async with<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => current);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys held or waited for right now (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
