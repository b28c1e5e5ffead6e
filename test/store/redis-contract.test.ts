/**
 * One behavioural contract for every `PathIndex`: the in-process MemoryPathIndex, the
 * RecordPathIndex that reads the volume, and the shared RedisPathIndex. Each write goes
 * to the record first, then the index, as LocalStore does; what the index answers must
 * be the same whichever it is.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Redis } from 'ioredis';
import { StoreLayout } from '../../store/layout.js';
import { MemoryPathIndex } from '../../store/memory-index.js';
import type { PathIndex } from '../../store/path-index.js';
import type { PathInfo } from '../../store/path-info.js';
import { RecordPathIndex } from '../../store/record-index.js';
import { deleteRecord, serializeRecord, writeRecord } from '../../store/records.js';
import { connectRedis } from '../../store/redis.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import { infoOf, pathOf, startRedis, type RedisServer } from './redis-support.js';
import { removeAll, tempDir } from './support.js';

interface Subject {
  readonly index: PathIndex;
  /** Whether `clear` empties it (the records index has nothing of its own to clear). */
  readonly clears: boolean;
}

let server: RedisServer;
let client: Redis;
const dirs: string[] = [];

beforeAll(async () => {
  server = await startRedis();
  client = connectRedis(server.url);
});

afterAll(async () => {
  await client.quit();
  await server.stop();
  for (const d of dirs) await removeAll(d);
});

let redisPrefixes = 0;
const subjects: [string, (layout: StoreLayout) => Subject][] = [
  ['MemoryPathIndex', () => ({ index: new MemoryPathIndex(), clears: true })],
  ['RecordPathIndex', (layout) => ({ index: new RecordPathIndex(layout), clears: false })],
  [
    'RedisPathIndex',
    () => ({ index: new RedisPathIndex(client, { prefix: `contract${++redisPrefixes}:` }), clears: true }),
  ],
];

describe.each(subjects)('%s', (_name, make) => {
  let layout: StoreLayout;
  let index: PathIndex;
  let clears: boolean;

  const put = async (info: PathInfo): Promise<void> => {
    await writeRecord(layout, info);
    await index.put(info);
  };
  const del = async (path: string): Promise<void> => {
    await deleteRecord(layout, path);
    await index.delete(path);
  };
  const same = (a: PathInfo | undefined): string | undefined => (a ? serializeRecord(a) : undefined);

  beforeAll(async () => {
    const dir = await tempDir('nixyard-contract-');
    dirs.push(dir);
    layout = new StoreLayout(dir, '/nix/store');
    await layout.create();
    ({ index, clears } = make(layout));
  });

  const a = pathOf(1, 'a');
  const b = pathOf(2, 'b');
  const c = pathOf(3, 'c');
  const missing = pathOf(99, 'missing');

  test('an empty index knows nothing', async () => {
    expect(await index.has([])).toEqual(new Set());
    expect(await index.has([a, missing])).toEqual(new Set());
    expect(await index.get(a)).toBeUndefined();
    expect((await index.getMany([a])).size).toBe(0);
    expect(await index.all()).toEqual([]);
    expect(await index.referrers(a)).toEqual([]);
    expect(await index.fromHashPart(a.slice(11, 43))).toBeUndefined();
  });

  test('answers about what was put: validity, infos, order, referrers, hash parts', async () => {
    await put(infoOf(c, [a, c], ['k:sig']));
    await put(infoOf(a));
    await put(infoOf(b, [a]));
    expect(await index.has([a, missing, b, a])).toEqual(new Set([a, b]));
    expect(same(await index.get(c))).toBe(same(infoOf(c, [a, c], ['k:sig'])));
    const many = await index.getMany([b, missing, c, b]);
    expect([...many.keys()].sort()).toEqual([b, c]);
    expect(same(many.get(b))).toBe(same(infoOf(b, [a])));
    expect(await index.all()).toEqual([a, b, c]);
    expect(await index.referrers(a)).toEqual([b, c]);
    expect(await index.referrers(c)).toEqual([c]);
    expect(await index.referrers(b)).toEqual([]);
    expect(await index.fromHashPart(b.slice(11, 43))).toBe(b);
    expect(await index.fromHashPart(missing.slice(11, 43))).toBeUndefined();
  });

  test('put replaces an info, and its references with it', async () => {
    await put(infoOf(b, [c], ['k:new']));
    expect((await index.get(b))?.sigs).toEqual(['k:new']);
    expect(await index.referrers(a)).toEqual([c]);
    expect(await index.referrers(c)).toEqual([b, c]);
    expect(await index.all()).toEqual([a, b, c]);
  });

  test('delete forgets a path everywhere; deleting an unknown path is a no-op', async () => {
    await del(b);
    expect(await index.has([a, b, c])).toEqual(new Set([a, c]));
    expect(await index.get(b)).toBeUndefined();
    expect(await index.all()).toEqual([a, c]);
    expect(await index.referrers(c)).toEqual([c]);
    expect(await index.fromHashPart(b.slice(11, 43))).toBeUndefined();
    await index.delete(missing);
    expect(await index.all()).toEqual([a, c]);
  });

  test('two names with one hash part: the first in order wins', async () => {
    const x = pathOf(7, 'zzz');
    const y = pathOf(7, 'aaa');
    await put(infoOf(x));
    await put(infoOf(y));
    expect(await index.fromHashPart(x.slice(11, 43))).toBe(y);
    await del(y);
    expect(await index.fromHashPart(x.slice(11, 43))).toBe(x);
    await del(x);
  });

  test('large batches', async () => {
    const paths = Array.from({ length: 1200 }, (_, i) => pathOf(1000 + i));
    for (const p of paths.slice(0, 600)) await put(infoOf(p, [a]));
    const valid = await index.has([...paths, a]);
    expect(valid.size).toBe(601);
    expect((await index.getMany(paths)).size).toBe(600);
    expect((await index.referrers(a)).length).toBe(601);
    for (const p of paths.slice(0, 600)) await del(p);
  });

  test('clear empties it', async () => {
    if (!clears) return;
    await index.clear();
    expect(await index.all()).toEqual([]);
    expect(await index.has([a, c])).toEqual(new Set());
    expect(await index.referrers(a)).toEqual([]);
    expect(await index.fromHashPart(a.slice(11, 43))).toBeUndefined();
  });
});

test('RedisPathIndex agrees with MemoryPathIndex over a random sequence of puts and deletes', async () => {
  const model = new MemoryPathIndex();
  const subject = new RedisPathIndex(client, { prefix: 'random:' });
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  console.log(`random sequence seed 12345`);
  const universe = Array.from({ length: 30 }, (_, i) => pathOf(i % 25, `n${i}`));
  for (let step = 0; step < 400; step++) {
    const p = universe[rand(universe.length)]!;
    if (rand(3) === 0) {
      await model.delete(p);
      await subject.delete(p);
    } else {
      const refs = Array.from({ length: rand(4) }, () => universe[rand(universe.length)]!);
      const info = infoOf(p, refs);
      await model.put(info);
      await subject.put(info);
    }
    if (step % 20 === 19) {
      expect(await subject.all()).toEqual(await model.all());
      expect(await subject.has(universe)).toEqual(await model.has(universe));
      for (const q of universe) {
        expect(await subject.referrers(q)).toEqual(await model.referrers(q));
        expect(await subject.fromHashPart(q.slice(11, 43))).toBe(await model.fromHashPart(q.slice(11, 43)));
      }
    }
  }
});
