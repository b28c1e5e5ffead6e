/**
 * `Coordination` (coordination.ts) for processes sharing one volume and one Redis:
 * gateway replicas and `nixyard build-drv` (local children or build pods).
 *
 * - Per-path locks are `RedisLock` leases (redis-registry.ts) of `ttlMs`, renewed every
 *   third of it while held; a process that dies holding one frees it after `ttlMs`.
 *   A waiter waits as long as the holder renews (Nix also waits for a path lock), but a
 *   Redis it cannot reach fails it at once with ERR_STORE_REDIS_UNAVAILABLE.
 * - Sessions register in `RedisTempRoots` with a TTL of `ttlMs` and a heartbeat; their
 *   temp roots live there, so a GC on any replica sees every live session's roots, and
 *   those of a replica that died vanish with its registrations after `ttlMs`.
 * - The GC lock is the Redis lock `gc`: one collector in the cluster at a time.
 */
import type { Redis } from 'ioredis';
import {
  GC_LOCK_KEY,
  withEach,
  type Coordination,
  type PathLockOptions,
  type PathLocks,
  type SessionHandle,
  type SessionOpenOptions,
} from './coordination.js';
import { RedisLock, RedisTempRoots } from './redis-registry.js';
import { REDIS_TTL_ENV, REDIS_URL_ENV } from './redis.js';

export interface RedisCoordinationOptions {
  /** The URL the client was made from: build-drv children connect to it too. */
  readonly url: string;
  /** Key prefix shared with the index (RedisPathIndex.prefix). */
  readonly prefix?: string;
  /** Lease of locks and TTL of session registrations, ms (default 30000). */
  readonly ttlMs?: number;
}

/** Default lifetime of a lease or registration whose holder stopped renewing it, ms. */
export const DEFAULT_REDIS_TTL_MS = 30000;

class RedisPathLocks implements PathLocks {
  constructor(
    private readonly lock: RedisLock,
    private readonly leaseMs: number,
  ) {}

  with<T>(
    keys: string | readonly string[],
    fn: (signal: AbortSignal) => Promise<T>,
    options: PathLockOptions = {},
  ): Promise<T> {
    const lockOptions = (key: string) => ({
      leaseMs: this.leaseMs,
      signal: options.signal,
      onWait: options.onWait && (() => options.onWait?.(key)),
    });
    return withEach(keys, (key, inner) => this.lock.with(key, inner, lockOptions(key)), fn);
  }
}

/** Coordination through the Redis that `client` talks to; the caller closes the client. */
export function redisCoordination(client: Redis, options: RedisCoordinationOptions): Coordination {
  const ttlMs = options.ttlMs ?? DEFAULT_REDIS_TTL_MS;
  const registry = { ...(options.prefix === undefined ? {} : { prefix: options.prefix }) };
  const lock = new RedisLock(client, registry);
  const tempRoots = new RedisTempRoots(client, registry);
  return {
    kind: 'redis',
    locks: new RedisPathLocks(lock, ttlMs),
    tempRoots,
    async openSession(sessionId: string, o: SessionOpenOptions = {}): Promise<SessionHandle> {
      const registration = await tempRoots.register(sessionId, {
        ttlMs,
        ...(o.info ? { info: o.info } : {}),
        ...(o.onExpired ? { onExpired: o.onExpired } : {}),
      });
      return { sessionId, close: () => registration.close() };
    },
    async liveSessions(ids: readonly string[]): Promise<Set<string>> {
      const live = await Promise.all(ids.map((id) => tempRoots.isRegistered(id)));
      return new Set(ids.filter((_, i) => live[i]));
    },
    withGcLock: (fn) => lock.with(GC_LOCK_KEY, fn, { leaseMs: ttlMs }),
    builderEnv: { [REDIS_URL_ENV]: options.url, [REDIS_TTL_ENV]: String(ttlMs / 1000) },
    close: () => Promise.resolve(),
  };
}
