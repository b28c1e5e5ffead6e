/**
 * ResilientWatch's own cache against the simulated API server: indexed by a label, kept
 * (stale, not empty) while a restart fails, replaced whole by the next list, which
 * reports what vanished meanwhile as deleted.
 */
import * as k8s from '@kubernetes/client-node';
import { ResilientWatch } from '../../operator/watch.js';
import { startSimCluster, type SimCluster } from '../sim/cluster.js';
import { clients, waitFor } from '../sim/support.js';

const NS = 'watched';
let cluster: SimCluster;
let c: ReturnType<typeof clients>;

beforeAll(async () => {
  cluster = await startSimCluster({ namespaces: [NS], nodes: [] });
  c = clients(cluster);
});

afterAll(async () => {
  await cluster?.close();
});

const configMap = (name: string, owner: string): k8s.V1ConfigMap => ({
  metadata: { name, labels: { app: 'test', owner } },
  data: {},
});

test('index by label; a failed restart keeps the cache; the next list drops what vanished', async () => {
  const core = c.core;
  await core.createNamespacedConfigMap({ namespace: NS, body: configMap('a1', 'a') });
  await core.createNamespacedConfigMap({ namespace: NS, body: configMap('a2', 'a') });
  const seen: string[] = [];
  const restarts: string[] = [];
  const watch = new ResilientWatch<k8s.V1ConfigMap>({
    kubeConfig: c.kc,
    path: `/api/v1/namespaces/${NS}/configmaps`,
    list: () => core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'app=test' }),
    labelSelector: 'app=test',
    indexBy: (o) => o.metadata?.labels?.owner,
    onObject: (o, event) => seen.push(`${event} ${o.metadata?.name}`),
    relistMs: 3_600_000,
    minBackoffMs: 50,
    maxBackoffMs: 100,
    onRestart: (reason) => restarts.push(reason),
  });
  const names = (objs: readonly k8s.V1ConfigMap[]) => objs.map((o) => o.metadata?.name).sort();
  try {
    const synced = watch.waitForSync();
    await watch.start();
    await synced;
    expect(watch.hasSynced).toBe(true);
    expect(names(watch.byIndex('a'))).toEqual(['a1', 'a2']);

    await core.createNamespacedConfigMap({ namespace: NS, body: configMap('b1', 'b') });
    await waitFor('b1 in the cache', () => (watch.byIndex('b').length === 1 ? true : undefined));
    // A label change moves the object to another index key.
    await core.patchNamespacedConfigMap(
      { name: 'a2', namespace: NS, body: { metadata: { labels: { owner: 'b' } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await waitFor('a2 under b', () => (watch.byIndex('b').length === 2 ? true : undefined));
    expect(names(watch.byIndex('a'))).toEqual(['a1']);

    // The watch goes silent, a1 is deleted, then the watch breaks and the relists fail.
    cluster.server.silenceWatches({ plural: 'configmaps', namespace: NS });
    await core.deleteNamespacedConfigMap({ name: 'a1', namespace: NS });
    const fault = cluster.server.faults.add({
      method: 'GET',
      path: `/namespaces/${NS}/configmaps$`,
      watch: false,
      action: { type: 'status', code: 500 },
    });
    seen.length = 0;
    cluster.server.dropWatches({ plural: 'configmaps', namespace: NS });
    await waitFor('two failed restarts', () => (restarts.length >= 2 ? true : undefined));
    // Stale, not empty: a1 is still there, nothing was reported.
    expect(names(watch.list())).toEqual(['a1', 'a2', 'b1']);
    expect(seen).toEqual([]);

    cluster.server.faults.remove(fault);
    await waitFor('a1 gone', () => (watch.byIndex('a').length === 0 ? true : undefined), 5_000);
    expect(names(watch.list())).toEqual(['a2', 'b1']);
    expect(seen).toContain('delete a1');
    expect(seen).toEqual(expect.arrayContaining(['list a2', 'list b1']));
    // And it watches again.
    await core.createNamespacedConfigMap({ namespace: NS, body: configMap('c1', 'c') });
    await waitFor('c1 in the cache', () => (watch.byIndex('c').length === 1 ? true : undefined));
  } finally {
    await watch.stop();
  }
});

test('waitForSync rejects when the watch is stopped before its first list', async () => {
  const fault = cluster.server.faults.add({
    method: 'GET',
    path: `/namespaces/${NS}/secrets$`,
    watch: false,
    action: { type: 'status', code: 500 },
  });
  const watch = new ResilientWatch<k8s.V1Secret>({
    kubeConfig: c.kc,
    path: `/api/v1/namespaces/${NS}/secrets`,
    list: () => c.core.listNamespacedSecret({ namespace: NS }),
    onObject: () => {},
    relistMs: 3_600_000,
    minBackoffMs: 50,
  });
  try {
    const synced = watch.waitForSync();
    await watch.start();
    expect(watch.hasSynced).toBe(false);
    await watch.stop();
    await expect(synced).rejects.toThrow(/stopped/);
  } finally {
    cluster.server.faults.remove(fault);
    await watch.stop();
  }
});
