/**
 * The Redis index in use: LocalStores sharing one volume and one Redis, reindex after
 * Redis lost everything, batched queries' round trips, key prefixes, and outages.
 * Against a real `redis-server` on loopback.
 */
import { expect, test } from '@jest/globals';
import { Readable } from 'node:stream';
import { hashOf } from '../../nix/hash.js';
import { narOfBytes } from '../../nix/nar/writer.js';
import { isStoreError, StoreErrorCode } from '../../store/errors.js';
import { LocalStore } from '../../store/local-store.js';
import { RecordPathIndex } from '../../store/record-index.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import { runCli } from '../support/run-cli.js';
import { useRedisServer } from './redis-fixture.js';
import { infoOf, pathOf, startRedis } from './redis-support.js';

const redis = useRedisServer();
const client = redis.client;
const dataDir = redis.dataDir;

async function importPath(store: LocalStore, path: string, references: string[] = []): Promise<void> {
  const nar = narOfBytes(Buffer.from(`${path} uses ${references.join(' ')}`));
  await store.importNar(
    { path, narHash: hashOf('sha256', nar), narSize: nar.length, references },
    Readable.from([nar]),
  );
}

/** Everything the index answers about `paths`, for comparing before and after. */
async function answers(store: LocalStore, paths: string[]): Promise<unknown> {
  const infos = await store.queryPathInfos(paths);
  return {
    all: await store.queryAll(),
    valid: [...(await store.queryValid(paths))].sort(),
    infos: [...infos.values()].map((i) => [i.path, i.narHash.toTyped(), i.references, i.sigs]),
    referrers: await Promise.all(paths.map((p) => store.queryReferrers(p))),
    byHash: await Promise.all(paths.map((p) => store.queryPathFromHashPart(p.slice(11, 43)))),
  };
}

test('two LocalStores on one data dir and one Redis see each other’s registrations at once', async () => {
  const dir = await dataDir();
  const a = await LocalStore.open({ dataDir: dir, index: new RedisPathIndex(client(), { prefix: 'two:' }) });
  const b = await LocalStore.open({
    dataDir: dir,
    index: new RedisPathIndex(client(), { prefix: 'two:' }),
    cleanStaging: false,
    reindex: false,
  });
  const [p1, p2, p3] = [pathOf(1, 'one'), pathOf(2, 'two'), pathOf(3, 'three')];
  await importPath(a, p1);
  await importPath(a, p2, [p1]);
  expect([...(await b.queryValid([p1, p2, p3]))].sort()).toEqual([p1, p2]);
  expect((await b.queryPathInfo(p2))?.references).toEqual([p1]);
  expect(await b.queryReferrers(p1)).toEqual([p2]);
  expect(await b.queryPathFromHashPart(p2.slice(11, 43))).toBe(p2);

  await importPath(b, p3, [p2]);
  await b.addSignatures(p3, ['k:c2ln']);
  expect(await a.isValid(p3)).toBe(true);
  expect((await a.queryPathInfo(p3))?.sigs).toEqual(['k:c2ln']);
  expect([...(await a.queryClosure([p3]))].sort()).toEqual([p1, p2, p3]);

  await b.deletePath(p3);
  expect(await a.isValid(p3)).toBe(false);
  expect(await a.queryReferrers(p2)).toEqual([]);
  expect((await a.verify()).problems).toEqual([]);
});

test('after FLUSHALL, `nixyard store reindex --redis-url` restores the same answers', async () => {
  const dir = await dataDir();
  const index = new RedisPathIndex(client());
  const store = await LocalStore.open({ dataDir: dir, index });
  const paths = Array.from({ length: 20 }, (_, i) => pathOf(100 + i));
  for (const [i, p] of paths.entries()) await importPath(store, p, paths.slice(Math.max(0, i - 2), i));
  await store.addSignatures(paths[5]!, ['k:c2ln']);
  expect(await index.isPopulated()).toBe(true);
  const before = await answers(store, [...paths, pathOf(999)]);

  await index.client.flushall();
  expect(await store.queryAll()).toEqual([]);
  expect(await index.isPopulated()).toBe(false);

  const run = await runCli(['store', 'reindex', '--data-dir', dir, '--redis-url', redis.server.url]);
  expect(run.stderr.toString()).toBe('');
  expect(run.stdout.toString()).toBe('indexed 20 paths, dropped 0 stale entries\n');
  expect(run.code).toBe(0);
  expect(await answers(store, [...paths, pathOf(999)])).toEqual(before);
  expect(await index.isPopulated()).toBe(true);

  const verify = await runCli(['store', 'verify', '--data-dir', dir, '--redis-url', redis.server.url]);
  expect(verify.stdout.toString()).toBe('checked 20 paths: 0 problem(s)\n');
});

test('reindex while others read: no valid path ever disappears from the index', async () => {
  const dir = await dataDir();
  const index = new RedisPathIndex(client(), { prefix: 'live:' });
  const store = await LocalStore.open({ dataDir: dir, index });
  const paths = Array.from({ length: 200 }, (_, i) => pathOf(300 + i));
  for (const p of paths) await importPath(store, p);
  // A stale entry (no record) that reindex must drop.
  await index.put(infoOf(pathOf(299, 'stale')));
  const reader = new RedisPathIndex(client(), { prefix: 'live:' });
  let done = false;
  let reads = 0;
  const reading = (async () => {
    while (!done) {
      expect((await reader.has(paths)).size).toBe(paths.length);
      reads++;
    }
  })();
  const report = await store.reindex();
  done = true;
  await reading;
  expect(reads).toBeGreaterThan(0);
  expect(report).toMatchObject({ indexed: 200, dropped: 1 });
  expect(await reader.all()).toEqual(paths);
});

test('has() and getMany() of 10,000 paths take a bounded number of commands, in one round trip each', async () => {
  const c = client();
  const index = new RedisPathIndex(c, { prefix: 'big:' });
  const paths = Array.from({ length: 10000 }, (_, i) => pathOf(10000 + i));
  for (const p of paths.filter((_, i) => i % 7 === 0)) await index.put(infoOf(p));

  const monitor = await client().monitor();
  const seen: string[] = [];
  monitor.on('monitor', (_time: string, args: string[]) => seen.push(String(args[0]).toLowerCase()));
  // The monitor is attached once it sees a marker; then count from zero.
  const sawEcho = async (): Promise<void> => {
    for (let i = 0; i < 300 && !seen.includes('echo'); i++) await new Promise((r) => setTimeout(r, 10));
  };
  await c.echo('start');
  await sawEcho();
  seen.length = 0;

  let writes = 0;
  const stream = (c as unknown as { stream: { write: (...a: unknown[]) => boolean } }).stream;
  const write = stream.write.bind(stream);
  stream.write = (...a: unknown[]) => {
    writes++;
    return write(...a);
  };
  const valid = await index.has(paths);
  const writesOfHas = writes;
  const infos = await index.getMany(paths);
  const writesOfGetMany = writes - writesOfHas;
  stream.write = write;
  await c.echo('end');
  await sawEcho();
  monitor.disconnect();

  expect(valid.size).toBe(Math.ceil(10000 / 7));
  expect(infos.size).toBe(valid.size);
  const commands = seen.slice(0, seen.indexOf('echo'));
  expect(commands.filter((s) => s === 'zmscore').length).toBeLessThanOrEqual(3);
  expect(commands.filter((s) => s === 'mget').length).toBeLessThanOrEqual(3);
  expect(commands.length).toBeLessThanOrEqual(6);
  expect(writesOfHas).toBe(1);
  expect(writesOfGetMany).toBe(1);
});

test('key prefixes keep stores apart on one Redis', async () => {
  const c = client();
  const one = new RedisPathIndex(c, { prefix: 'store-one:' });
  const two = new RedisPathIndex(c, { prefix: 'store-two:' });
  await one.put(infoOf(pathOf(1)));
  await two.put(infoOf(pathOf(2)));
  expect(await one.all()).toEqual([pathOf(1)]);
  expect(await two.all()).toEqual([pathOf(2)]);
  await one.clear();
  expect(await one.all()).toEqual([]);
  expect(await two.all()).toEqual([pathOf(2)]);
});

test('a Redis outage is a clear error, and the index works again once Redis is back', async () => {
  const own = await startRedis();
  let index: RedisPathIndex | undefined;
  try {
    const dir = await dataDir();
    index = await RedisPathIndex.connect(own.url, { prefix: 'outage:' });
    const store = await LocalStore.open({ dataDir: dir, index });
    await importPath(store, pathOf(1));

    await own.kill();
    const started = Date.now();
    const err = await store.isValid(pathOf(1)).catch((e: unknown) => e);
    expect(isStoreError(err, StoreErrorCode.REDIS_UNAVAILABLE)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`Redis at 127\\.0\\.0\\.1:${own.port} is unavailable`));
    expect(Date.now() - started).toBeLessThan(5000);
    const put = await importPath(store, pathOf(2)).catch((e: unknown) => e);
    expect(isStoreError(put, StoreErrorCode.REDIS_UNAVAILABLE)).toBe(true);

    await own.restart();
    let back = false;
    for (let i = 0; i < 100 && !back; i++) {
      back = await store.isValid(pathOf(1)).then(
        () => true,
        () => false,
      );
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    expect(back).toBe(true);
    // The restarted Redis is empty; the records are not, and reindex brings it back.
    expect(await index.isPopulated()).toBe(false);
    expect(await store.queryAll()).toEqual([]);
    await store.reindex();
    expect(await store.queryAll()).toEqual(await new RecordPathIndex(store.layout).all());
    expect(await store.isValid(pathOf(1))).toBe(true);
  } finally {
    await index?.close();
    await own.stop();
  }
});

test('connecting to a Redis that is not there fails at once with a clear error', async () => {
  const own = await startRedis();
  await own.stop();
  const err = await RedisPathIndex.connect(own.url, { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
  expect(isStoreError(err, StoreErrorCode.REDIS_UNAVAILABLE)).toBe(true);
  expect((err as Error).message).toContain(`127.0.0.1:${own.port}`);
  const cli = await runCli(['store', 'reindex', '--data-dir', await dataDir(), '--redis-url', own.url]);
  expect(cli.code).not.toBe(0);
  expect(cli.code).toBe(1);
  expect(cli.stderr.toString()).toMatch(
    /unavailable \(connect\).*ECONNREFUSED.*\[ERR_STORE_REDIS_UNAVAILABLE\]/,
  );
  const bad = await runCli(['store', 'reindex', '--data-dir', await dataDir(), '--redis-url', 'http://x']);
  expect(bad.stderr.toString()).toContain('redis://');
});
