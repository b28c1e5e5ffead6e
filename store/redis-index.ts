/**
 * The shared `PathIndex` of a cluster: gateway replicas and build pods on one volume
 * see each other's registrations the moment they are made. Keys, under a prefix
 * (default `nixyard:`) so several stores can share one Redis:
 *
 *   <prefix>info:<path>        string: the path's record, exactly as on the volume
 *                              (records.ts), so `verify` compares them byte for byte
 *   <prefix>paths              sorted set, every score 0: all valid paths, in byte order
 *   <prefix>referrers:<path>   set: valid paths whose references include <path>
 *   <prefix>hash:<hashPart>    sorted set, scores 0: valid paths with that hash part
 *   <prefix>reindexed          set after a complete reindex; gone after FLUSHALL, so a
 *                              starting gateway knows it must rebuild the index
 *
 * `put` and `delete` are Lua scripts, so a reader never sees a path in `paths` without
 * its info or a referrer without its referee's info changing with it. The scripts
 * touch keys they compute from the old record, which Redis Cluster forbids unless all
 * keys share a slot: there, choose a prefix with a hash tag (`{nixyard}:`).
 *
 * Batched queries are one pipeline (one round trip) of chunked ZMSCORE/MGET commands.
 */
import type { Redis } from 'ioredis';
import { HASH_PART_LENGTH, STORE_DIR } from '../nix/store-path.js';
import type { PathIndex } from './path-index.js';
import type { PathInfo } from './path-info.js';
import { parseRecord, serializeRecord } from './records.js';
import { connectRedis, escapeGlob, redisCall, type RedisConnectOptions } from './redis.js';

export const DEFAULT_REDIS_PREFIX = 'nixyard:';

/** Paths per ZMSCORE/MGET; a 10,000-path query is 3 commands in one round trip. */
const CHUNK = 4096;

export interface RedisPathIndexOptions {
  /** Key prefix (default `$NIXYARD_REDIS_PREFIX`, else `nixyard:`); one per store sharing a Redis. */
  readonly prefix?: string;
  /** Logical store directory the records name (default /nix/store). */
  readonly storeDir?: string;
}

// ARGV: prefix, path, record, hash part, references…
const PUT = `
local prefix, path = ARGV[1], ARGV[2]
local infoKey = prefix .. 'info:' .. path
local old = redis.call('GET', infoKey)
if old then
  for _, r in ipairs(cjson.decode(old).references) do
    redis.call('SREM', prefix .. 'referrers:' .. r, path)
  end
end
redis.call('SET', infoKey, ARGV[3])
redis.call('ZADD', prefix .. 'paths', 0, path)
redis.call('ZADD', prefix .. 'hash:' .. ARGV[4], 0, path)
for i = 5, #ARGV do
  redis.call('SADD', prefix .. 'referrers:' .. ARGV[i], path)
end
return 1
`;

// ARGV: prefix, path, hash part
const DELETE = `
local prefix, path = ARGV[1], ARGV[2]
local infoKey = prefix .. 'info:' .. path
local old = redis.call('GET', infoKey)
if not old then return 0 end
for _, r in ipairs(cjson.decode(old).references) do
  redis.call('SREM', prefix .. 'referrers:' .. r, path)
end
redis.call('DEL', infoKey)
redis.call('ZREM', prefix .. 'paths', path)
redis.call('ZREM', prefix .. 'hash:' .. ARGV[3], path)
return 1
`;

export class RedisPathIndex implements PathIndex {
  readonly prefix: string;
  private readonly storeDir: string;

  constructor(
    readonly client: Redis,
    options: RedisPathIndexOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.storeDir = options.storeDir ?? STORE_DIR;
  }

  /**
   * Connects to the Redis at `url` and checks that it answers, so a wrong URL or a
   * Redis that is down fails here with ERR_STORE_REDIS_UNAVAILABLE, not at the first
   * query. `close()` the index when done.
   */
  static async connect(
    url: string,
    options: RedisPathIndexOptions & RedisConnectOptions = {},
  ): Promise<RedisPathIndex> {
    const client = connectRedis(url, options);
    const prefix = options.prefix ?? (process.env['NIXYARD_REDIS_PREFIX'] || undefined);
    const index = new RedisPathIndex(client, { ...options, ...(prefix === undefined ? {} : { prefix }) });
    try {
      await redisCall(client, 'connect', async () => {
        await client.connect();
        await client.ping();
      });
    } catch (err) {
      client.disconnect();
      throw err;
    }
    return index;
  }

  /** Closes the connection (after the replies to commands already sent). */
  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  async has(paths: readonly string[]): Promise<Set<string>> {
    const unique = [...new Set(paths)];
    if (unique.length === 0) return new Set();
    const replies = await this.batch('has', unique, (p, chunk) => p.zmscore(this.key('paths'), ...chunk));
    const out = new Set<string>();
    replies.forEach((scores, i) => {
      (scores as (string | null)[]).forEach((score, j) => {
        if (score !== null) out.add(unique[i * CHUNK + j]!);
      });
    });
    return out;
  }

  async get(path: string): Promise<PathInfo | undefined> {
    const text = await redisCall(this.client, 'get', () => this.client.get(this.key('info', path)));
    return text === null ? undefined : this.parse(text, path);
  }

  async getMany(paths: readonly string[]): Promise<Map<string, PathInfo>> {
    const unique = [...new Set(paths)];
    const out = new Map<string, PathInfo>();
    if (unique.length === 0) return out;
    const replies = await this.batch('getMany', unique, (p, chunk) =>
      p.mget(chunk.map((path) => this.key('info', path))),
    );
    replies.forEach((texts, i) => {
      (texts as (string | null)[]).forEach((text, j) => {
        const path = unique[i * CHUNK + j]!;
        if (text !== null) out.set(path, this.parse(text, path));
      });
    });
    return out;
  }

  async put(info: PathInfo): Promise<void> {
    const args = [this.prefix, info.path, serializeRecord(info), hashPartOf(info.path), ...info.references];
    await redisCall(this.client, 'put', () => this.client.eval(PUT, 0, ...args));
  }

  async delete(path: string): Promise<void> {
    await redisCall(this.client, 'delete', () =>
      this.client.eval(DELETE, 0, this.prefix, path, hashPartOf(path)),
    );
  }

  all(): Promise<string[]> {
    return redisCall(this.client, 'all', () => this.client.zrange(this.key('paths'), '0', '-1'));
  }

  async referrers(path: string): Promise<string[]> {
    const members = await redisCall(this.client, 'referrers', () =>
      this.client.smembers(this.key('referrers', path)),
    );
    return members.sort();
  }

  async fromHashPart(hashPart: string): Promise<string | undefined> {
    const [first] = await redisCall(this.client, 'fromHashPart', () =>
      this.client.zrange(this.key('hash', hashPart), '0', '0'),
    );
    return first;
  }

  /** Removes every key under the prefix (and nothing else). */
  async clear(): Promise<void> {
    await redisCall(this.client, 'clear', async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.client.scan(
          cursor,
          'MATCH',
          `${escapeGlob(this.prefix)}*`,
          'COUNT',
          1000,
        );
        if (keys.length > 0) await this.client.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
    });
  }

  /** Whether a complete reindex has filled this index since Redis last lost its data. */
  async isPopulated(): Promise<boolean> {
    return (
      (await redisCall(this.client, 'isPopulated', () => this.client.exists(this.key('reindexed')))) === 1
    );
  }

  /** Called by `LocalStore.reindex` once every record is in. */
  async reindexed(): Promise<void> {
    await redisCall(this.client, 'reindexed', () =>
      this.client.set(this.key('reindexed'), new Date().toISOString()),
    );
  }

  private parse(text: string, path: string): PathInfo {
    return parseRecord(text, `redis ${this.key('info', path)}`, this.storeDir);
  }

  /** One pipeline of one command per chunk of `items`; the replies in chunk order. */
  private batch(
    what: string,
    items: readonly string[],
    add: (p: ReturnType<Redis['pipeline']>, chunk: string[]) => void,
  ): Promise<unknown[]> {
    return redisCall(this.client, what, async () => {
      const pipeline = this.client.pipeline();
      for (let i = 0; i < items.length; i += CHUNK) add(pipeline, items.slice(i, i + CHUNK));
      const results = (await pipeline.exec()) ?? [];
      return results.map(([err, reply]) => {
        if (err) throw err;
        return reply;
      });
    });
  }
}

function hashPartOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1).slice(0, HASH_PART_LENGTH);
}
