/**
 * The real operator (informers, queue, reconciler, Lease) through the real client-node
 * against the simulated cluster (test/sim): its Job controller and kubelets run the
 * build pods as local processes. The builder here is a stand-in for `nixyard build-drv`
 * (this tests the operator, not the builder): it behaves by derivation name.
 */
import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadOperatorConfig } from '../../operator/config.js';
import { nixBuildName } from '../../operator/names.js';
import { OperatorMetrics } from '../../operator/metrics.js';
import { startOperator, type RunningOperator } from '../../operator/operator.js';
import type { PoolConfig } from '../../operator/pools.js';
import { startSimCluster, type SimCluster } from '../sim/cluster.js';
import { clients, waitFor } from '../sim/support.js';
import { nixBuilds, testDrv, type NixBuilds } from './nixbuilds.js';
import { ensureTools } from '../sim/tools.js';
import { CRD_FILE, loadYamlDocs } from './k8s-validate.js';
import { HASH } from './fixtures.js';

const NS = 'builds';
const run = promisify(execFile);
const FAKE_BUILDER = `
const [, , cmd, drv] = process.argv;
if (cmd !== 'build-drv') process.exit(2);
const name = drv.replace(/^\\/nix\\/store\\/[^-]+-/, '').replace(/\\.drv$/, '');
const out = drv.replace(/\\.drv$/, '');
console.error("building '" + drv + "'...");
if (name.startsWith('broken')) {
  console.error("error: builder for '" + drv + "' failed with exit code 2;");
  console.error('       last 1 log lines:');
  console.error('       > make: *** [all] Error 2');
  process.exit(100);
}
if (name.startsWith('slow')) {
  setInterval(() => console.error('still building'), 50);
  process.on('SIGTERM', () => process.exit(143));
} else {
  console.log(out);
  console.log(out + '-man');
}
`;

const pools: PoolConfig[] = [
  {
    name: 'amd64',
    systems: ['x86_64-linux'],
    features: ['big-parallel'],
    nodeSelector: {},
    tolerations: [],
    resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '2Gi' } },
    maxMemory: '8Gi',
    podLabels: {},
    podAnnotations: {},
  },
  {
    name: 'arm64',
    systems: ['aarch64-linux'],
    features: [],
    nodeSelector: { 'nixyard.dev/pool': 'arm64' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'nix-arm64', effect: 'NoSchedule' }],
    resources: {},
    podLabels: {},
    podAnnotations: {},
  },
];

let cluster: SimCluster;
let c: ReturnType<typeof clients>;
let operator: RunningOperator;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nixyard-operator-'));
  const builder = join(dir, 'fake-build-drv.mjs');
  await writeFile(builder, FAKE_BUILDER);
  cluster = await startSimCluster({
    namespaces: [NS],
    nodes: [
      { name: 'node-amd64-0', arch: 'amd64' },
      {
        name: 'node-arm64-0',
        arch: 'arm64',
        labels: { 'nixyard.dev/pool': 'arm64' },
        taints: [{ key: 'dedicated', value: 'nix-arm64', effect: 'NoSchedule' }],
      },
    ],
    volumeMap: { 'nixyard-store': join(dir, 'store') },
    commands: { nixyard: [process.execPath, builder] },
  });
  c = clients(cluster);
  ({ create, get, phase } = nixBuilds(c.custom, NS));
  const [crd] = loadYamlDocs(await readFile(CRD_FILE, 'utf8'));
  await c.ext.createCustomResourceDefinition({ body: crd as unknown as k8s.V1CustomResourceDefinition });
  const config = loadOperatorConfig(
    [
      `--namespace=${NS}`,
      '--image=ghcr.io/nixyard/nixyard:test',
      '--redis-url=redis://redis:6379',
      '--metrics-listen=127.0.0.1:0',
      '--lease-name=nixyard-operator',
    ],
    { POD_NAME: 'operator-0' },
  );
  operator = await startOperator(config, {
    kubeConfig: c.kc,
    pools,
    log: pino({ level: 'silent' }),
    onLostLeadership: () => {
      throw new Error('lost the Lease during the test');
    },
  });
});

afterAll(async () => {
  await operator?.close();
  await cluster?.close();
});

const drv = testDrv;
let create: NixBuilds['create'];
let get: NixBuilds['get'];
let phase: NixBuilds['phase'];

async function eventsOf(name: string): Promise<string[]> {
  const list = await c.core.listNamespacedEvent({
    namespace: NS,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items.map((e) => e.reason ?? '');
}

describe('the operator against the simulated cluster', () => {
  test('holds the Lease, with MicroTime times', async () => {
    const lease = await waitFor('the Lease', async () => {
      const l = await c.coord.readNamespacedLease({ name: 'nixyard-operator', namespace: NS });
      return l.spec?.holderIdentity === 'operator-0' ? l : undefined;
    });
    expect(lease.spec?.leaseDurationSeconds).toBe(15);
  });

  test('a build succeeds: Job on the amd64 node, outputs, times, Events, then the Job’s TTL', async () => {
    const name = await create('hello-2.12.1', { requesters: ['session-1'] });
    const nb = await phase(name, 'Succeeded');
    expect(nb.status).toMatchObject({
      nodeName: 'node-amd64-0',
      pool: 'amd64',
      attempts: 1,
      jobName: name,
      observedGeneration: 1,
      outputs: [
        { name: 'out', path: drv('hello-2.12.1').replace(/\.drv$/, '') },
        { name: 'man', path: `${drv('hello-2.12.1').replace(/\.drv$/, '')}-man` },
      ],
    });
    expect(nb.status?.duration).toMatch(/^\d+s$/);
    expect(nb.status?.conditions?.find((x) => x.type === 'Succeeded')?.status).toBe('True');
    const job = await waitFor('the TTL', async () => {
      const j = await c.batch.readNamespacedJob({ name, namespace: NS });
      return j.spec?.ttlSecondsAfterFinished === 3600 ? j : undefined;
    });
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'NixBuild', name, controller: true });
    expect(job.spec?.template.spec?.containers[0]?.command?.slice(0, 3)).toEqual([
      'nixyard',
      'build-drv',
      drv('hello-2.12.1'),
    ]);
    expect(await eventsOf(name)).toEqual(expect.arrayContaining(['JobCreated', 'Succeeded']));
  });

  test('an aarch64 build goes to the tainted arm64 node', async () => {
    const name = await create('hello-arm', { system: 'aarch64-linux' });
    const nb = await phase(name, 'Succeeded');
    expect(nb.status).toMatchObject({ nodeName: 'node-arm64-0', pool: 'arm64' });
  });

  test('a genuine build failure: Failed in Nix words, once', async () => {
    const name = await create('broken-1.0');
    const nb = await phase(name, 'Failed');
    expect(nb.status).toMatchObject({ reason: 'BuildFailed', exitCode: 100, attempts: 1 });
    expect(nb.status?.message).toMatch(/^builder for '.*broken-1\.0\.drv' failed with exit code 2;/);
    const jobs = await c.batch.listNamespacedJob({
      namespace: NS,
      labelSelector: `nixyard.dev/nixbuild=${name}`,
    });
    expect(jobs.items).toHaveLength(1);
  });

  test('a system no pool serves fails at once, without a Job', async () => {
    const name = await create('hello-darwin', { system: 'aarch64-darwin' });
    const nb = await phase(name, 'Failed');
    expect(nb.status?.reason).toBe('NoPoolForSystem');
    const jobs = await c.batch.listNamespacedJob({
      namespace: NS,
      labelSelector: `nixyard.dev/nixbuild=${name}`,
    });
    expect(jobs.items).toHaveLength(0);
  });

  test('an OOM-kill is retried with twice the memory', async () => {
    const name = await create('slow-oom');
    const first = await phase(name, 'Building');
    await fetch(`${cluster.url}/__sim/pods/${NS}/${first.status!.podName!}/oomkill`, { method: 'POST' });
    const retry = await waitFor('the retry', async () => {
      const nb = await get(name);
      return (nb.status?.attempts ?? 0) >= 2 ? nb : undefined;
    });
    expect(retry.status?.memoryLimit).toBe('4Gi');
    const job = await c.batch.readNamespacedJob({ name: `${name}-retry1`, namespace: NS });
    expect(job.spec?.template.spec?.containers[0]?.resources?.limits?.memory).toBe('4Gi');
    expect(await eventsOf(name)).toEqual(expect.arrayContaining(['OOMKilled']));
    // Deleting the NixBuild takes its Jobs and their Pods with it.
    await c.custom.deleteNamespacedCustomObject({
      group: 'nixyard.dev',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'nixbuilds',
      name,
    });
    await waitFor('no Jobs or Pods left', async () => {
      const jobs = await c.batch.listNamespacedJob({
        namespace: NS,
        labelSelector: `nixyard.dev/nixbuild=${name}`,
      });
      const pods = await c.core.listNamespacedPod({
        namespace: NS,
        labelSelector: `nixyard.dev/nixbuild=${name}`,
      });
      return jobs.items.length + pods.items.length === 0 ? true : undefined;
    });
  });

  test('an eviction (drain) is retried on a new Job', async () => {
    const name = await create('slow-evict');
    const first = await phase(name, 'Building');
    await c.core.createNamespacedPodEviction({
      name: first.status!.podName!,
      namespace: NS,
      body: {
        apiVersion: 'policy/v1',
        kind: 'Eviction',
        metadata: { name: first.status!.podName!, namespace: NS },
      },
    });
    const retry = await waitFor('the retry', async () => {
      const nb = await get(name);
      return (nb.status?.attempts ?? 0) >= 2 && nb.status?.phase === 'Building' ? nb : undefined;
    });
    expect(retry.status?.jobName).toBe(`${name}-retry1`);
    expect(await eventsOf(name)).toEqual(expect.arrayContaining(['Evicted']));
    await c.custom.deleteNamespacedCustomObject({
      group: 'nixyard.dev',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'nixbuilds',
      name,
    });
  });

  test('dropped watches and failing lists: the operator restarts its watches and goes on', async () => {
    const before = await operator.metrics.watchRestarts.get();
    cluster.server.faults.add({
      method: 'GET',
      path: '/nixbuilds$',
      watch: false,
      times: 2,
      action: { type: 'status', code: 500 },
    });
    expect(cluster.server.dropWatches({ namespace: NS })).toBeGreaterThan(0);
    const name = await create('hello-after-drop');
    await phase(name, 'Succeeded', 30_000);
    const after = await operator.metrics.watchRestarts.get();
    const sum = (m: typeof before) => m.values.reduce((a, v) => a + v.value, 0);
    expect(sum(after)).toBeGreaterThan(sum(before));
  });

  test('the last session leaving cancels the build: the Job and its Pod go', async () => {
    const name = await create('slow-cancel', { requesters: ['session-1', 'session-2'] });
    await phase(name, 'Building');
    await c.custom.patchNamespacedCustomObject(
      {
        group: 'nixyard.dev',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'nixbuilds',
        name,
        body: { spec: { requesters: [] } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const nb = await phase(name, 'Cancelled');
    expect(nb.status?.reason).toBe('Cancelled');
    await waitFor('no Pods left', async () => {
      const pods = await c.core.listNamespacedPod({
        namespace: NS,
        labelSelector: `nixyard.dev/nixbuild=${name}`,
      });
      return pods.items.length === 0 ? true : undefined;
    });
  });

  test('/metrics counts reconciles and Jobs, without derivation labels', async () => {
    const text = await (await fetch(`${operator.httpAddress}/metrics`)).text();
    expect(text).toMatch(/nixyard_operator_reconcile_total\{result="success"\} [1-9]/);
    expect(text).toMatch(/nixyard_operator_jobs_created_total\{system="x86_64-linux",pool="amd64"\} [1-9]/);
    expect(text).toMatch(/nixyard_operator_leader 1/);
    expect(text).not.toContain(HASH.slice(0, 20));
    expect((await fetch(`${operator.httpAddress}/readyz`)).status).toBe(200);
  });

  test('kubectl get nixbuilds: NAME SYSTEM PHASE NODE AGE DURATION; -o wide adds DERIVATION and REASON', async () => {
    const name = nixBuildName(drv('hello-2.12.1'));
    for (const flavour of ['v33', 'v35'] as const) {
      const { kubectl } = await ensureTools(flavour);
      const home = await mkdtemp(join(tmpdir(), 'nixyard-kubectl-'));
      const env = {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        KUBECONFIG: cluster.kubeconfigPath,
      };
      const get = async (...args: string[]) =>
        (await run(kubectl, ['-n', NS, 'get', ...args], { env })).stdout;
      const plain = (await get('nixbuilds')).split('\n');
      expect(plain[0]!.split(/\s+/)).toEqual(['NAME', 'SYSTEM', 'PHASE', 'NODE', 'AGE', 'DURATION']);
      expect(plain.find((l) => l.startsWith(name))).toMatch(
        /x86_64-linux\s+Succeeded\s+node-amd64-0\s+\S+\s+\d+s\s*$/,
      );
      const wide = (await get('nb', '-o', 'wide')).split('\n');
      expect(wide[0]!.split(/\s+/)).toEqual([
        'NAME',
        'SYSTEM',
        'PHASE',
        'NODE',
        'AGE',
        'DURATION',
        'DERIVATION',
        'REASON',
      ]);
      expect(wide.find((l) => l.startsWith(nixBuildName(drv('broken-1.0'))))).toMatch(
        /broken-1\.0\.drv\s+BuildFailed\s*$/,
      );
      expect(await get('nix')).toContain(name);
    }
  });

  test('a second replica waits for the Lease, and takes over when the leader leaves', async () => {
    const config = loadOperatorConfig(
      [`--namespace=${NS}`, '--image=ghcr.io/nixyard/nixyard:test', '--metrics-listen=127.0.0.1:0'],
      { POD_NAME: 'operator-1' },
    );
    const standby = await startOperator(config, {
      kubeConfig: c.kc,
      pools,
      log: pino({ level: 'silent' }),
      metrics: new OperatorMetrics({ defaultMetrics: false }),
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect((await standby.metrics.isLeader.get()).values[0]?.value ?? 0).toBe(0);
      expect((await fetch(`${standby.httpAddress}/readyz`)).status).toBe(200);
      await operator.close(); // gives the Lease up
      await waitFor('the standby to lead', async () =>
        (await standby.metrics.isLeader.get()).values[0]?.value === 1 ? true : undefined,
      );
      const name = await create('hello-new-leader');
      await phase(name, 'Succeeded');
    } finally {
      await standby.close();
    }
  });
  test('a silent watch (a half-open connection) is healed by the periodic relist', async () => {
    const config = loadOperatorConfig(
      [
        `--namespace=${NS}`,
        '--image=ghcr.io/nixyard/nixyard:test',
        '--metrics-listen=127.0.0.1:0',
        '--leader-election=false',
        '--relist-interval=1',
      ],
      { POD_NAME: 'operator-2' },
    );
    const op = await startOperator(config, {
      kubeConfig: c.kc,
      pools,
      log: pino({ level: 'silent' }),
      metrics: new OperatorMetrics({ defaultMetrics: false }),
    });
    try {
      await waitFor('its watches', () => (cluster.server.openWatchCount >= 3 ? true : undefined));
      expect(cluster.server.silenceWatches({ namespace: NS })).toBeGreaterThanOrEqual(3);
      const name = await create('hello-after-silence');
      await phase(name, 'Succeeded');
    } finally {
      await op.close();
    }
  });
});
