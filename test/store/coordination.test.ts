/**
 * The two `Coordination`s (store/coordination.ts): one contract for the in-process one
 * and the Redis one, then two `LocalStore`s on one data directory standing for two
 * replicas — sharing a Redis index and Redis coordination they never register a path
 * twice and never delete another's temp root; with per-process coordination (the
 * control) they do register twice, which shows the test can see it. Real redis-server.
 */
import { describe, expect, jest, test } from '@jest/globals';
import type { Redis } from 'ioredis';
import { hashOf } from '../../nix/hash.js';
import { narOfBytes } from '../../nix/nar/writer.js';
import { memoryCoordination, type Coordination } from '../../store/coordination.js';
import { isStoreError, StoreErrorCode } from '../../store/errors.js';
import { LocalStore } from '../../store/local-store.js';
import type { PathIndex } from '../../store/path-index.js';
import type { PathInfo } from '../../store/path-info.js';
import { readRecord } from '../../store/records.js';
import { connectRedis } from '../../store/redis.js';
import { redisCoordination } from '../../store/redis-coordination.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import type { NarClaim } from '../../store/staging.js';
import { useRedisServer } from './redis-fixture.js';
import { pathOf } from './redis-support.js';
import { chunked, stagingEntries } from './support.js';

jest.setTimeout(30_000);

const redisFixture = useRedisServer();
const client = redisFixture.client;
let prefixes = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Two "processes" of one kind: the same instance in memory, two clients on one Redis. */
const kinds: [string, () => [Coordination, Coordination]][] = [
  [
    'memory',
    () => {
      const one = memoryCoordination();
      return [one, one];
    },
  ],
  [
    'redis',
    () => {
      const prefix = `coord${++prefixes}:`;
      const make = (): Coordination =>
        redisCoordination(client(), { url: redisFixture.server.url, prefix, ttlMs: 1000 });
      return [make(), make()];
    },
  ],
];

describe.each(kinds)('%s coordination', (_kind, make) => {
  test('a path lock is exclusive between holders; other paths do not wait', async () => {
    const [a, b] = make();
    let inside = 0;
    let most = 0;
    const order: string[] = [];
    const hold = (c: Coordination, key: string, tag: string, ms: number): Promise<void> =>
      c.locks.with(key, async (signal) => {
        inside += key === '/nix/store/x' ? 1 : 0;
        most = Math.max(most, inside);
        order.push(`${tag}+`);
        await sleep(ms);
        expect(signal.aborted).toBe(false);
        order.push(`${tag}-`);
        inside -= key === '/nix/store/x' ? 1 : 0;
      });
    const first = hold(a, '/nix/store/x', 'a', 300);
    await sleep(30);
    const second = hold(b, '/nix/store/x', 'b', 10);
    const other = hold(b, '/nix/store/y', 'y', 10);
    await Promise.all([first, second, other]);
    expect(most).toBe(1);
    // y ran while a held x; b waited for a.
    expect(order.indexOf('y-')).toBeLessThan(order.indexOf('a-'));
    expect(order.indexOf('b+')).toBeGreaterThan(order.indexOf('a-'));
  });

  test('overlapping lock sets taken in any order do not deadlock', async () => {
    const [a, b] = make();
    const ran: string[] = [];
    await Promise.all([
      a.locks.with(['/nix/store/p', '/nix/store/q'], async () => {
        await sleep(50);
        ran.push('a');
      }),
      b.locks.with(['/nix/store/q', '/nix/store/p'], async () => {
        await sleep(50);
        ran.push('b');
      }),
    ]);
    expect(ran.sort()).toEqual(['a', 'b']);
  });

  test('a session’s temp roots are seen by every holder until it closes', async () => {
    const [a, b] = make();
    const s = await a.openSession('s1', { info: { replica: 'a' } });
    await a.tempRoots.add('s1', [pathOf(1), pathOf(2)]);
    expect(await b.tempRoots.has(pathOf(1))).toBe(true);
    expect(await b.tempRoots.all()).toEqual(new Set([pathOf(1), pathOf(2)]));
    await s.close();
    expect(await b.tempRoots.has(pathOf(1))).toBe(false);
    expect(await b.tempRoots.all()).toEqual(new Set());
  });

  test('live sessions: registered ones are, closed and never opened ones are not', async () => {
    const [a, b] = make();
    const s1 = await a.openSession('live-1');
    await a.openSession('live-2');
    expect(await b.liveSessions(['live-1', 'live-2', 'never'])).toEqual(new Set(['live-1', 'live-2']));
    await s1.close();
    expect(await b.liveSessions(['live-1', 'live-2'])).toEqual(new Set(['live-2']));
    expect(await b.liveSessions([])).toEqual(new Set());
  });

  test('the GC lock admits one collector at a time', async () => {
    const [a, b] = make();
    let inside = 0;
    let most = 0;
    const gc = (c: Coordination): Promise<void> =>
      c.withGcLock(async () => {
        most = Math.max(most, ++inside);
        await sleep(100);
        inside--;
      });
    await Promise.all([gc(a), gc(b), gc(a)]);
    expect(most).toBe(1);
  });
});

test('a Redis session whose process died loses its roots after the TTL; adding to it then fails', async () => {
  const prefix = `dead${++prefixes}:`;
  const dying = client();
  const a = redisCoordination(dying, { url: redisFixture.server.url, prefix, ttlMs: 400 });
  const b = redisCoordination(client(), { url: redisFixture.server.url, prefix, ttlMs: 400 });
  await a.openSession('s', {});
  await a.tempRoots.add('s', [pathOf(7)]);
  await sleep(600); // heartbeats keep it past its TTL while its process lives
  expect(await b.tempRoots.has(pathOf(7))).toBe(true);
  dying.disconnect();
  await sleep(600);
  expect(await b.tempRoots.has(pathOf(7))).toBe(false);
  expect(await b.liveSessions(['s'])).toEqual(new Set());
  const late = await Promise.resolve(b.tempRoots.add('s', [pathOf(8)])).catch((e: unknown) => e);
  expect(isStoreError(late, StoreErrorCode.SESSION_EXPIRED)).toBe(true);
});

test('waiting for a Redis path lock is announced, and stops when its signal aborts (a cancelled build)', async () => {
  const prefix = `abort${++prefixes}:`;
  const a = redisCoordination(client(), { url: redisFixture.server.url, prefix });
  const b = redisCoordination(client(), { url: redisFixture.server.url, prefix });
  let release!: () => void;
  const held = a.locks.with('/nix/store/out', () => new Promise<void>((r) => (release = r)));
  await sleep(50);
  const cancel = new AbortController();
  const reason = new Error('cancelled');
  const waited: string[] = [];
  const waiting = b.locks.with('/nix/store/out', () => Promise.resolve('ran'), {
    signal: cancel.signal,
    onWait: (key) => waited.push(key),
  });
  await sleep(100);
  expect(waited).toEqual(['/nix/store/out']);
  cancel.abort(reason);
  await expect(waiting).rejects.toBe(reason);
  release();
  await held;
  expect(await b.locks.with('/nix/store/out', () => Promise.resolve('ran'))).toBe('ran');
});

test('a Redis outage fails lock takers and session registration with ERR_STORE_REDIS_UNAVAILABLE', async () => {
  const down = connectRedis('redis://127.0.0.1:1', { connectTimeoutMs: 300 });
  try {
    const c = redisCoordination(down, { url: 'redis://127.0.0.1:1' });
    const started = Date.now();
    const lockErr = await c.locks.with('/nix/store/x', () => Promise.resolve()).catch((e: unknown) => e);
    expect(isStoreError(lockErr, StoreErrorCode.REDIS_UNAVAILABLE)).toBe(true);
    const sessionErr = await c.openSession('s').catch((e: unknown) => e);
    expect(isStoreError(sessionErr, StoreErrorCode.REDIS_UNAVAILABLE)).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    down.disconnect();
  }
});

// ---- two stores on one data directory ----

/** A NAR claim for a file with `contents`, an input-addressed path named by `n`. */
function fileClaim(n: number, contents: Buffer, references: string[] = []): { claim: NarClaim; nar: Buffer } {
  const nar = Buffer.from(narOfBytes(contents));
  return {
    claim: { path: pathOf(n, `f${n}`), narHash: hashOf('sha256', nar), narSize: nar.length, references },
    nar,
  };
}

/**
 * An index that pauses in `has` (called under the path lock, to check references): two
 * commits of one path without a shared lock then both pass the "already registered?"
 * check before either writes, every time.
 */
function slowIndex(inner: PathIndex, ms: number): PathIndex {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'has') {
        return async (paths: readonly string[]) => {
          await sleep(ms);
          return target.has(paths);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

interface Replicas {
  readonly a: LocalStore;
  readonly b: LocalStore;
}

/** Two stores on one data dir and one Redis index; `shared`: Redis coordination, else per-process. */
async function replicas(shared: boolean, ttlMs = 30000): Promise<Replicas> {
  const dataDir = await redisFixture.dataDir();
  const prefix = `rep${++prefixes}:`;
  const open = async (clock: number): Promise<LocalStore> => {
    const c = client();
    const index = new RedisPathIndex(c, { prefix });
    return LocalStore.open({
      dataDir,
      index: slowIndex(index, 150),
      reindex: false,
      cleanStaging: false,
      now: () => clock,
      coordination: shared
        ? redisCoordination(c, { url: redisFixture.server.url, prefix, ttlMs })
        : memoryCoordination(),
    });
  };
  return { a: await open(1000), b: await open(2000) };
}

async function importBoth({ a, b }: Replicas): Promise<{ infos: PathInfo[]; onDisk: PathInfo | undefined }> {
  const dep = fileClaim(1, Buffer.from('dependency\n'));
  await a.importNar(dep.claim, chunked(dep.nar));
  const big = fileClaim(2, Buffer.alloc(3 << 20, 'x'), [dep.claim.path]);
  const infos = await Promise.all([
    a.importNar(big.claim, chunked(big.nar, 1 << 16), { sessionId: 'sa' }),
    b.importNar(big.claim, chunked(big.nar, 1 << 16), { sessionId: 'sb' }),
  ]);
  return { infos, onDisk: await readRecord(a.layout, big.claim.path) };
}

test('two stores sharing Redis coordination register a path uploaded to both once', async () => {
  const r = await replicas(true);
  await r.a.openSession('sa');
  await r.b.openSession('sb');
  const { infos, onDisk } = await importBoth(r);
  // Whichever committed first, the other waited, found its record and returned it.
  expect(infos[0]!.registrationTime).toBe(infos[1]!.registrationTime);
  expect(onDisk?.registrationTime).toBe(infos[0]!.registrationTime);
  expect((await r.a.verify({ checkContents: true })).problems).toEqual([]);
  expect(await stagingEntries(r.a)).toEqual([]);
});

test('control: with per-process locks the same race registers the path twice', async () => {
  const r = await replicas(false);
  const { infos } = await importBoth(r);
  expect(infos[0]!.registrationTime).not.toBe(infos[1]!.registrationTime);
});

test('deletion on one store respects a temp root of a session on the other, until it ends or expires', async () => {
  const r = await replicas(true, 500);
  const f = fileClaim(3, Buffer.from('rooted\n'));
  await r.a.importNar(f.claim, chunked(f.nar));
  const held = await r.b.openSession('holder');
  await r.b.tempRoots.add('holder', [f.claim.path]);
  await expect(r.a.deletePath(f.claim.path)).rejects.toMatchObject({ code: StoreErrorCode.PATH_IN_USE });
  expect(await r.a.isValid(f.claim.path)).toBe(true);
  await held.close();
  await r.a.deletePath(f.claim.path);
  expect(await r.b.isValid(f.claim.path)).toBe(false);

  // A session whose process stops renewing it: its roots go after the TTL.
  const g = fileClaim(4, Buffer.from('expiring\n'));
  await r.a.importNar(g.claim, chunked(g.nar));
  const dying = client();
  const c = await replicaOn(r.a, dying, 500);
  await c.openSession('orphan');
  await c.tempRoots.add('orphan', [g.claim.path]);
  await expect(r.a.deletePath(g.claim.path)).rejects.toMatchObject({ code: StoreErrorCode.PATH_IN_USE });
  dying.disconnect();
  await sleep(800);
  await r.a.deletePath(g.claim.path);
  expect(await r.a.isValid(g.claim.path)).toBe(false);
});

test('a root added while a deletion runs puts the path back instead of losing it', async () => {
  const r = await replicas(true);
  const f = fileClaim(5, Buffer.from('late root\n'));
  await r.a.importNar(f.claim, chunked(f.nar));
  await r.b.openSession('late');
  // Root the path on b just as a's deletion removes the index entry (after its first check).
  const index = r.a.index;
  const realDelete = index.delete.bind(index);
  index.delete = async (path: string) => {
    await realDelete(path);
    await r.b.tempRoots.add('late', [path]);
  };
  await expect(r.a.deletePath(f.claim.path)).rejects.toMatchObject({ code: StoreErrorCode.PATH_IN_USE });
  index.delete = realDelete;
  expect(await r.b.isValid(f.claim.path)).toBe(true);
  expect((await r.a.verify({ checkContents: true })).problems).toEqual([]);
});

/** Another store on `of`'s data dir and Redis prefix, through `redis`. */
async function replicaOn(of: LocalStore, redis: Redis, ttlMs: number): Promise<LocalStore> {
  const prefix = (of.index as unknown as { prefix: string }).prefix;
  return LocalStore.open({
    dataDir: of.layout.dataDir,
    index: new RedisPathIndex(redis, { prefix }),
    reindex: false,
    cleanStaging: false,
    coordination: redisCoordination(redis, { url: redisFixture.server.url, prefix, ttlMs }),
  });
}
