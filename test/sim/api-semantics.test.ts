/**
 * Conformance of the simulated API server, driven by the real @kubernetes/client-node
 * 1.4.0. Each test names the upstream documentation of the behaviour it pins.
 */
import * as k8s from '@kubernetes/client-node';
import { startSimCluster, type SimCluster } from './cluster.js';
import { clients, DRV, failure, NIXBUILD_CRD, typedCrd, waitFor } from './support.js';

const G = 'sim.nixyard.dev';
let cluster: SimCluster;
let c: ReturnType<typeof clients>;

beforeAll(async () => {
  cluster = await startSimCluster({ bookmarkIntervalMs: 50 });
  c = clients(cluster);
  await c.ext.createCustomResourceDefinition({ body: typedCrd(NIXBUILD_CRD) });
  await waitFor('CRD established', async () => {
    const crd = await c.ext.readCustomResourceDefinition({ name: NIXBUILD_CRD.metadata.name });
    return crd.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
  });
});
afterAll(() => cluster.close());

const build = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: `${G}/v1`,
  kind: 'SimBuild',
  metadata: { name },
  spec: { drvPath: DRV, system: 'x86_64-linux', ...spec },
});
const co = (name: string, spec?: Record<string, unknown>) =>
  c.custom.createNamespacedCustomObject({
    group: G,
    version: 'v1',
    namespace: 'default',
    plural: 'simbuilds',
    body: build(name, spec),
  });
const get = (name: string) =>
  c.custom.getNamespacedCustomObject({
    group: G,
    version: 'v1',
    namespace: 'default',
    plural: 'simbuilds',
    name,
  }) as Promise<k8s.KubernetesObject & { spec: Record<string, unknown>; status?: Record<string, unknown> }>;
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

describe('metadata, resourceVersion, generation', () => {
  // https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
  // https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#metadata
  test('create fills uid, namespace, creationTimestamp, generation 1; generateName works', async () => {
    const o = (await co('meta-a')) as k8s.KubernetesObject;
    expect(o.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(o.metadata?.namespace).toBe('default');
    expect(o.metadata?.generation).toBe(1);
    expect(o.metadata?.creationTimestamp).toBeDefined();
    const cm = await c.core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { generateName: 'gen-' } },
    });
    expect(cm.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
  });

  test('resourceVersion is global and monotonic; list carries it', async () => {
    const a = await c.core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'rv-a' } },
    });
    const b = await c.core.createNamespacedSecret({
      namespace: 'default',
      body: { metadata: { name: 'rv-b' } },
    });
    expect(Number(b.metadata?.resourceVersion)).toBeGreaterThan(Number(a.metadata?.resourceVersion));
    const list = await c.core.listNamespacedConfigMap({ namespace: 'default' });
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThanOrEqual(
      Number(b.metadata?.resourceVersion),
    );
  });

  // https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
  test('generation bumps on spec changes only; /status ignores spec; main writes ignore status', async () => {
    await co('gen-a');
    await c.custom.patchNamespacedCustomObjectStatus(
      {
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'gen-a',
        body: { spec: { cores: 9 }, status: { phase: 'Building' } },
      },
      merge,
    );
    let o = await get('gen-a');
    expect(o.metadata?.generation).toBe(1);
    expect(o.status?.phase).toBe('Building');
    expect(o.spec.cores).toBe(1);
    await c.custom.patchNamespacedCustomObject(
      {
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'gen-a',
        body: { spec: { cores: 4 }, status: { phase: 'Hacked' } },
      },
      merge,
    );
    o = await get('gen-a');
    expect(o.metadata?.generation).toBe(2);
    expect(o.status?.phase).toBe('Building');
    await c.custom.patchNamespacedCustomObject(
      {
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'gen-a',
        body: { metadata: { labels: { a: 'b' } } },
      },
      merge,
    );
    expect((await get('gen-a')).metadata?.generation).toBe(2);
  });
});

describe('client-node traps', () => {
  test('a raw CRD object through the typed API loses enum/default/x-kubernetes-* keys', async () => {
    const raw = JSON.parse(
      JSON.stringify(NIXBUILD_CRD)
        .replaceAll('simbuild', 'trapbuild')
        .replaceAll('SimBuild', 'TrapBuild')
        .replaceAll('"sb"', '"tb"')
        .replaceAll('simcat', 'trapcat'),
    ) as k8s.V1CustomResourceDefinition;
    const created = await c.ext.createCustomResourceDefinition({ body: raw });
    const spec = created.spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!.properties!;
    expect(spec.system!._enum).toBeUndefined();
    expect(spec.cores!._default).toBeUndefined();
  });
});

describe('conflicts and errors', () => {
  // https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions (optimistic concurrency)
  test('PUT with a stale resourceVersion is 409 Conflict; POST of an existing name is 409 AlreadyExists', async () => {
    const cm = await c.core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'conf' }, data: { a: '1' } },
    });
    await c.core.replaceNamespacedConfigMap({
      namespace: 'default',
      name: 'conf',
      body: { ...cm, data: { a: '2' } },
    });
    const stale = await failure(
      c.core.replaceNamespacedConfigMap({
        namespace: 'default',
        name: 'conf',
        body: { ...cm, data: { a: '3' } },
      }),
    );
    expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });
    expect(stale.message).toContain('the object has been modified');
    expect(
      await failure(
        c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'conf' } } }),
      ),
    ).toMatchObject({ code: 409, reason: 'AlreadyExists' });
    expect(
      await failure(c.core.readNamespacedConfigMap({ namespace: 'default', name: 'nope' })),
    ).toMatchObject({ code: 404, reason: 'NotFound', message: 'configmaps "nope" not found' });
  });

  test('custom resource updates must carry a resourceVersion (422)', async () => {
    await co('norv');
    const o = await get('norv');
    delete o.metadata!.resourceVersion;
    const e = await failure(
      c.custom.replaceNamespacedCustomObject({
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'norv',
        body: o,
      }),
    );
    expect(e).toMatchObject({ code: 422, reason: 'Invalid' });
  });
});

describe('patch content types', () => {
  // https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/#use-a-json-merge-patch-to-update-a-deployment
  test('client-node defaults to JSON Patch; merge, SSA work; strategic merge is 415 for custom resources', async () => {
    await co('p-a');
    await c.custom.patchNamespacedCustomObject({
      group: G,
      version: 'v1',
      namespace: 'default',
      plural: 'simbuilds',
      name: 'p-a',
      body: [{ op: 'replace', path: '/spec/cores', value: 3 }],
    });
    expect((await get('p-a')).spec.cores).toBe(3);
    const smp = await failure(
      c.custom.patchNamespacedCustomObject(
        {
          group: G,
          version: 'v1',
          namespace: 'default',
          plural: 'simbuilds',
          name: 'p-a',
          body: { spec: { cores: 5 } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
      ),
    );
    expect(smp).toMatchObject({ code: 415, reason: 'UnsupportedMediaType' });
    // Server-side apply: fieldManager required; status conditions as a list-map keyed by type.
    const ssa = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply);
    const body = (type: string, status: string) => ({
      apiVersion: `${G}/v1`,
      kind: 'SimBuild',
      metadata: { name: 'p-a' },
      status: { conditions: [{ type, status }] },
    });
    expect(
      await failure(
        c.custom.patchNamespacedCustomObjectStatus(
          {
            group: G,
            version: 'v1',
            namespace: 'default',
            plural: 'simbuilds',
            name: 'p-a',
            body: body('Ready', 'False'),
          },
          ssa,
        ),
      ),
    ).toMatchObject({ code: 422 });
    await c.custom.patchNamespacedCustomObjectStatus(
      {
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'p-a',
        fieldManager: 'op',
        force: true,
        body: body('Ready', 'False'),
      },
      ssa,
    );
    await c.custom.patchNamespacedCustomObjectStatus(
      {
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'p-a',
        fieldManager: 'other',
        force: true,
        body: body('Building', 'True'),
      },
      ssa,
    );
    const conds = (await get('p-a')).status?.conditions as { type: string }[];
    expect(conds.map((x) => x.type).sort()).toEqual(['Building', 'Ready']);
  });

  test('strategic merge patch merges containers by name for built-in kinds', async () => {
    await c.core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'smp' },
        spec: {
          nodeName: 'nowhere',
          containers: [
            { name: 'a', image: 'busybox:1', command: ['true'] },
            { name: 'b', image: 'busybox:1', command: ['true'] },
          ],
        },
      },
    });
    const p = await c.core.patchNamespacedPod(
      {
        namespace: 'default',
        name: 'smp',
        body: { spec: { containers: [{ name: 'b', image: 'busybox:2' }] } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    expect(p.spec?.containers.map((x) => `${x.name}=${x.image}`)).toEqual(['a=busybox:1', 'b=busybox:2']);
    await c.core.deleteNamespacedPod({ namespace: 'default', name: 'smp', gracePeriodSeconds: 0 });
  });

  // https://github.com/kubernetes-client/javascript/issues/828 — MicroTime needs 6 fractional digits
  test('Lease MicroTime with milliseconds is 400; V1MicroTime works', async () => {
    const e = await failure(
      c.coord.createNamespacedLease({
        namespace: 'default',
        body: {
          metadata: { name: 'l1' },
          spec: { holderIdentity: 'a', renewTime: '2026-11-25T16:45:00.123Z' as unknown as Date },
        },
      }),
    );
    expect(e.code).toBe(400);
    await c.coord.createNamespacedLease({
      namespace: 'default',
      body: {
        metadata: { name: 'l1' },
        spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new k8s.V1MicroTime(Date.now()) },
      },
    });
  });
});

describe('validation', () => {
  // https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation
  test('CRD schema: pattern, enum and required give 422 Invalid with field causes', async () => {
    const e = await failure(co('bad', { drvPath: '/tmp/x', system: 'mips-linux' }));
    expect(e).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(e.message).toContain('spec.drvPath');
    expect(e.message).toContain('spec.system: Unsupported value: "mips-linux"');
  });

  // #field-pruning, #defaulting; https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation
  test('unknown fields are pruned (Warn: warning header), rejected with fieldValidation=Strict; defaults applied', async () => {
    const created = (await co('prune', { bogus: 1, extra: { kept: true } })) as {
      spec: Record<string, unknown>;
    };
    expect(created.spec.bogus).toBeUndefined();
    expect(created.spec.extra).toEqual({ kept: true });
    expect(created.spec.cores).toBe(1);
    const e = await failure(
      c.custom.createNamespacedCustomObject({
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        fieldValidation: 'Strict',
        body: build('strict', { bogus: 1 }),
      }),
    );
    expect(e).toMatchObject({ code: 400 });
    expect(e.message).toContain('unknown field "spec.bogus"');
    // Built-in typos never reach the server from client-node (its serializer drops unknown
    // properties); kubectl.test.ts pins the server's strict check for built-in kinds.
  });

  test('built-in validation: a Job needs restartPolicy Never or OnFailure', async () => {
    const e = await failure(
      c.batch.createNamespacedJob({
        namespace: 'default',
        body: {
          metadata: { name: 'rp' },
          spec: { template: { spec: { containers: [{ name: 'c', image: 'x' }] } } },
        },
      }),
    );
    expect(e).toMatchObject({ code: 422 });
    expect(e.message).toContain('spec.template.spec.restartPolicy');
  });
});

describe('watch', () => {
  // https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
  test('watch from a list resourceVersion replays later events; bookmarks when allowed; server timeout ends it', async () => {
    const list = await c.core.listNamespacedConfigMap({ namespace: 'default' });
    await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w-after' } } });
    const seen: string[] = [];
    let ended = false;
    await new k8s.Watch(c.kc).watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: list.metadata!.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 1 },
      (type: string, obj: k8s.V1ConfigMap) => seen.push(`${type}:${obj.metadata?.name ?? ''}`),
      () => (ended = true),
    );
    await waitFor('watch timeout', () => ended, 5000);
    expect(seen).toContain('ADDED:w-after');
    expect(seen.some((s) => s.startsWith('BOOKMARK'))).toBe(true);
  });

  test('a watch from an expired resourceVersion gets an ERROR event with 410 Gone', async () => {
    const list = await c.core.listNamespacedConfigMap({ namespace: 'default' });
    await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w-gone' } } });
    cluster.server.expireResourceVersions();
    const events: { type: string; code?: number }[] = [];
    await new k8s.Watch(c.kc).watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: list.metadata!.resourceVersion },
      (type: string, obj: { code?: number }) => events.push({ type, code: obj.code }),
      () => undefined,
    );
    await waitFor('410', () => events.length > 0);
    expect(events[0]).toEqual({ type: 'ERROR', code: 410 });
  });

  // client-node informer (dist/cache.js): relists on 410, re-watches after a closed watch
  test('the informer survives closed watches and 410 relists without duplicate adds', async () => {
    const path = '/api/v1/namespaces/default/secrets';
    const inf = k8s.makeInformer(c.kc, path, () => c.core.listNamespacedSecret({ namespace: 'default' }));
    const adds: string[] = [];
    inf.on('add', (o: k8s.V1Secret) => adds.push(o.metadata!.name!));
    await inf.start();
    await c.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'inf-1' } } });
    await waitFor('inf-1', () => adds.includes('inf-1'));
    expect(cluster.server.closeWatches({ plural: 'secrets' })).toBeGreaterThan(0);
    await c.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'inf-2' } } });
    await waitFor('inf-2', () => adds.includes('inf-2'));
    cluster.server.expireResourceVersions();
    cluster.server.closeWatches({ plural: 'secrets' });
    await c.core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'inf-3' } } });
    await waitFor('inf-3', () => adds.includes('inf-3'));
    expect(adds.filter((a) => a === 'inf-1')).toHaveLength(1);
    await inf.stop();
  });

  test('a silenced watch stays open and delivers nothing (the half-open trap)', async () => {
    const seen: string[] = [];
    const req = await new k8s.Watch(c.kc).watch(
      '/api/v1/namespaces/default/services',
      {},
      (t: string, o: k8s.V1Service) => seen.push(`${t}:${o.metadata!.name!}`),
      () => undefined,
    );
    await waitFor('watch open', () => cluster.server.openWatchCount > 0);
    cluster.server.silenceWatches({ plural: 'services' });
    await c.core.createNamespacedService({
      namespace: 'default',
      body: { metadata: { name: 'silent' }, spec: { ports: [{ port: 80 }] } },
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual([]);
    req.abort();
  });
});

describe('deletion', () => {
  // https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/
  test('finalizers hold an object with deletionTimestamp until removed', async () => {
    await c.custom.createNamespacedCustomObject({
      group: G,
      version: 'v1',
      namespace: 'default',
      plural: 'simbuilds',
      body: { ...build('fin'), metadata: { name: 'fin', finalizers: ['sim.nixyard.dev/cleanup'] } },
    });
    await c.custom.deleteNamespacedCustomObject({
      group: G,
      version: 'v1',
      namespace: 'default',
      plural: 'simbuilds',
      name: 'fin',
    });
    const o = await get('fin');
    expect(o.metadata?.deletionTimestamp).toBeDefined();
    expect(o.metadata?.generation).toBe(2);
    await c.custom.patchNamespacedCustomObject(
      {
        group: G,
        version: 'v1',
        namespace: 'default',
        plural: 'simbuilds',
        name: 'fin',
        body: { metadata: { finalizers: null } },
      },
      merge,
    );
    expect((await failure(get('fin'))).code).toBe(404);
  });

  // https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion
  test('ownerReferences: background deletes dependents, orphan keeps them, foreground waits for them', async () => {
    const owner = (await co('owner-bg')) as k8s.KubernetesObject;
    const ref = {
      apiVersion: `${G}/v1`,
      kind: 'SimBuild',
      name: 'owner-bg',
      uid: owner.metadata!.uid!,
      controller: true,
      blockOwnerDeletion: true,
    };
    await c.core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'dep-bg', ownerReferences: [ref] } },
    });
    await c.custom.deleteNamespacedCustomObject({
      group: G,
      version: 'v1',
      namespace: 'default',
      plural: 'simbuilds',
      name: 'owner-bg',
    });
    await waitFor(
      'dependent collected',
      async () =>
        (await failure(c.core.readNamespacedConfigMap({ namespace: 'default', name: 'dep-bg' }))).code ===
        404,
    );

    const o2 = (await co('owner-or')) as k8s.KubernetesObject;
    await c.core.createNamespacedConfigMap({
      namespace: 'default',
      body: {
        metadata: { name: 'dep-or', ownerReferences: [{ ...ref, name: 'owner-or', uid: o2.metadata!.uid! }] },
      },
    });
    await c.custom.deleteNamespacedCustomObject({
      group: G,
      version: 'v1',
      namespace: 'default',
      plural: 'simbuilds',
      name: 'owner-or',
      propagationPolicy: 'Orphan',
    });
    await waitFor('owner gone', async () => (await failure(get('owner-or'))).code === 404);
    expect(
      (await c.core.readNamespacedConfigMap({ namespace: 'default', name: 'dep-or' })).metadata
        ?.ownerReferences,
    ).toBeUndefined();

    const o3 = (await co('owner-fg')) as k8s.KubernetesObject;
    await c.core.createNamespacedConfigMap({
      namespace: 'default',
      body: {
        metadata: {
          name: 'dep-fg',
          finalizers: ['hold'],
          ownerReferences: [{ ...ref, name: 'owner-fg', uid: o3.metadata!.uid! }],
        },
      },
    });
    await c.custom.deleteNamespacedCustomObject({
      group: G,
      version: 'v1',
      namespace: 'default',
      plural: 'simbuilds',
      name: 'owner-fg',
      propagationPolicy: 'Foreground',
    });
    await waitFor(
      'dependent terminating',
      async () =>
        (await c.core.readNamespacedConfigMap({ namespace: 'default', name: 'dep-fg' })).metadata
          ?.deletionTimestamp,
    );
    expect((await get('owner-fg')).metadata?.finalizers).toContain('foregroundDeletion');
    await c.core.patchNamespacedConfigMap(
      { namespace: 'default', name: 'dep-fg', body: { metadata: { finalizers: null } } },
      merge,
    );
    await waitFor('owner gone', async () => (await failure(get('owner-fg'))).code === 404);
  });
});

describe('faults', () => {
  test('injected 500 and 429 with Retry-After reach the client as ApiException', async () => {
    const id = cluster.server.faults.add({
      method: 'GET',
      path: '/configmaps/fault$',
      times: 1,
      action: { type: 'status', code: 429, retryAfterSeconds: 3 },
    });
    await c.core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'fault' } } });
    const e = await failure(c.core.readNamespacedConfigMap({ namespace: 'default', name: 'fault' }));
    expect(e).toMatchObject({ code: 429, reason: 'TooManyRequests' });
    expect(e.headers['retry-after']).toBe('3');
    cluster.server.faults.remove(id);
    cluster.server.faults.add({
      path: '/configmaps/fault$',
      times: 1,
      action: { type: 'status', code: 500 },
    });
    expect(
      (await failure(c.core.readNamespacedConfigMap({ namespace: 'default', name: 'fault' }))).code,
    ).toBe(500);
    expect(
      (await c.core.readNamespacedConfigMap({ namespace: 'default', name: 'fault' })).metadata?.name,
    ).toBe('fault');
  });

  test('every request is recorded', () => {
    expect(
      cluster.server.requests.some(
        (r) => r.method === 'POST' && r.path === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      ),
    ).toBe(true);
  });
});
