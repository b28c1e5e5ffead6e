/**
 * What processes sharing one store volume must agree on, behind one interface with two
 * implementations, chosen when the store is opened (`LocalStore.open({ coordination })`):
 *
 * - `memoryCoordination()` (here): one process owns the data directory, as the embedded
 *   default does. Per-path locks are a `KeyedLock`, temp roots a `TempRoots`, the GC
 *   lock one more key. Nothing leaves the process and nothing waits on I/O.
 * - `redisCoordination()` (redis-coordination.ts): gateway replicas and build pods on one
 *   volume and one Redis. Locks are Redis leases, sessions register themselves with a
 *   heartbeat and keep their temp roots in Redis, and the GC lock is cluster-wide.
 *
 * The store and the protocol sessions only ever talk to this interface.
 */
import { KeyedLock } from './locks.js';
import type { TempRootRegistry } from './redis-registry.js';
import { TempRoots } from './temp-roots.js';

/** Mutual exclusion per store path (uploads, registration, deletion, a build's outputs). */
export interface PathLocks {
  /**
   * Runs `fn` holding the lock on every one of `keys` (taken in sorted order, so two
   * holders of overlapping sets never deadlock). `signal` aborts if a lock is lost (a
   * Redis lease could not be renewed): `fn` should stop before it changes more.
   */
  with<T>(
    keys: string | readonly string[],
    fn: (signal: AbortSignal) => Promise<T>,
    options?: PathLockOptions,
  ): Promise<T>;
}

export interface PathLockOptions {
  /** Gives up waiting for a lock another holds (a cancelled build); rejects with its reason. */
  readonly signal?: AbortSignal | undefined;
  /** Called (with the key) when a lock is found held by another process, before waiting (Redis). */
  readonly onWait?: ((key: string) => void) | undefined;
}

/** What is stored about a session, for operators (`redis-cli GET nixyard:session:<id>`). */
export type SessionInfo = Readonly<Record<string, string | number | boolean>>;

/** A registered session: its temp roots count for GC (everywhere) until `close`. */
export interface SessionHandle {
  readonly sessionId: string;
  /** Drops the registration and every temp root of the session. */
  close(): Promise<void>;
}

export interface SessionOpenOptions {
  readonly info?: SessionInfo;
  /** Called if the registration is found expired while the session runs (its roots are gone). */
  readonly onExpired?: () => void;
}

export interface Coordination {
  readonly kind: 'memory' | 'redis';
  readonly locks: PathLocks;
  /** Temp roots of every live session this coordination can see. */
  readonly tempRoots: TempRootRegistry;
  /** Registers a session; its temp roots may be added only while it is registered. */
  openSession(sessionId: string, options?: SessionOpenOptions): Promise<SessionHandle>;
  /**
   * Which of `sessionIds` are registered now (in this process, or on any replica through
   * Redis): a NixBuild's requesters that are not belong to a gateway that died.
   */
  liveSessions(sessionIds: readonly string[]): Promise<Set<string>>;
  /** Runs `fn` as the only garbage collector (of this process, or of the cluster). */
  withGcLock<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /**
   * The environment that gives a `nixyard build-drv` child the same coordination (empty in
   * memory: the child works on records and its own locks). An environment, not flags:
   * the Redis URL may hold a password, which `ps` must not show.
   */
  readonly builderEnv: Readonly<Record<string, string>>;
  /** Releases connections (not the sessions: close those first). */
  close(): Promise<void>;
}

/** The key of the cluster's garbage collector lock (never a store path). */
export const GC_LOCK_KEY = 'gc';

function sortedKeys(keys: string | readonly string[]): string[] {
  return typeof keys === 'string' ? [keys] : [...new Set(keys)].sort();
}

/** Runs `fn` under `one(key, …)` for every key in order, nesting the holds. */
export async function withEach<T>(
  keys: string | readonly string[],
  one: <R>(key: string, inner: (signal: AbortSignal) => Promise<R>) => Promise<R>,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const list = sortedKeys(keys);
  const signals: AbortSignal[] = [];
  const step = (i: number): Promise<T> => {
    const key = list[i];
    if (key === undefined) return fn(signals.length === 1 ? signals[0]! : AbortSignal.any(signals));
    return one(key, (signal) => {
      signals.push(signal);
      return step(i + 1);
    });
  };
  return step(0);
}

const NEVER = new AbortController().signal;

/**
 * In-process locks: `KeyedLock` per key. The lock cannot be lost, so `fn`'s signal never
 * aborts; waiting is not abortable either (holders in one process are short).
 */
export class MemoryPathLocks implements PathLocks {
  private readonly lock = new KeyedLock();

  with<T>(keys: string | readonly string[], fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (typeof keys === 'string') return this.lock.with(keys, () => fn(NEVER));
    return withEach(keys, (key, inner) => this.lock.with(key, () => inner(NEVER)), fn);
  }

  /** Keys held or waited for (tests). */
  get size(): number {
    return this.lock.size;
  }
}

/** The embedded default: everything in this process. */
export function memoryCoordination(): Coordination {
  const locks = new MemoryPathLocks();
  const tempRoots = new TempRoots();
  const gc = new KeyedLock();
  const open = new Set<string>();
  return {
    kind: 'memory',
    locks,
    tempRoots,
    openSession: (sessionId) => {
      open.add(sessionId);
      return Promise.resolve({
        sessionId,
        close: () => {
          open.delete(sessionId);
          tempRoots.release(sessionId);
          return Promise.resolve();
        },
      });
    },
    liveSessions: (ids) => Promise.resolve(new Set(ids.filter((id) => open.has(id)))),
    withGcLock: (fn) => gc.with(GC_LOCK_KEY, () => fn(NEVER)),
    builderEnv: {},
    close: () => Promise.resolve(),
  };
}
