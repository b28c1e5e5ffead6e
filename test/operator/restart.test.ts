/**
 * The operator restarted in the middle of a build, against the simulated cluster: the
 * build pod keeps running while no operator is there, the next operator finds its Job
 * through its caches (or the API server) instead of starting another, and finishes the
 * build. Job and Pod creations are counted at the API server's store from the start, so
 * a duplicate that was created and deleted again would still count.
 *
 * The first operator stops gracefully (close(): the Lease is given up) or abruptly: it
 * runs as `node dist/cli/main.js operator` and gets SIGKILL, so its Lease stays taken
 * until it expires (15 s) and nothing of it is cleaned up. That needs `npx tsc -p
 * tsconfig.build.json` first.
 *
 * Also here: a reconcile reads Jobs and Pods from the informer caches, so the only
 * LISTs of Jobs and Pods are the informers' own.
 */
import * as k8s from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadOperatorConfig } from '../../operator/config.js';
import { OperatorMetrics } from '../../operator/metrics.js';
import { startOperator, type RunningOperator } from '../../operator/operator.js';
import type { PoolConfig } from '../../operator/pools.js';
import type { NixBuild } from '../../operator/types.js';
import type { RecordedRequest } from '../sim/apiserver/index.js';
import { startSimCluster, type SimCluster } from '../sim/cluster.js';
import { clients, waitFor } from '../sim/support.js';
import { nixBuilds, testDrv, type NixBuilds } from './nixbuilds.js';
import { CRD_FILE, REPO, loadYamlDocs } from './k8s-validate.js';

const NS = 'builds';
const CLI = join(REPO, 'dist/cli/main.js');

/** `gated-*` builds run until the file gates/<name> exists; the others finish at once. */
const builder = (gates: string) => `
import { existsSync } from 'node:fs';
const [, , cmd, drv] = process.argv;
if (cmd !== 'build-drv') process.exit(2);
const name = drv.replace(/^\\/nix\\/store\\/[^-]+-/, '').replace(/\\.drv$/, '');
const out = drv.replace(/\\.drv$/, '');
const done = () => {
  console.log(out);
  console.log(out + '-man');
  process.exit(0);
};
console.error("building '" + drv + "'...");
if (name.startsWith('gated')) {
  process.on('SIGTERM', () => process.exit(143));
  setInterval(() => existsSync(${JSON.stringify(gates)} + '/' + name) && done(), 50);
} else done();
`;

const pools: PoolConfig[] = [
  {
    name: 'amd64',
    systems: ['x86_64-linux'],
    features: [],
    nodeSelector: {},
    tolerations: [],
    resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '2Gi' } },
    maxMemory: '8Gi',
    podLabels: {},
    podAnnotations: {},
  },
];

let dir: string;
let gates: string;
let cluster: SimCluster;
let c: ReturnType<typeof clients>;
/** Every Job and Pod ever stored, in order (name, NixBuild label). */
const stored: { kind: string; name: string; nixBuild: string | undefined }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixyard-restart-'));
  gates = join(dir, 'gates');
  await mkdir(gates);
  await writeFile(join(dir, 'builder.mjs'), builder(gates));
  await writeFile(join(dir, 'pools.json'), JSON.stringify(pools));
  cluster = await startSimCluster({
    namespaces: [NS],
    nodes: [{ name: 'node-amd64-0', arch: 'amd64' }],
    volumeMap: { 'nixyard-store': join(dir, 'store') },
    commands: { nixyard: [process.execPath, join(dir, 'builder.mjs')] },
  });
  cluster.server.api.store.subscribe((e) => {
    const o = e.object;
    if (e.type === 'ADDED' && (o.kind === 'Job' || o.kind === 'Pod'))
      stored.push({
        kind: o.kind,
        name: o.metadata.name!,
        nixBuild: o.metadata.labels?.['nixyard.dev/nixbuild'],
      });
  });
  c = clients(cluster);
  builds = nixBuilds(c.custom, NS);
  const [crd] = loadYamlDocs(await readFile(CRD_FILE, 'utf8'));
  await c.ext.createCustomResourceDefinition({ body: crd as unknown as k8s.V1CustomResourceDefinition });
});

afterAll(async () => {
  await cluster?.close();
});

const drv = testDrv;
let builds: NixBuilds;
/** As a gateway's session would ask for it. */
const create = (name: string): Promise<string> => builds.create(name, { requesters: ['session-1'] });
const get = (name: string): Promise<NixBuild> => builds.get(name);
const phase = (name: string, want: string, ms?: number): Promise<NixBuild> => builds.phase(name, want, ms);

async function startInProcess(identity: string, args: string[] = []): Promise<RunningOperator> {
  const config = loadOperatorConfig(
    [
      `--namespace=${NS}`,
      '--image=ghcr.io/nixyard/nixyard:test',
      '--redis-url=redis://redis:6379',
      '--metrics-listen=127.0.0.1:0',
      ...args,
    ],
    { POD_NAME: identity },
  );
  return startOperator(config, {
    kubeConfig: c.kc,
    pools,
    log: pino({ level: 'silent' }),
    metrics: new OperatorMetrics({ defaultMetrics: false }),
    onLostLeadership: () => {
      throw new Error('lost the Lease during the test');
    },
  });
}

/** The operator as in its pod, to be killed with SIGKILL. */
function startChild(identity: string, lease: string): ChildProcess {
  return spawn(
    process.execPath,
    [
      CLI,
      'operator',
      `--namespace=${NS}`,
      '--image=ghcr.io/nixyard/nixyard:test',
      '--redis-url=redis://redis:6379',
      '--metrics-listen=127.0.0.1:0',
      `--lease-name=${lease}`,
      `--pools-file=${join(dir, 'pools.json')}`,
      '--log-level=warn',
    ],
    {
      env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, POD_NAME: identity },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
}

async function holder(lease: string): Promise<string | undefined> {
  try {
    const l = await c.coord.readNamespacedLease({ name: lease, namespace: NS });
    return l.spec?.holderIdentity ?? '';
  } catch {
    return undefined;
  }
}

const sum = async (m: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await m.get()).values.reduce((a, v) => a + v.value, 0);

/** LISTs (GET of a collection, not a watch) of Jobs or Pods in the namespace. */
function lists(requests: readonly RecordedRequest[], resource: 'jobs' | 'pods'): RecordedRequest[] {
  const path = resource === 'jobs' ? `/apis/batch/v1/namespaces/${NS}/jobs` : `/api/v1/namespaces/${NS}/pods`;
  return requests.filter((r) => r.method === 'GET' && r.path === path && !/[?&]watch=(true|1)/.test(r.query));
}

const selectorOf = (r: RecordedRequest) => new URLSearchParams(r.query).get('labelSelector');

describe('the operator restarted in the middle of a build', () => {
  test.each([
    ['gracefully: the Lease is given up', 'graceful'],
    ['abruptly (SIGKILL): the Lease stays until it expires', 'abrupt'],
  ] as const)(
    'stopped %s; the next operator creates no second Job and finishes the build',
    async (_title, mode) => {
      if (mode === 'abrupt' && !existsSync(CLI))
        throw new Error(`${CLI} is missing: run npx tsc -p tsconfig.build.json first`);
      const lease = `nixyard-restart-${mode}`;
      const first = `operator-${mode}-a`;
      let inProcess: RunningOperator | undefined;
      let child: ChildProcess | undefined;
      let next: RunningOperator | undefined;
      try {
        if (mode === 'graceful') inProcess = await startInProcess(first, [`--lease-name=${lease}`]);
        else child = startChild(first, lease);
        await waitFor('the first operator to lead', async () =>
          (await holder(lease)) === first ? true : undefined,
        );

        const name = await create(`gated-${mode}`);
        const building = await phase(name, 'Building');
        const podName = building.status!.podName!;
        const pod = await c.core.readNamespacedPod({ name: podName, namespace: NS });
        expect(pod.status?.phase).toBe('Running');

        if (inProcess) {
          await inProcess.close();
          inProcess = undefined;
          expect(await holder(lease)).toBe('');
        } else {
          child!.kill('SIGKILL');
          await once(child!, 'exit');
          child = undefined;
          expect(await holder(lease)).toBe(first);
        }
        // Nobody watches: the build goes on.
        await new Promise((r) => setTimeout(r, 300));
        expect((await c.core.readNamespacedPod({ name: podName, namespace: NS })).status?.phase).toBe(
          'Running',
        );

        // Its caches fill late: reconciles must wait for them, not take "no Job" for "deleted".
        for (const path of [`/apis/batch/v1/namespaces/${NS}/jobs$`, `/api/v1/namespaces/${NS}/pods$`])
          cluster.server.faults.add({
            method: 'GET',
            path,
            watch: false,
            times: 1,
            action: { type: 'delay', ms: 1000 },
          });
        const since = cluster.server.requests.length;
        next = await startInProcess(`operator-${mode}-b`, [`--lease-name=${lease}`]);
        const b = next;
        await waitFor(
          'the next operator to lead',
          async () => ((await b.metrics.isLeader.get()).values[0]?.value === 1 ? true : undefined),
          30_000,
        );
        // It reconciles the build while the pod still runs …
        await waitFor('its first reconciles', async () =>
          (await sum(b.metrics.reconciles)) > 0 ? true : undefined,
        );
        await b.queue.idle();
        const meanwhile = await get(name);
        expect(meanwhile.status).toMatchObject({ phase: 'Building', attempts: 1, jobName: name, podName });

        // … and sees it to its end when it ends.
        await writeFile(join(gates, `gated-${mode}`), '');
        const nb = await phase(name, 'Succeeded');
        const out = drv(`gated-${mode}`).replace(/\.drv$/, '');
        expect(nb.status).toMatchObject({
          phase: 'Succeeded',
          attempts: 1,
          jobName: name,
          podName,
          nodeName: 'node-amd64-0',
          pool: 'amd64',
          outputs: [
            { name: 'out', path: out },
            { name: 'man', path: `${out}-man` },
          ],
        });
        expect(nb.status?.reason).toBeUndefined();
        expect(nb.status?.conditions?.find((x) => x.type === 'Succeeded')?.status).toBe('True');

        // Exactly one Job and one Pod were ever created for it.
        expect(stored.filter((s) => s.nixBuild === name)).toEqual([
          { kind: 'Job', name, nixBuild: name },
          { kind: 'Pod', name: podName, nixBuild: name },
        ]);
        const job = await waitFor('the TTL of the recorded Job', async () => {
          const j = await c.batch.readNamespacedJob({ name, namespace: NS });
          return j.spec?.ttlSecondsAfterFinished === 3600 ? j : undefined;
        });
        const window = cluster.server.requests.slice(since);
        // No orphan Pod: the one Pod is the Job's, and it has finished.
        const pods = await c.core.listNamespacedPod({
          namespace: NS,
          labelSelector: `nixyard.dev/nixbuild=${name}`,
        });
        expect(pods.items.map((p) => p.metadata?.name)).toEqual([podName]);
        expect(pods.items[0]!.metadata?.ownerReferences?.map((o) => o.uid)).toEqual([job.metadata!.uid]);
        expect(pods.items[0]!.status?.phase).toBe('Succeeded');

        // The next operator listed Jobs and Pods once each, for its caches, and never per
        // reconcile (the reconciler's LISTs had a nixyard.dev/nixbuild= selector).
        for (const resource of ['jobs', 'pods'] as const)
          expect(lists(window, resource).map(selectorOf)).toEqual([
            'app.kubernetes.io/managed-by=nixyard-operator',
          ]);
        expect(await sum(b.metrics.reconciles)).toBeGreaterThanOrEqual(2);
        expect(await sum(b.metrics.jobsCreated)).toBe(0);
      } finally {
        child?.kill('SIGKILL');
        await inProcess?.close();
        await next?.close();
      }
    },
    60_000,
  );
});

describe('reconciles read Jobs and Pods from the informer caches', () => {
  test('many reconciles, and the only LISTs of Jobs and Pods are the informers’ first ones', async () => {
    const since = cluster.server.requests.length;
    const op = await startInProcess('operator-cache', ['--leader-election=false']);
    try {
      const names = await Promise.all(
        ['one', 'two', 'three', 'four', 'five'].map((n) => create(`hello-${n}`)),
      );
      for (const name of names) await phase(name, 'Succeeded');
      await op.queue.idle();
      const window = cluster.server.requests.slice(since);
      const reconciles = await sum(op.metrics.reconciles);
      expect(reconciles).toBeGreaterThanOrEqual(2 * names.length);
      for (const resource of ['jobs', 'pods'] as const)
        expect(lists(window, resource).map(selectorOf)).toEqual([
          'app.kubernetes.io/managed-by=nixyard-operator',
        ]);
      // One Job each, created by this operator.
      expect(await sum(op.metrics.jobsCreated)).toBe(names.length);
      for (const name of names)
        expect(stored.filter((s) => s.nixBuild === name && s.kind === 'Job')).toHaveLength(1);
    } finally {
      await op.close();
    }
  }, 30_000);
});

describe('a Job cache that is behind', () => {
  test('a Job the cache has not seen is not taken for a deleted one: no second attempt', async () => {
    const op = await startInProcess('operator-stale', ['--leader-election=false']);
    try {
      await waitFor('its watches', () => (cluster.server.openWatchCount >= 3 ? true : undefined));
      // The Jobs' watch stays open but delivers nothing: the cache never sees a new Job.
      expect(cluster.server.silenceWatches({ plural: 'jobs', namespace: NS })).toBe(1);
      const since = cluster.server.requests.length;
      const name = await create('gated-stale');
      const building = await phase(name, 'Building');
      // Status writes and Pod events made it reconcile again and again meanwhile.
      await new Promise((r) => setTimeout(r, 500));
      await op.queue.idle();
      expect(await get(name)).toMatchObject({ status: { phase: 'Building', attempts: 1, jobName: name } });
      expect(stored.filter((s) => s.nixBuild === name && s.kind === 'Job').map((s) => s.name)).toEqual([
        name,
      ]);
      // It asked the API server for the Job the cache lacked.
      const reads = cluster.server.requests
        .slice(since)
        .filter((r) => r.method === 'GET' && r.path === `/apis/batch/v1/namespaces/${NS}/jobs/${name}`);
      expect(reads.length).toBeGreaterThan(0);

      // The watch fails; the restarted informer relists and catches up.
      expect(cluster.server.dropWatches({ plural: 'jobs', namespace: NS })).toBe(1);
      await writeFile(join(gates, 'gated-stale'), '');
      const nb = await phase(name, 'Succeeded', 20_000);
      expect(nb.status).toMatchObject({ attempts: 1, jobName: name, podName: building.status!.podName });
      expect(stored.filter((s) => s.nixBuild === name).map((s) => s.kind)).toEqual(['Job', 'Pod']);
      expect(await sum(op.metrics.jobsCreated)).toBe(1);
    } finally {
      await op.close();
    }
  }, 40_000);
});
