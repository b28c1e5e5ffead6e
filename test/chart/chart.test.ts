import { readdirSync, readFileSync } from 'node:fs';
import type { V1ConfigMap, V1Deployment, V1Role } from '@kubernetes/client-node';
import { loadOperatorConfig } from '../../operator/config.js';
import { loadGatewayConfig } from '../../gateway/config.js';
import { desiredJob } from '../../operator/job-builder.js';
import { parsePools } from '../../operator/pools.js';
import { builtinErrors, CRD_FILE, loadYamlDocs, REPO } from '../operator/k8s-validate.js';
import { nixBuild } from '../operator/fixtures.js';
import { helms, runHelm, type Helm } from './helm.js';

const CHART = `${REPO}charts/nixyard`;
const CI_VALUES = readdirSync(`${CHART}/ci`).map((f) => `${CHART}/ci/${f}`);
const VARIANTS: [string, string[]][] = [
  ['default values', []],
  ...CI_VALUES.map((f): [string, string[]] => [f.slice(CHART.length + 1), ['-f', f]]),
];

type Doc = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
};

let all: Helm[] = [];
beforeAll(async () => {
  all = await helms();
});

function render(helm: Helm, args: string[] = []): Doc[] {
  const r = runHelm(helm, ['template', 'demo', CHART, '--namespace', 'nixyard', '--include-crds', ...args]);
  if (r.status !== 0) throw new Error(`helm template ${args.join(' ')} failed:\n${r.stderr}`);
  return loadYamlDocs(r.stdout) as Doc[];
}

function find<T>(docs: Doc[], kind: string, name: string): T {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!d)
    throw new Error(`no ${kind} ${name} in ${docs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return d as unknown as T;
}

describe('charts/nixyard with the real helm', () => {
  test('the chart’s CRD is the one in crds/, byte for byte', () => {
    expect(readFileSync(`${CHART}/crds/nixbuilds.nixyard.dev.yaml`, 'utf8')).toBe(
      readFileSync(CRD_FILE, 'utf8'),
    );
  });

  test.each(VARIANTS)('helm lint --strict: %s', (_, args) => {
    for (const helm of all) {
      const r = runHelm(helm, ['lint', '--strict', CHART, ...args]);
      expect({ helm: helm.label, status: r.status, out: r.stdout + r.stderr }).toMatchObject({ status: 0 });
    }
  });

  test.each(VARIANTS)(
    'helm template: every document valid and without unknown fields: %s',
    async (_, args) => {
      for (const helm of all) {
        const docs = render(helm, args);
        expect(docs.map((d) => d.kind).sort()).toEqual(
          expect.arrayContaining(['CustomResourceDefinition', 'Deployment']),
        );
        for (const doc of docs) {
          expect({
            helm: helm.label,
            doc: `${doc.kind}/${doc.metadata.name}`,
            errors: await builtinErrors(doc),
          }).toEqual({
            helm: helm.label,
            doc: `${doc.kind}/${doc.metadata.name}`,
            errors: [],
          });
          if (doc.kind !== 'CustomResourceDefinition') expect(doc.metadata.namespace).toBeTruthy();
        }
      }
    },
  );

  test.each(VARIANTS)('the gateway reads its rendered environment as cluster mode: %s', (_, args) => {
    for (const helm of all) {
      const deploy = find<V1Deployment>(render(helm, args), 'Deployment', 'demo-nixyard-gateway');
      const c = deploy.spec!.template.spec!.containers[0]!;
      expect(c.command).toEqual(['nixyard', 'gateway']);
      const env = Object.fromEntries(
        (c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
      );
      const config = loadGatewayConfig([], env);
      expect(config.kubernetes).toBeDefined();
      expect(config.kubernetes?.namespace).toBeTruthy();
      expect(config.listenPort).toBeGreaterThan(0);
      expect(config.http).toBeDefined();
    }
  });

  test.each(VARIANTS)(
    'the operator understands its rendered flags, and its pools build valid Jobs: %s',
    async (_, args) => {
      for (const helm of all) {
        const docs = render(helm, args);
        const deploy = find<V1Deployment>(docs, 'Deployment', 'demo-nixyard-operator');
        const c = deploy.spec!.template.spec!.containers[0]!;
        expect(c.command).toEqual(['nixyard', 'operator']);
        const config = loadOperatorConfig(c.args!, { POD_NAME: 'demo-nixyard-operator-abc' });
        expect(config.job.image).toBe('ghcr.io/nixyard/nixyard:0.1.0');
        expect(config.poolsFile).toBe('/etc/nixyard/pools.json');
        const pools = parsePools(
          JSON.parse(
            find<V1ConfigMap>(docs, 'ConfigMap', 'demo-nixyard-pools').data!['pools.json']!,
          ) as unknown,
        );
        expect(pools.length).toBeGreaterThan(0);
        for (const pool of pools) {
          for (const system of pool.systems) {
            const job = desiredJob(nixBuild({ system, timeoutSeconds: 600 }), pool, config.job, {
              number: 1,
            });
            expect({ pool: pool.name, system, errors: await builtinErrors(job) }).toEqual({
              pool: pool.name,
              system,
              errors: [],
            });
          }
        }
      }
    },
  );

  test('probes on /healthz and /readyz, metrics and SSH ports', () => {
    for (const helm of all) {
      const docs = render(helm);
      for (const name of ['demo-nixyard-operator', 'demo-nixyard-gateway']) {
        const c = find<V1Deployment>(docs, 'Deployment', name).spec!.template.spec!.containers[0]!;
        expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
        expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
        expect(c.securityContext).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
        });
      }
      const op = find<V1Deployment>(docs, 'Deployment', 'demo-nixyard-operator').spec!.template.spec!;
      expect(op.containers[0]!.ports).toEqual([{ name: 'metrics', containerPort: 8081, protocol: 'TCP' }]);
      expect(op.serviceAccountName).toBe('demo-nixyard-operator');
      const gw = find<V1Deployment>(docs, 'Deployment', 'demo-nixyard-gateway').spec!.template.spec!;
      expect(gw.containers[0]!.ports!.map((p) => p.name)).toEqual(['ssh', 'http']);
      expect(gw.volumes).toContainEqual({
        name: 'store',
        persistentVolumeClaim: { claimName: 'demo-nixyard-store' },
      });
      expect(find<Doc>(docs, 'PersistentVolumeClaim', 'demo-nixyard-store').metadata).toMatchObject({
        annotations: { 'helm.sh/resource-policy': 'keep' },
      });
    }
  });

  test('RBAC: the operator may manage Jobs, NixBuild status, Events and its Lease', () => {
    for (const helm of all) {
      const docs = render(helm);
      const rules = find<V1Role>(docs, 'Role', 'demo-nixyard-operator').rules!;
      const can = (resource: string, verb: string, r = rules) =>
        r.some((x) => x.resources?.includes(resource) && x.verbs.includes(verb));
      for (const [res, verb] of [
        ['nixbuilds', 'watch'],
        ['nixbuilds/status', 'update'],
        ['jobs', 'create'],
        ['jobs', 'delete'],
        ['jobs', 'patch'],
        ['pods', 'watch'],
        ['pods/log', 'get'],
        ['events', 'create'],
      ] as const)
        expect(`${res}:${verb}:${can(res, verb)}`).toBe(`${res}:${verb}:true`);
      expect(can('nixbuilds', 'create')).toBe(false);
      const leader = find<V1Role>(docs, 'Role', 'demo-nixyard-operator-leader').rules!;
      for (const verb of ['get', 'create', 'update']) expect(can('leases', verb, leader)).toBe(true);
      const gateway = find<V1Role>(docs, 'Role', 'demo-nixyard-gateway').rules!;
      expect(can('nixbuilds', 'create', gateway) && can('pods/log', 'get', gateway)).toBe(true);
    }
  });

  test('Redis: in-cluster, an external URL, or a URL from a Secret', () => {
    for (const helm of all) {
      const env = (docs: Doc[]) =>
        find<V1Deployment>(
          docs,
          'Deployment',
          'demo-nixyard-gateway',
        ).spec!.template.spec!.containers[0]!.env!.find((e) => e.name === 'NIXYARD_REDIS_URL');
      const args = (docs: Doc[]) =>
        find<V1Deployment>(docs, 'Deployment', 'demo-nixyard-operator').spec!.template.spec!.containers[0]!
          .args!;
      const inCluster = render(helm);
      expect(find<Doc>(inCluster, 'Service', 'demo-nixyard-redis')).toBeDefined();
      expect(env(inCluster)).toEqual({ name: 'NIXYARD_REDIS_URL', value: 'redis://demo-nixyard-redis:6379' });
      const external = render(helm, ['--set', 'redis.enabled=false', '--set', 'redis.url=redis://r:6379']);
      expect(external.some((d) => d.metadata.name === 'demo-nixyard-redis')).toBe(false);
      expect(args(external)).toContain('--redis-url=redis://r:6379');
      const secret = render(helm, ['--set', 'redis.enabled=false', '--set', 'redis.existingSecret.name=rs']);
      expect(env(secret)).toEqual({
        name: 'NIXYARD_REDIS_URL',
        valueFrom: { secretKeyRef: { name: 'rs', key: 'url' } },
      });
      expect(args(secret)).toContain('--redis-secret=rs:url');
      // The build pods' lock lease: build-drv's default unless set.
      expect(args(inCluster).some((a) => a.startsWith('--redis-ttl'))).toBe(false);
      expect(args(render(helm, ['--set', 'operator.buildLockTtlSeconds=10']))).toContain('--redis-ttl=10');
    }
  });

  test('several gateway replicas need Redis: refused without it, rendered with it', () => {
    for (const helm of all) {
      const alone = runHelm(helm, [
        'template',
        'demo',
        CHART,
        '--set',
        'gateway.replicas=2',
        '--set',
        'redis.enabled=false',
      ]);
      expect(alone.status).not.toBe(0);
      expect(alone.stderr).toContain('gateway.replicas > 1 needs Redis');
      const docs = render(helm, ['--set', 'gateway.replicas=3']);
      expect(find<V1Deployment>(docs, 'Deployment', 'demo-nixyard-gateway').spec!.replicas).toBe(3);
      const external = [
        '--set',
        'gateway.replicas=2',
        '--set',
        'redis.enabled=false',
        '--set',
        'redis.url=redis://r:6379',
      ];
      expect(
        find<V1Deployment>(render(helm, external), 'Deployment', 'demo-nixyard-gateway').spec!.replicas,
      ).toBe(2);
    }
  });

  test.each([
    ['a negative replica count', ['--set', 'operator.replicas=-1']],
    ['a misspelt key', ['--set', 'gateway.sshPrt=22']],
    ['a pool for a system Kubernetes cannot build', ['--set', 'pools[0].systems[0]=aarch64-darwin']],
    ['a pool without a name', ['--set', 'pools[0].name=']],
    ['a memory that is not a quantity', ['--set', 'pools[0].maxMemory=lots']],
    ['no pools', ['--set', 'pools=null']],
    ['a build lock TTL of 0', ['--set', 'operator.buildLockTtlSeconds=0']],
  ])('values.schema.json refuses %s', (_, args) => {
    for (const helm of all) {
      // Helm 3 and 4 word schema errors differently: only the exit status is compared.
      expect(runHelm(helm, ['template', 'demo', CHART, ...args]).status).not.toBe(0);
      expect(runHelm(helm, ['lint', '--strict', CHART, ...args]).status).not.toBe(0);
    }
  });
});
