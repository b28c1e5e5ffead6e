/**
 * The cluster's coordination state in Redis, beside the index (redis-index.ts):
 *
 *   <prefix>lock:<key>      string: the holder's random token, with a lease (PX). Taken
 *                           with SET NX PX; released and extended by Lua scripts that
 *                           check the token, so a holder whose lease ran out can never
 *                           release or extend the next holder's lock.
 *   <prefix>session:<id>    string: the session's registration (JSON), with a TTL the
 *                           owner's heartbeat renews
 *   <prefix>roots:<id>      set: the session's temp roots, with the same TTL, renewed by
 *                           the same script: when a registration expires (its replica
 *                           died), its roots vanish at the same moment
 *   <prefix>sessions        set of session ids, pruned of expired ones as it is read
 *
 * Lease times are kept by Redis's clock, so skew between pods does not matter; what a
 * holder must do is finish (or extend) within its lease: `RedisLock.with` extends it
 * every third of the lease and aborts the holder's signal if an extension fails.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { StoreError, StoreErrorCode } from './errors.js';
import { escapeGlob, redisCall } from './redis.js';
import { DEFAULT_REDIS_PREFIX } from './redis-index.js';

type MaybePromise<T> = T | Promise<T>;

/**
 * Temp roots per session: the in-process `TempRoots` (temp-roots.ts) satisfies it as
 * is; `RedisTempRoots` is the shared one. Callers `await` every result.
 */
export interface TempRootRegistry {
  add(sessionId: string, paths: Iterable<string>): MaybePromise<void>;
  /** Drops every root of the session. */
  release(sessionId: string): MaybePromise<void>;
  of(sessionId: string): MaybePromise<ReadonlySet<string>>;
  /** Whether any live session holds `path`. */
  has(path: string): MaybePromise<boolean>;
  /** The roots of every live session. */
  all(): MaybePromise<Set<string>>;
}

export interface RegistryOptions {
  /** Key prefix (default `nixyard:`), as the store's RedisPathIndex. */
  readonly prefix?: string;
}

// ---- locks ----

// KEYS: lock; ARGV: token
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
// KEYS: lock; ARGV: token, lease ms
const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

export interface LockOptions {
  /** How long the lock stays held if its holder vanishes, ms (default 30000). */
  readonly leaseMs?: number;
  /** How long to wait for a held lock before ERR_STORE_LOCK_TIMEOUT, ms (default: forever). */
  readonly waitMs?: number;
  /** Stops waiting for a held lock (rejects with the signal's reason). */
  readonly signal?: AbortSignal | undefined;
  /** Called once if the lock is held by another, before waiting for it. */
  readonly onWait?: (() => void) | undefined;
}

export interface Lease {
  readonly key: string;
  readonly token: string;
  /** Renews the lease; false if it was lost (expired and possibly taken by another). */
  extend(leaseMs?: number): Promise<boolean>;
  /** Releases the lock if still ours; false if the lease had already been lost. */
  release(): Promise<boolean>;
}

/** A lock per key shared by every process on one Redis (a store path, a .drv). */
export class RedisLock {
  private readonly prefix: string;

  constructor(
    private readonly client: Redis,
    options: RegistryOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
  }

  /** Takes the lock once, or returns undefined if someone holds it. */
  async tryAcquire(key: string, leaseMs = 30000): Promise<Lease | undefined> {
    const redisKey = `${this.prefix}lock:${key}`;
    const token = randomBytes(16).toString('hex');
    const ok = await redisCall(this.client, 'lock', () =>
      this.client.set(redisKey, token, 'PX', leaseMs, 'NX'),
    );
    if (ok !== 'OK') return undefined;
    const client = this.client;
    return {
      key,
      token,
      async extend(ms = leaseMs) {
        const r = await redisCall(client, 'extend lock', () => client.eval(EXTEND, 1, redisKey, token, ms));
        return r === 1;
      },
      async release() {
        const r = await redisCall(client, 'unlock', () => client.eval(RELEASE, 1, redisKey, token));
        return r === 1;
      },
    };
  }

  /** Takes the lock, polling with a capped backoff while another holds it. */
  async acquire(key: string, options: LockOptions = {}): Promise<Lease> {
    const deadline = options.waitMs === undefined ? Infinity : Date.now() + options.waitMs;
    for (let attempt = 0; ; attempt++) {
      options.signal?.throwIfAborted();
      const lease = await this.tryAcquire(key, options.leaseMs);
      if (lease) return lease;
      if (attempt === 0) options.onWait?.();
      if (Date.now() >= deadline) {
        throw new StoreError(
          StoreErrorCode.LOCK_TIMEOUT,
          `timed out after ${options.waitMs} ms waiting for the lock on '${key}'`,
          { key },
        );
      }
      const pause = Math.min(10 * 2 ** Math.min(attempt, 6), 500, Math.max(deadline - Date.now(), 1));
      await new Promise((r) => setTimeout(r, pause * (0.5 + Math.random() / 2)));
    }
  }

  /**
   * Runs `fn` holding the lock on `key`, extending the lease while it runs. Should an
   * extension fail (Redis lost, lease expired), `signal` aborts: another process may
   * now hold the lock, and `fn` should stop before it changes anything more.
   */
  async with<T>(key: string, fn: (signal: AbortSignal) => Promise<T>, options: LockOptions = {}): Promise<T> {
    const leaseMs = options.leaseMs ?? 30000;
    const lease = await this.acquire(key, { ...options, leaseMs });
    const controller = new AbortController();
    const timer = setInterval(() => {
      lease.extend(leaseMs).then(
        (ok) => {
          if (!ok) controller.abort(lockLost(key));
        },
        (err: unknown) => controller.abort(err),
      );
    }, leaseMs / 3);
    timer.unref();
    try {
      return await fn(controller.signal);
    } finally {
      clearInterval(timer);
      await lease.release().catch(() => false);
    }
  }
}

function lockLost(key: string): StoreError {
  return new StoreError(StoreErrorCode.LOCK_TIMEOUT, `the lease of the lock on '${key}' was lost`, { key });
}

// ---- sessions and their temp roots ----

// KEYS: session, roots, sessions; ARGV: id, registration, ttl ms
const REGISTER = `
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`;
// KEYS: session, roots; ARGV: ttl ms. 0 if the registration has expired.
const HEARTBEAT = `
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 1
`;
// KEYS: session, roots; ARGV: paths… The roots get the registration's remaining TTL.
const ADD_ROOTS = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return 0 end
for i = 1, #ARGV, 1000 do
  redis.call('SADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`;
// KEYS: sessions; ARGV: prefix, mode ('has' with ARGV[3] = path, or 'all')
const SCAN_ROOTS = `
local prefix, mode = ARGV[1], ARGV[2]
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. 'session:' .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
  elseif mode == 'has' then
    if redis.call('SISMEMBER', prefix .. 'roots:' .. id, ARGV[3]) == 1 then return 1 end
  else
    for _, p in ipairs(redis.call('SMEMBERS', prefix .. 'roots:' .. id)) do out[#out + 1] = p end
  end
end
if mode == 'has' then return 0 end
return out
`;

export interface SessionOptions {
  /** Lifetime of the registration without a heartbeat, ms (default 30000). */
  readonly ttlMs?: number;
  /** What to store about the session (replica, user, start time), for operators. */
  readonly info?: Readonly<Record<string, string | number | boolean>>;
  /** Called once if a heartbeat finds the registration expired (its roots are gone). */
  readonly onExpired?: () => void;
}

export interface SessionRegistration {
  readonly sessionId: string;
  /** Renews the registration now; false if it had expired. */
  heartbeat(): Promise<boolean>;
  /** Stops the heartbeat and removes the registration and its roots. */
  close(): Promise<void>;
}

/**
 * Sessions registered by every gateway replica, and their temp roots, which garbage
 * collection and deletion on any replica must respect until the session ends — or its
 * replica stops renewing it.
 */
export class RedisTempRoots implements TempRootRegistry {
  private readonly prefix: string;

  constructor(
    private readonly client: Redis,
    options: RegistryOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
  }

  private keys(id: string): [session: string, roots: string] {
    return [`${this.prefix}session:${id}`, `${this.prefix}roots:${id}`];
  }

  /** Registers the session and renews it every third of its TTL until `close`. */
  async register(sessionId: string, options: SessionOptions = {}): Promise<SessionRegistration> {
    const ttl = options.ttlMs ?? 30000;
    const [session, roots] = this.keys(sessionId);
    const registration = JSON.stringify({ ...options.info, registeredAt: new Date().toISOString() });
    await redisCall(this.client, 'register session', () =>
      this.client.eval(REGISTER, 3, session, roots, `${this.prefix}sessions`, sessionId, registration, ttl),
    );
    const client = this.client;
    let expired = false;
    const heartbeat = async (): Promise<boolean> => {
      const r = await redisCall(client, 'session heartbeat', () =>
        client.eval(HEARTBEAT, 2, session, roots, ttl),
      );
      if (r !== 1 && !expired) {
        expired = true;
        options.onExpired?.();
      }
      return r === 1;
    };
    const timer = setInterval(() => {
      // A failed heartbeat is retried at the next tick; the TTL is the grace period.
      heartbeat().catch(() => undefined);
    }, ttl / 3);
    timer.unref();
    return {
      sessionId,
      heartbeat,
      close: async () => {
        clearInterval(timer);
        await this.release(sessionId);
      },
    };
  }

  async isRegistered(sessionId: string): Promise<boolean> {
    const [session] = this.keys(sessionId);
    return (await redisCall(this.client, 'session', () => this.client.exists(session))) === 1;
  }

  /** Adds roots to a registered session; ERR_STORE_SESSION_EXPIRED if it is not (any more). */
  async add(sessionId: string, paths: Iterable<string>): Promise<void> {
    const list = [...paths];
    if (list.length === 0) return;
    const r = await redisCall(this.client, 'add temp roots', () =>
      this.client.eval(ADD_ROOTS, 2, ...this.keys(sessionId), ...list),
    );
    if (r !== 1) {
      throw new StoreError(
        StoreErrorCode.SESSION_EXPIRED,
        `session '${sessionId}' is not registered (expired?); its temp roots are gone`,
        { sessionId },
      );
    }
  }

  async release(sessionId: string): Promise<void> {
    await redisCall(this.client, 'release session', () =>
      this.client
        .multi()
        .del(...this.keys(sessionId))
        .srem(`${this.prefix}sessions`, sessionId)
        .exec(),
    );
  }

  async of(sessionId: string): Promise<ReadonlySet<string>> {
    const [session, roots] = this.keys(sessionId);
    const [[, live], [, members]] = (await redisCall(this.client, 'temp roots', () =>
      this.client.multi().exists(session).smembers(roots).exec(),
    )) as [[unknown, number], [unknown, string[]]];
    return new Set(live === 1 ? members : []);
  }

  async has(path: string): Promise<boolean> {
    const r = await redisCall(this.client, 'temp roots', () =>
      this.client.eval(SCAN_ROOTS, 1, `${this.prefix}sessions`, this.prefix, 'has', path),
    );
    return r === 1;
  }

  async all(): Promise<Set<string>> {
    const r = await redisCall(this.client, 'temp roots', () =>
      this.client.eval(SCAN_ROOTS, 1, `${this.prefix}sessions`, this.prefix, 'all'),
    );
    return new Set(r as string[]);
  }

  /** Ids of the live sessions (of every replica). */
  async sessions(): Promise<string[]> {
    const ids: string[] = [];
    await redisCall(this.client, 'sessions', async () => {
      let cursor = '0';
      const pattern = `${escapeGlob(this.prefix)}session:*`;
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        for (const k of keys) ids.push(k.slice(`${this.prefix}session:`.length));
        cursor = next;
      } while (cursor !== '0');
    });
    return ids.sort();
  }
}
