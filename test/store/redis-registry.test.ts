/**
 * Locks, sessions and temp roots shared through Redis, between clients that stand for
 * different processes (gateway replicas, build pods). Against a real `redis-server`.
 */
import { expect, test } from '@jest/globals';
import { isStoreError, StoreErrorCode } from '../../store/errors.js';
import { RedisLock, RedisTempRoots, type TempRootRegistry } from '../../store/redis-registry.js';
import { TempRoots } from '../../store/temp-roots.js';
import { useRedisServer } from './redis-fixture.js';
import { pathOf } from './redis-support.js';

const redis = useRedisServer();
const client = redis.client;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a lock is exclusive across clients until released', async () => {
  const one = new RedisLock(client());
  const two = new RedisLock(client());
  const lease = await one.tryAcquire('/nix/store/x.drv');
  expect(lease).toBeDefined();
  expect(await two.tryAcquire('/nix/store/x.drv')).toBeUndefined();
  expect(await two.tryAcquire('/nix/store/y.drv')).toBeDefined();
  const timedOut = await two.acquire('/nix/store/x.drv', { waitMs: 150 }).catch((e: unknown) => e);
  expect(isStoreError(timedOut, StoreErrorCode.LOCK_TIMEOUT)).toBe(true);
  const waiting = two.acquire('/nix/store/x.drv', { waitMs: 5000 });
  await sleep(50);
  expect(await lease!.release()).toBe(true);
  const second = await waiting;
  expect(second.key).toBe('/nix/store/x.drv');
  await second.release();
});

test('an expired lease lets another in, and its late release does not free the new holder’s lock', async () => {
  const one = new RedisLock(client());
  const two = new RedisLock(client());
  const stale = await one.tryAcquire('k', 150);
  expect(stale).toBeDefined();
  await sleep(250);
  const fresh = await two.tryAcquire('k', 5000);
  expect(fresh).toBeDefined();
  expect(await stale!.extend()).toBe(false);
  expect(await stale!.release()).toBe(false);
  expect(await one.tryAcquire('k')).toBeUndefined();
  expect(await fresh!.extend(5000)).toBe(true);
  expect(await fresh!.release()).toBe(true);
  expect(await one.tryAcquire('k')).toBeDefined();
});

test('with() serialises critical sections of two clients and keeps its lease while they run', async () => {
  const locks = [new RedisLock(client()), new RedisLock(client())];
  let inside = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      locks[i % 2]!.with(
        'shared',
        async (signal) => {
          inside++;
          most = Math.max(most, inside);
          // Longer than the lease: the renewals must keep it.
          await sleep(i === 0 ? 800 : 20);
          expect(signal.aborted).toBe(false);
          order.push(i);
          inside--;
        },
        { leaseMs: 300 },
      ),
    ),
  );
  expect(most).toBe(1);
  expect(order.sort()).toEqual([0, 1, 2, 3, 4, 5]);
});

test('a session’s temp roots are seen by every client and vanish when its registration expires', async () => {
  const replica = client();
  const onReplica = new RedisTempRoots(replica);
  const elsewhere = new RedisTempRoots(client());
  const expired: string[] = [];
  const reg = await onReplica.register('s1', {
    ttlMs: 300,
    info: { replica: 'a' },
    onExpired: () => expired.push('s1'),
  });
  const kept = await elsewhere.register('s2', { ttlMs: 60000 });
  await onReplica.add('s1', [pathOf(1), pathOf(2)]);
  await elsewhere.add('s2', [pathOf(3)]);
  expect(await elsewhere.has(pathOf(1))).toBe(true);
  expect(await elsewhere.all()).toEqual(new Set([pathOf(1), pathOf(2), pathOf(3)]));
  expect(await elsewhere.of('s1')).toEqual(new Set([pathOf(1), pathOf(2)]));
  expect(await elsewhere.sessions()).toEqual(['s1', 's2']);

  // Heartbeats keep it alive past its TTL…
  await sleep(500);
  expect(await elsewhere.has(pathOf(1))).toBe(true);

  // …until its replica dies.
  replica.disconnect();
  await sleep(450);
  expect(await elsewhere.has(pathOf(1))).toBe(false);
  expect(await elsewhere.has(pathOf(3))).toBe(true);
  expect(await elsewhere.all()).toEqual(new Set([pathOf(3)]));
  expect(await elsewhere.of('s1')).toEqual(new Set());
  expect(await elsewhere.sessions()).toEqual(['s2']);
  expect(await elsewhere.isRegistered('s1')).toBe(false);
  const late = await elsewhere.add('s1', [pathOf(4)]).catch((e: unknown) => e);
  expect(isStoreError(late, StoreErrorCode.SESSION_EXPIRED)).toBe(true);
  await reg.close().catch(() => undefined); // its connection is gone: stops the timer only
  // A heartbeat that finds the registration gone tells its owner.
  const revived = new RedisTempRoots(client());
  const again = await revived.register('s3', { ttlMs: 100, onExpired: () => expired.push('s3') });
  await again.close();
  expect(await again.heartbeat()).toBe(false);
  expect(expired).toEqual(['s3']);

  await kept.close();
  expect(await elsewhere.has(pathOf(3))).toBe(false);
});

test('closing a registration drops its roots at once', async () => {
  const roots = new RedisTempRoots(client(), { prefix: 'other:' });
  const reg = await roots.register('s', { ttlMs: 60000 });
  await roots.add('s', [pathOf(9)]);
  expect(await roots.has(pathOf(9))).toBe(true);
  await reg.close();
  expect(await roots.has(pathOf(9))).toBe(false);
  expect(await roots.sessions()).toEqual([]);
});

test('the in-process TempRoots and RedisTempRoots satisfy one TempRootRegistry', async () => {
  const registries: [TempRootRegistry, () => Promise<void>][] = [
    [new TempRoots(), () => Promise.resolve()],
    [
      new RedisTempRoots(client(), { prefix: 'iface:' }),
      async () => {
        await (await new RedisTempRoots(client(), { prefix: 'iface:' }).register('a')).heartbeat();
      },
    ],
  ];
  for (const [registry, registerA] of registries) {
    await registerA();
    await registry.add('a', [pathOf(1)]);
    expect(await registry.has(pathOf(1))).toBe(true);
    expect(await registry.all()).toEqual(new Set([pathOf(1)]));
    await registry.release('a');
    expect(await registry.has(pathOf(1))).toBe(false);
  }
});
