/** The redis-server of a jest test file (redis-support.ts starts servers outside jest too). */
import { afterAll, beforeAll } from '@jest/globals';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../store/redis.js';
import { startRedis, type RedisServer } from './redis-support.js';
import { removeAll, tempDir } from './support.js';

export interface RedisFixture {
  /** The file's server (valid inside its tests). */
  readonly server: RedisServer;
  /** A new client of it, disconnected after the file's tests. */
  readonly client: () => Redis;
  /** A new empty directory, removed after the file's tests. */
  readonly dataDir: () => Promise<string>;
}

/** A redis-server for the calling test file: started before its tests, stopped (with what they opened) after. */
export function useRedisServer(): RedisFixture {
  let server: RedisServer | undefined;
  const clients: Redis[] = [];
  const dirs: string[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server?.stop();
    for (const d of dirs) await removeAll(d);
  });
  const started = (): RedisServer => {
    if (!server) throw new Error('the Redis server runs only inside the tests');
    return server;
  };
  return {
    get server() {
      return started();
    },
    client: () => {
      const c = connectRedis(started().url);
      clients.push(c);
      return c;
    },
    dataDir: async () => {
      const d = await tempDir('nixyard-redis-');
      dirs.push(d);
      return d;
    },
  };
}
