/**
 * Connections to the shared Redis of a cluster (DESIGN.md "The store"): the index of
 * valid paths (redis-index.ts) and the registry of locks, sessions and temp roots
 * (redis-registry.ts). Redis is never the truth; losing it loses nothing the records
 * cannot rebuild, but while it is down the store cannot answer, and says so.
 *
 * Connections are lazy (the first command connects), reconnect forever with a capped
 * backoff, and fail a command after one reconnection attempt rather than queueing it
 * for minutes: a Nix client waiting on the gateway should get an error it can read.
 */
import { Redis } from 'ioredis';
import { StoreError, StoreErrorCode } from './errors.js';

/** Environment variable and flag naming the Redis URL (`redis://host:6379/0`). */
import { REDIS_URL_ENV } from './redis-env.js';

export { REDIS_TTL_ENV, REDIS_URL_ENV } from './redis-env.js';

export interface RedisConnectOptions {
  /** Milliseconds before a connection attempt gives up (default 5000). */
  readonly connectTimeoutMs?: number;
  /** Milliseconds before a command without a reply fails (default 15000). */
  readonly commandTimeoutMs?: number;
  /** Reconnection attempts a command waits through before it fails (default 1). */
  readonly retriesPerCommand?: number;
  /** Longest pause between reconnection attempts, ms (default 2000). */
  readonly maxBackoffMs?: number;
  /** Called with connection errors (the client reconnects by itself). */
  readonly onError?: (err: Error) => void;
}

/** The URL with any password replaced, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}

/** Checks the URL's shape: `redis://` or `rediss://`, a host, an optional db number. */
export function parseRedisUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreError(StoreErrorCode.REDIS_URL_INVALID, `invalid Redis URL '${url}'`, { url });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new StoreError(
      StoreErrorCode.REDIS_URL_INVALID,
      `Redis URL must start with redis:// or rediss://, got '${redactRedisUrl(url)}'`,
      { url: redactRedisUrl(url) },
    );
  }
  if (u.hostname === '') {
    throw new StoreError(StoreErrorCode.REDIS_URL_INVALID, `Redis URL '${redactRedisUrl(url)}' has no host`, {
      url: redactRedisUrl(url),
    });
  }
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) {
    throw new StoreError(
      StoreErrorCode.REDIS_URL_INVALID,
      `Redis URL '${redactRedisUrl(url)}' names database '${db}'; expected a number`,
      { url: redactRedisUrl(url) },
    );
  }
  return u;
}

/** The URL from a flag, else `$NIXYARD_REDIS_URL`, else undefined (no Redis: embedded mode). */
export function redisUrlFrom(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const url = flag ?? env[REDIS_URL_ENV];
  return url === undefined || url === '' ? undefined : url;
}

/** The last connection error of each client, to say why "Connection is closed". */
const lastErrors = new WeakMap<Redis, Error>();

/** A lazily connecting client; call `quit()` when done. */
export function connectRedis(url: string, options: RedisConnectOptions = {}): Redis {
  parseRedisUrl(url);
  const maxBackoff = options.maxBackoffMs ?? 2000;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    commandTimeout: options.commandTimeoutMs ?? 15000,
    maxRetriesPerRequest: options.retriesPerCommand ?? 1,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxBackoff),
    // Don't let a reply to a command that already timed out confuse the next one.
    autoResendUnfulfilledCommands: false,
    // ioredis waits this long for a socket that is already closed (a failed connect)
    // before it lets go of it; the default 2 s keeps a failing CLI alive for nothing.
    disconnectTimeout: 500,
  });
  // Without a listener ioredis prints every failed reconnection to the console.
  client.on('error', (err: Error) => {
    lastErrors.set(client, err);
    options.onError?.(err);
  });
  client.on('ready', () => lastErrors.delete(client));
  return client;
}

/** Whether `err` comes from the connection rather than from a command's arguments. */
function isConnectionError(err: Error): boolean {
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|connect/i.test(
      err.message,
    )
  );
}

/**
 * Runs one Redis operation; a connection failure becomes ERR_STORE_REDIS_UNAVAILABLE
 * naming the server, anything else (a bug, WRONGTYPE) is rethrown as it is.
 */
export async function redisCall<T>(client: Redis, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && !(err instanceof StoreError) && isConnectionError(err)) {
      const where = `${client.options.host ?? '?'}:${client.options.port ?? '?'}`;
      const last = lastErrors.get(client);
      const why = last && last.message !== err.message ? `${err.message} (${last.message})` : err.message;
      throw new StoreError(
        StoreErrorCode.REDIS_UNAVAILABLE,
        `the store's Redis at ${where} is unavailable (${what}): ${why}`,
        { redis: where, operation: what },
        { cause: err },
      );
    }
    throw err;
  }
}

/** Escapes glob characters for SCAN MATCH. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
