/**
 * The Job controller and kubelet of the simulated cluster, through the real
 * client-node: pods run as local processes, logs stream, exit codes become Job
 * conditions. https://kubernetes.io/docs/concepts/workloads/controllers/job/
 */
import * as k8s from '@kubernetes/client-node';
import { chmod, copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { LocalStore } from '../../store/local-store.js';
import { importClosure, run as runNix } from '../builder/harness.js';
import { startSimCluster, type SimCluster } from './cluster.js';
import { REPO_ROOT } from './tools.js';
import { clients, failure, waitFor } from './support.js';

let cluster: SimCluster;
let c: ReturnType<typeof clients>;
let store: string;

beforeAll(async () => {
  store = await mkdtemp(join(tmpdir(), 'sim-store-'));
  cluster = await startSimCluster({
    nodes: [
      { name: 'amd', arch: 'amd64' },
      {
        name: 'arm',
        arch: 'arm64',
        taints: [{ key: 'dedicated', value: 'nix-arm64', effect: 'NoSchedule' }],
      },
    ],
    volumeMap: { '/srv/nix-store': store },
    commands: { nixyard: [process.execPath, join(REPO_ROOT, 'dist/cli/main.js')] },
    nodeLossEvictionMs: 1000,
  });
  c = clients(cluster);
});
afterAll(() => cluster.close());

function job(
  name: string,
  script: string,
  extra: Partial<k8s.V1JobSpec> = {},
  pod: Partial<k8s.V1PodSpec> = {},
): k8s.V1Job {
  return {
    metadata: { name },
    spec: {
      backoffLimit: 0,
      ...extra,
      template: {
        spec: {
          restartPolicy: 'Never',
          containers: [{ name: 'build', image: 'sim/sh', command: ['sh', '-c', script] }],
          ...pod,
        },
      },
    },
  };
}

async function finished(name: string, on = c): Promise<k8s.V1Job> {
  return waitFor(`job ${name} finished`, async () => {
    const j = await on.batch.readNamespacedJob({ namespace: 'default', name });
    return j.status?.conditions?.some(
      (x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True',
    )
      ? j
      : undefined;
  });
}

async function podsOf(name: string, on = c): Promise<k8s.V1Pod[]> {
  return (
    await on.core.listNamespacedPod({
      namespace: 'default',
      labelSelector: `batch.kubernetes.io/job-name=${name}`,
    })
  ).items;
}

test('a Job runs one pod as a process: labels, owner, Complete with SuccessCriteriaMet, exit 0', async () => {
  await c.batch.createNamespacedJob({ namespace: 'default', body: job('ok', 'echo hello; echo world >&2') });
  const j = await finished('ok');
  expect(j.status?.conditions?.map((x) => x.type)).toEqual(['SuccessCriteriaMet', 'Complete']);
  expect(j.status?.succeeded).toBe(1);
  const [pod] = await podsOf('ok');
  expect(pod!.metadata?.name).toMatch(/^ok-[a-z0-9]{5}$/);
  expect(pod!.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Job', name: 'ok', controller: true });
  expect(pod!.metadata?.labels?.['controller-uid']).toBe(j.metadata?.uid);
  expect(pod!.status?.phase).toBe('Succeeded');
  expect(pod!.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
    exitCode: 0,
    reason: 'Completed',
  });
  const log = await c.core.readNamespacedPodLog({ namespace: 'default', name: pod!.metadata!.name! });
  expect(log).toBe('hello\nworld\n');
});

// https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy
test('backoffLimit 0: the first failure fails the Job with BackoffLimitExceeded', async () => {
  await c.batch.createNamespacedJob({ namespace: 'default', body: job('fail', 'exit 3') });
  const j = await finished('fail');
  expect(j.status?.conditions?.find((x) => x.type === 'Failed')?.reason).toBe('BackoffLimitExceeded');
  expect(j.status?.conditions?.some((x) => x.type === 'FailureTarget')).toBe(true);
  const [pod] = await podsOf('fail');
  expect(pod!.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
    exitCode: 3,
    reason: 'Error',
  });
  expect(pod!.metadata?.finalizers ?? []).not.toContain('batch.kubernetes.io/job-tracking');
});

// https://kubernetes.io/docs/tasks/job/pod-failure-policy/
test('podFailurePolicy: FailJob on exit code 100; Ignore on DisruptionTarget (eviction) replaces the pod', async () => {
  const policy = {
    rules: [
      { action: 'FailJob', onExitCodes: { containerName: 'build', operator: 'In', values: [100, 101] } },
      { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] },
    ],
  };
  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job('pfp', 'exit 100', { backoffLimit: 3, podFailurePolicy: policy as k8s.V1PodFailurePolicy }),
  });
  const j = await finished('pfp');
  const failed = j.status?.conditions?.find((x) => x.type === 'Failed');
  expect(failed?.reason).toBe('PodFailurePolicy');
  expect(failed?.message).toMatch(/exit code 100 matching FailJob rule at index 0/);

  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job('evict', 'sleep 30', { backoffLimit: 0, podFailurePolicy: policy as k8s.V1PodFailurePolicy }),
  });
  const first = await waitFor('running', async () =>
    (await podsOf('evict')).find((p) => p.status?.phase === 'Running'),
  );
  await c.core.createNamespacedPodEviction({
    namespace: 'default',
    name: first.metadata!.name!,
    body: { metadata: { name: first.metadata!.name! } },
  });
  await waitFor('replacement pod', async () =>
    (await podsOf('evict')).find(
      (p) => p.metadata!.name !== first.metadata!.name && p.status?.phase === 'Running',
    ),
  );
  const j2 = await c.batch.readNamespacedJob({ namespace: 'default', name: 'evict' });
  expect(j2.status?.failed ?? 0).toBe(0);
  await c.batch.deleteNamespacedJob({
    namespace: 'default',
    name: 'evict',
    propagationPolicy: 'Background',
    gracePeriodSeconds: 0,
  });
});

// https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup
test('activeDeadlineSeconds fails with DeadlineExceeded (fake clock); ttlSecondsAfterFinished deletes the Job', async () => {
  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job('slow', 'sleep 30', { activeDeadlineSeconds: 600, ttlSecondsAfterFinished: 60 }),
  });
  await waitFor('running', async () => (await podsOf('slow')).find((p) => p.status?.phase === 'Running'));
  cluster.server.api.clock.advance(601_000);
  const j = await finished('slow');
  expect(j.status?.conditions?.find((x) => x.type === 'Failed')?.reason).toBe('DeadlineExceeded');
  cluster.server.api.clock.advance(61_000);
  await waitFor(
    'job deleted by TTL',
    async () =>
      (await failure(c.batch.readNamespacedJob({ namespace: 'default', name: 'slow' }))).code === 404,
  );
  await waitFor('pods collected', async () => (await podsOf('slow')).length === 0);
});

test('pods/log follows a running container until it exits; 400 before it starts', async () => {
  await c.core.createNamespacedPod({
    namespace: 'default',
    body: {
      metadata: { name: 'unsched' },
      spec: {
        nodeSelector: { 'kubernetes.io/arch': 's390x' },
        containers: [{ name: 'c', image: 'x', command: ['true'] }],
      },
    },
  });
  const e = await failure(c.core.readNamespacedPodLog({ namespace: 'default', name: 'unsched' }));
  expect(e.code).toBe(400);
  const p = await waitFor('unschedulable', async () => {
    const x = await c.core.readNamespacedPod({ namespace: 'default', name: 'unsched' });
    return x.status?.conditions?.find((y) => y.type === 'PodScheduled' && y.reason === 'Unschedulable');
  });
  expect(p.message).toMatch(/^0\/2 nodes are available/);

  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job('logs', 'for i in 1 2 3; do echo line $i; sleep 0.1; done'),
  });
  const pod = await waitFor('running', async () =>
    (await podsOf('logs')).find((x) => x.status?.phase === 'Running'),
  );
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const ended = new Promise((r) => out.on('end', r));
  await new k8s.Log(c.kc).log('default', pod.metadata!.name!, 'build', out, {
    follow: true,
    timestamps: true,
  });
  await ended;
  expect(
    text
      .trim()
      .split('\n')
      .map((l) => l.replace(/^\S+ /, '')),
  ).toEqual(['line 1', 'line 2', 'line 3']);
  expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line 1/);
});

// https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/ and taint-and-toleration/
test('nodeSelector on kubernetes.io/arch and a toleration place pods on the tainted arm64 node', async () => {
  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job('arm', 'true', {}, { nodeSelector: { 'kubernetes.io/arch': 'arm64' } }),
  });
  const p1 = await waitFor('unschedulable', async () =>
    (await podsOf('arm'))[0]?.status?.conditions?.find((x) => x.reason === 'Unschedulable'),
  );
  expect(p1.message).toContain('untolerated taint');
  await c.batch.deleteNamespacedJob({ namespace: 'default', name: 'arm', propagationPolicy: 'Background' });
  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job(
      'arm2',
      'true',
      {},
      {
        nodeSelector: { 'kubernetes.io/arch': 'arm64' },
        tolerations: [{ key: 'dedicated', value: 'nix-arm64', effect: 'NoSchedule' }],
      },
    ),
  });
  await finished('arm2');
  expect((await podsOf('arm2'))[0]!.spec?.nodeName).toBe('arm');
});

test('OOM-kill gives exit 137 with reason OOMKilled', async () => {
  await c.batch.createNamespacedJob({ namespace: 'default', body: job('oom', 'sleep 30') });
  const pod = await waitFor('running', async () =>
    (await podsOf('oom')).find((p) => p.status?.phase === 'Running'),
  );
  await cluster.kubelets.oomKill('default', pod.metadata!.name!);
  await finished('oom');
  const [p] = await podsOf('oom');
  expect(p!.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
    exitCode: 137,
    reason: 'OOMKilled',
  });
});

test('node loss: pods are marked DisruptionTarget/Failed and replaced on another node', async () => {
  const tol = [{ key: 'dedicated', operator: 'Exists' }];
  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: job('lost', 'sleep 30', { backoffLimit: 2 }, { tolerations: tol }),
  });
  const pod = await waitFor('running', async () =>
    (await podsOf('lost')).find((p) => p.status?.phase === 'Running'),
  );
  await cluster.kubelets.loseNode(pod.spec!.nodeName!);
  cluster.server.api.clock.advance(1500);
  const next = await waitFor('replacement', async () =>
    (await podsOf('lost')).find((p) => p.metadata!.name !== pod.metadata!.name && p.spec?.nodeName),
  );
  expect(next.spec?.nodeName).not.toBe(pod.spec!.nodeName);
  const j = await c.batch.readNamespacedJob({ namespace: 'default', name: 'lost' });
  expect(j.status?.failed).toBe(1);
  await c.batch.deleteNamespacedJob({ namespace: 'default', name: 'lost', propagationPolicy: 'Background' });
});

// NOTES.md §5.3 item 7; https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup
test('deleting a Job without propagationPolicy orphans its pods and warns', async () => {
  await c.batch.createNamespacedJob({ namespace: 'default', body: job('orphan', 'true') });
  await finished('orphan');
  const res = await c.batch.deleteNamespacedJobWithHttpInfo({ namespace: 'default', name: 'orphan' });
  expect(res.headers.warning).toContain('child pods are preserved by default when jobs are deleted');
  await waitFor(
    'job gone',
    async () =>
      (await failure(c.batch.readNamespacedJob({ namespace: 'default', name: 'orphan' }))).code === 404,
  );
  const [p] = await podsOf('orphan');
  expect(p!.metadata?.ownerReferences).toBeUndefined();
});

test('the real `nixyard build-drv` runs in a pod with its --data-dir volume mapped to a local directory', async () => {
  await c.batch.createNamespacedJob({
    namespace: 'default',
    body: {
      metadata: { name: 'nixyard' },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            volumes: [{ name: 'store', hostPath: { path: '/srv/nix-store' } }],
            containers: [
              {
                name: 'build',
                image: 'nixyard/builder',
                command: [
                  'nixyard',
                  'build-drv',
                  '/nix/store/00000000000000000000000000000000-missing.drv',
                  '--data-dir',
                  '/data',
                ],
                env: [{ name: 'MARK', value: '/data/mark' }],
                volumeMounts: [{ name: 'store', mountPath: '/data' }],
              },
            ],
          },
        },
      },
    },
  });
  const j = await finished('nixyard');
  expect(j.status?.conditions?.find((x) => x.type === 'Failed')).toBeDefined();
  const [pod] = await podsOf('nixyard');
  const code = pod!.status?.containerStatuses?.[0]?.state?.terminated?.exitCode;
  expect(code).toBe(1);
  const log = await c.core.readNamespacedPodLog({ namespace: 'default', name: pod!.metadata!.name! });
  expect(log).toContain('missing.drv');
  await expect(readFile(join(store, 'nonexistent'))).rejects.toThrow();
});

/**
 * The kubelet's CPU emulation (kubelet.ts, "CPU architecture"): the node's
 * kubernetes.io/arch is what the Node processes of its pods see; programs that are not
 * Node see this machine. A cluster of its own: the tests above lose a node.
 */
describe('the CPU of the nodes', () => {
  let arch: SimCluster;
  let a: ReturnType<typeof clients>;
  let archStore: string;

  beforeAll(async () => {
    archStore = await mkdtemp(join(tmpdir(), 'sim-arch-store-'));
    arch = await startSimCluster({
      nodes: [
        { name: 'amd', arch: 'amd64' },
        { name: 'arm', arch: 'arm64' },
      ],
      volumeMap: { '/srv/arch-store': archStore },
      commands: {
        nixyard: [process.execPath, join(REPO_ROOT, 'dist/cli/main.js')],
        node: [process.execPath],
      },
    });
    a = clients(arch);
  });
  afterAll(() => arch.close());

  test('a pod sees the CPU of its node: process.arch and os.machine() on amd64 and arm64', async () => {
    const probe = "const os = require('os'); console.log(process.arch, os.arch(), os.machine())";
    const seen = new Map<string, string>();
    for (const node of ['amd', 'arm']) {
      const name = `cpu-${node}`;
      await a.batch.createNamespacedJob({
        namespace: 'default',
        body: {
          metadata: { name },
          spec: {
            backoffLimit: 0,
            template: {
              spec: {
                restartPolicy: 'Never',
                nodeName: node,
                containers: [
                  { name: 'probe', image: 'sim/node', command: ['node', '-e', probe] },
                  { name: 'uname', image: 'sim/sh', command: ['uname', '-m'] },
                ],
              },
            },
          },
        },
      });
      await finished(name, a);
      const [pod] = await podsOf(name, a);
      const log = (container: string) =>
        a.core.readNamespacedPodLog({ namespace: 'default', name: pod!.metadata!.name!, container });
      seen.set(node, `${(await log('probe')).trim()} / ${(await log('uname')).trim()}`);
    }
    expect(Object.fromEntries(seen)).toEqual({
      amd: 'x64 x64 x86_64 / x86_64',
      arm: 'arm64 arm64 aarch64 / x86_64',
    });
  });

  /**
   * The negative control of the operator's arch routing: the same pod that builds an
   * aarch64-linux derivation on the arm64 node is refused on the amd64 node, with Nix's
   * platform error (builder-image/runner/build-derivation.ts). The builder is this
   * machine's busybox, so only the node's emulated CPU tells the two apart.
   */
  test('an aarch64-linux derivation: refused by build-drv on the amd64 node, built on the arm64 node', async () => {
    // Instantiated by the real Nix (into /nix/store), imported with its closure into the
    // store that the pods mount.
    const work = await mkdtemp(join(tmpdir(), 'sim-arch-drv-'));
    await mkdir(join(work, 'bbdir', 'bin'), { recursive: true });
    await copyFile('/bin/busybox', join(work, 'bbdir', 'bin', 'busybox'));
    await chmod(join(work, 'bbdir', 'bin', 'busybox'), 0o555);
    await writeFile(
      join(work, 'on-arm.nix'),
      `derivation {
  name = "on-arm";
  system = "aarch64-linux";
  salt = "${process.pid}-${Date.now()}";
  builder = "\${builtins.path { path = ./bbdir; name = "busybox"; }}/bin/busybox";
  args = [ "sh" "-c" "echo built here; echo arm > $out" ];
}
`,
    );
    const drv = (await runNix('nix-instantiate', [join(work, 'on-arm.nix')])).stdout.trim();
    const local = await LocalStore.open({ dataDir: archStore });
    await importClosure(local, [drv]);

    const build = (name: string, node: string): k8s.V1Job => ({
      metadata: { name },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            nodeName: node,
            volumes: [{ name: 'store', hostPath: { path: '/srv/arch-store' } }],
            containers: [
              {
                name: 'build',
                image: 'nixyard/builder',
                command: ['nixyard', 'build-drv', drv, '--data-dir', '/data'],
                volumeMounts: [{ name: 'store', mountPath: '/data' }],
              },
            ],
          },
        },
      },
    });
    const outcome = async (name: string) => {
      const j = await finished(name, a);
      const [pod] = await podsOf(name, a);
      return {
        condition: j.status?.conditions?.find(
          (x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True',
        )?.type,
        exitCode: pod!.status?.containerStatuses?.[0]?.state?.terminated?.exitCode,
        log: await a.core.readNamespacedPodLog({ namespace: 'default', name: pod!.metadata!.name! }),
      };
    };

    await a.batch.createNamespacedJob({ namespace: 'default', body: build('on-amd', 'amd') });
    const refused = await outcome('on-amd');
    expect(refused).toMatchObject({ condition: 'Failed', exitCode: 1 });
    expect(refused.log).toContain(
      `a 'aarch64-linux' with features {} is required to build '${drv}', but I am a 'x86_64-linux' with features {}`,
    );
    expect(refused.log).not.toContain('built here');

    await a.batch.createNamespacedJob({ namespace: 'default', body: build('on-arm', 'arm') });
    const built = await outcome('on-arm');
    expect(built).toMatchObject({
      condition: 'Complete',
      exitCode: 0,
      log: expect.stringContaining('built here') as unknown,
    });
    const out = built.log.trim().split('\n').at(-1)!;
    expect(out).toMatch(/^\/nix\/store\/[0-9a-z]{32}-on-arm$/);
    expect(await readFile(local.layout.contentPath(out), 'utf8')).toBe('arm\n');
  }, 60_000);
});
