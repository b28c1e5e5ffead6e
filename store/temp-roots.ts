/**
 * Temporary GC roots per session: paths a session has uploaded, queried or is building
 * with, which garbage collection and `deletePath` must not remove until the session
 * ends. The in-process `Coordination`'s registry (coordination.ts); replicas sharing a
 * store use `RedisTempRoots` (redis-registry.ts) instead.
 */
export class TempRoots {
  private readonly sessions = new Map<string, Set<string>>();

  add(sessionId: string, paths: Iterable<string>): void {
    let set = this.sessions.get(sessionId);
    if (!set) this.sessions.set(sessionId, (set = new Set()));
    for (const p of paths) set.add(p);
  }

  /** Drops every root of the session (call when it disconnects). */
  release(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  of(sessionId: string): ReadonlySet<string> {
    return this.sessions.get(sessionId) ?? new Set();
  }

  has(path: string): boolean {
    for (const set of this.sessions.values()) if (set.has(path)) return true;
    return false;
  }

  all(): Set<string> {
    const out = new Set<string>();
    for (const set of this.sessions.values()) for (const p of set) out.add(p);
    return out;
  }
}
