/**
 * Conformance: core/v1 Events and events.k8s.io/v1 Events are one stored object seen
 * through two APIs (test/sim/apiserver/events.ts). Pinned over HTTP as clients see it:
 * the field mapping, watches, field selectors, shared names, deletion and the
 * validation of each request version.
 * - https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/
 *   (events.k8s.io/v1: "deprecatedCount", "deprecatedFirstTimestamp", …)
 * - https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/#Event
 * - k8s.io/kubernetes pkg/apis/events/v1/conversion.go (conversion, field labels),
 *   pkg/registry/core/event/strategy.go (selectable fields),
 *   pkg/apis/core/validation/events.go (validation).
 */
import * as k8s from '@kubernetes/client-node';
import { coreToEventsV1, CORE_TO_EVENTS_V1, eventsV1ToCore } from './apiserver/events.js';
import type { KObject } from './apiserver/types.js';
import { startSimCluster, type SimCluster } from './cluster.js';
import { clients, waitFor } from './support.js';

const NS = 'ev';
let cluster: SimCluster;
let c: ReturnType<typeof clients>;

beforeAll(async () => {
  cluster = await startSimCluster({ namespaces: [NS] });
  c = clients(cluster);
});
afterAll(() => cluster.close());

const CORE = `/api/v1/namespaces/${NS}/events`;
const V1 = `/apis/events.k8s.io/v1/namespaces/${NS}/events`;

async function http(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> & KObject }> {
  const res = await fetch(`${cluster.url}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> & KObject };
}

const items = async (path: string): Promise<KObject[]> =>
  ((await http('GET', path)).json as unknown as { items: KObject[] }).items;

const REGARDING = {
  apiVersion: 'nixyard.dev/v1alpha1',
  kind: 'NixBuild',
  name: 'hello',
  namespace: NS,
  uid: '3c5e8a52-0000-4000-8000-000000000001',
  resourceVersion: '7',
};

/** A core/v1 Event shaped as the operator records it (operator/reconciler.ts `emit`). */
const coreEvent = (name: string) => ({
  apiVersion: 'v1',
  kind: 'Event',
  metadata: { name },
  involvedObject: REGARDING,
  type: 'Normal',
  reason: 'JobCreated',
  message: 'created Job hello-1 on pool amd64',
  source: { component: 'nixyard-operator' },
  reportingComponent: 'nixyard.dev/nixyard-operator',
  reportingInstance: 'nixyard-operator-0',
  firstTimestamp: '2026-01-01T00:00:00Z',
  lastTimestamp: '2026-01-01T00:00:05Z',
  count: 2,
});

/** An events.k8s.io/v1 Event as client-go's tools/events recorder writes it. */
const v1Event = (name: string) => ({
  apiVersion: 'events.k8s.io/v1',
  kind: 'Event',
  metadata: { name },
  eventTime: '2026-01-01T00:00:00.000000Z',
  reportingController: 'nixyard.dev/nixyard-operator',
  reportingInstance: 'nixyard-operator-0',
  action: 'Reconcile',
  reason: 'Succeeded',
  regarding: REGARDING,
  note: 'built /nix/store/…-hello.drv',
  type: 'Normal',
});

describe('the mapping (pkg/apis/events/v1/conversion.go)', () => {
  test('core/v1 ↔ events.k8s.io/v1 field names, and a lossless round trip', () => {
    expect(CORE_TO_EVENTS_V1).toEqual({
      involvedObject: 'regarding',
      message: 'note',
      source: 'deprecatedSource',
      firstTimestamp: 'deprecatedFirstTimestamp',
      lastTimestamp: 'deprecatedLastTimestamp',
      count: 'deprecatedCount',
      reportingComponent: 'reportingController',
    });
    const full: KObject = {
      ...coreEvent('full'),
      eventTime: '2026-01-01T00:00:00.000000Z',
      series: { count: 3, lastObservedTime: '2026-01-01T00:00:09.000000Z' },
      action: 'Build',
      related: { kind: 'Pod', name: 'hello-1-abcde', namespace: NS },
    };
    const v1 = coreToEventsV1(full);
    expect(Object.keys(v1).sort()).toEqual(
      [
        'action',
        'apiVersion',
        'deprecatedCount',
        'deprecatedFirstTimestamp',
        'deprecatedLastTimestamp',
        'deprecatedSource',
        'eventTime',
        'kind',
        'metadata',
        'note',
        'reason',
        'regarding',
        'related',
        'reportingController',
        'reportingInstance',
        'series',
        'type',
      ].sort(),
    );
    expect(v1.apiVersion).toBe('events.k8s.io/v1');
    expect(eventsV1ToCore(v1)).toEqual(full);
  });
});

describe('one object, two APIs', () => {
  test('created as core/v1 (the operator), read as events.k8s.io/v1: same object, fields mapped', async () => {
    const created = await http('POST', CORE, coreEvent('op-1'));
    expect(created.status).toBe(201);
    const seen = await http('GET', `${V1}/op-1`);
    expect(seen.status).toBe(200);
    expect(seen.json).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: {
        name: 'op-1',
        namespace: NS,
        uid: created.json.metadata.uid,
        resourceVersion: created.json.metadata.resourceVersion,
      },
      regarding: REGARDING,
      note: 'created Job hello-1 on pool amd64',
      deprecatedSource: { component: 'nixyard-operator' },
      reportingController: 'nixyard.dev/nixyard-operator',
      reportingInstance: 'nixyard-operator-0',
      deprecatedFirstTimestamp: '2026-01-01T00:00:00Z',
      deprecatedLastTimestamp: '2026-01-01T00:00:05Z',
      deprecatedCount: 2,
      type: 'Normal',
      reason: 'JobCreated',
    });
    for (const core of Object.keys(CORE_TO_EVENTS_V1)) expect(seen.json).not.toHaveProperty(core);
    // Through the typed clients too.
    const typed = await c.kc
      .makeApiClient(k8s.EventsV1Api)
      .readNamespacedEvent({ namespace: NS, name: 'op-1' });
    expect(typed.note).toBe('created Job hello-1 on pool amd64');
    expect(typed.regarding?.uid).toBe(REGARDING.uid);
  });

  test('created as events.k8s.io/v1, read and listed as core/v1', async () => {
    const created = await http('POST', V1, v1Event('new-1'));
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ apiVersion: 'events.k8s.io/v1', note: v1Event('x').note });
    const seen = await c.core.readNamespacedEvent({ namespace: NS, name: 'new-1' });
    expect(seen.involvedObject).toMatchObject({ kind: 'NixBuild', name: 'hello', uid: REGARDING.uid });
    expect(seen.message).toBe('built /nix/store/…-hello.drv');
    expect(seen.reportingComponent).toBe('nixyard.dev/nixyard-operator');
    expect(seen.action).toBe('Reconcile');
    expect(seen.metadata?.uid).toBe(created.json.metadata.uid);
    // What kubectl describe asks (describe.test.ts): both Events, whichever API wrote them.
    const listed = await c.core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: `involvedObject.name=hello,involvedObject.namespace=${NS},involvedObject.kind=NixBuild,involvedObject.uid=${REGARDING.uid}`,
    });
    expect(listed.items.map((e) => e.metadata?.name).sort()).toEqual(['new-1', 'op-1']);
  });

  test('one name: a create through the other API is 409 AlreadyExists; deleting through one deletes both', async () => {
    const dup = await http('POST', V1, v1Event('op-1'));
    expect(dup.status).toBe(409);
    expect(dup.json.reason).toBe('AlreadyExists');
    expect(dup.json.message).toBe('events.events.k8s.io "op-1" already exists');
    await http('POST', CORE, coreEvent('gone-1'));
    expect((await http('DELETE', `${V1}/gone-1`)).status).toBe(200);
    expect((await http('GET', `${CORE}/gone-1`)).status).toBe(404);
  });

  test('one resourceVersion sequence: a core/v1 update is seen as events.k8s.io/v1 (count → deprecatedCount)', async () => {
    // client-go's legacy recorder counts repeats with a patch of count and lastTimestamp.
    await c.core.patchNamespacedEvent(
      {
        namespace: NS,
        name: 'op-1',
        body: { count: 3, lastTimestamp: '2026-01-01T00:00:10Z' },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    const core = (await http('GET', `${CORE}/op-1`)).json;
    const v1 = (await http('GET', `${V1}/op-1`)).json;
    expect(v1.metadata.resourceVersion).toBe(core.metadata.resourceVersion);
    expect(v1).toMatchObject({ deprecatedCount: 3, deprecatedLastTimestamp: '2026-01-01T00:00:10Z' });
  });
});

// https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables
test('as a Table, events.k8s.io/v1 Events print as core/v1 ones (one printer, on the stored form)', async () => {
  const table = async (path: string) => {
    const res = await fetch(`${cluster.url}${path}?fieldSelector=metadata.name%3Dop-1`, {
      headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    });
    const t = (await res.json()) as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    return { columns: t.columnDefinitions.map((x) => x.name), cells: t.rows.map((r) => r.cells.slice(1)) };
  };
  const core = await table(CORE);
  expect(core.columns).toEqual(['Last Seen', 'Type', 'Reason', 'Object', 'Message']);
  expect(core.cells).toEqual([
    ['Normal', 'JobCreated', 'nixbuild/hello', 'created Job hello-1 on pool amd64'],
  ]);
  expect(await table(V1)).toEqual(core);
});

describe('watch', () => {
  test('an events.k8s.io/v1 watch sees core/v1 writes, converted; a core/v1 watch sees events.k8s.io/v1 writes', async () => {
    const seenV1: [string, KObject][] = [];
    const seenCore: [string, KObject][] = [];
    const list = await http('GET', V1);
    const rv = (list.json as unknown as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const watch = new k8s.Watch(c.kc);
    const w1 = await watch.watch(
      V1,
      { resourceVersion: rv },
      (t: string, o: KObject) => seenV1.push([t, o]),
      () => undefined,
    );
    const w2 = await watch.watch(
      CORE,
      { resourceVersion: rv, fieldSelector: 'reason=Watched' },
      (t: string, o: KObject) => seenCore.push([t, o]),
      () => undefined,
    );
    try {
      await http('POST', CORE, { ...coreEvent('w-core'), reason: 'Watched' });
      await http('POST', V1, { ...v1Event('w-v1'), reason: 'Watched' });
      await http('DELETE', `${CORE}/w-v1`);
      await waitFor('v1 watch', () => seenV1.length >= 3 || undefined);
      await waitFor('core watch', () => seenCore.length >= 3 || undefined);
    } finally {
      w1.abort();
      w2.abort();
    }
    expect(seenV1.map(([t, o]) => [t, o.metadata.name, o.apiVersion])).toEqual([
      ['ADDED', 'w-core', 'events.k8s.io/v1'],
      ['ADDED', 'w-v1', 'events.k8s.io/v1'],
      ['DELETED', 'w-v1', 'events.k8s.io/v1'],
    ]);
    expect(seenV1[0]![1]).toMatchObject({ note: coreEvent('x').message, regarding: REGARDING });
    expect(seenCore.map(([t, o]) => [t, o.metadata.name, o.apiVersion])).toEqual([
      ['ADDED', 'w-core', 'v1'],
      ['ADDED', 'w-v1', 'v1'],
      ['DELETED', 'w-v1', 'v1'],
    ]);
    expect(seenCore[1]![1]).toMatchObject({ message: v1Event('x').note, involvedObject: REGARDING });
  });
});

describe('field selectors', () => {
  beforeAll(async () => {
    await http('POST', CORE, {
      ...coreEvent('sel-a'),
      involvedObject: { ...REGARDING, name: 'sel', uid: 'u-sel' },
    });
    // No source: `source` selects on reportingComponent (ToSelectableFields).
    await http('POST', CORE, {
      ...coreEvent('sel-b'),
      involvedObject: { ...REGARDING, name: 'sel', uid: 'u-sel' },
      source: undefined,
      reportingComponent: 'other-controller',
      type: 'Warning',
    });
  });
  const names = async (path: string, selector: string) =>
    (await items(`${path}?fieldSelector=${encodeURIComponent(selector)}`)).map((e) => e.metadata.name).sort();

  test('events.k8s.io/v1 labels select on the mapped core/v1 fields', async () => {
    expect(await names(V1, 'regarding.name=sel')).toEqual(['sel-a', 'sel-b']);
    expect(await names(V1, 'regarding.uid=u-sel,type=Warning')).toEqual(['sel-b']);
    expect(await names(V1, 'regarding.name=sel,reportingController=other-controller')).toEqual(['sel-b']);
    expect(await names(V1, 'regarding.name=sel,source=nixyard-operator')).toEqual(['sel-a']);
    expect(await names(V1, 'regarding.name=sel,source=other-controller')).toEqual(['sel-b']);
    expect(
      await names(V1, 'regarding.name=sel,regarding.kind=NixBuild,regarding.apiVersion=nixyard.dev/v1alpha1'),
    ).toEqual(['sel-a', 'sel-b']);
  });

  test('core/v1: source is source.component, else reportingComponent', async () => {
    expect(await names(CORE, 'involvedObject.name=sel,source=nixyard-operator')).toEqual(['sel-a']);
    expect(await names(CORE, 'involvedObject.name=sel,source=other-controller')).toEqual(['sel-b']);
    expect(await names(CORE, 'involvedObject.name=sel,reportingComponent=other-controller')).toEqual([
      'sel-b',
    ]);
  });

  test('each API accepts only its own labels: 400 field label not supported', async () => {
    for (const [path, label] of [
      [V1, 'involvedObject.name'],
      [V1, 'note'],
      [CORE, 'regarding.name'],
    ] as const) {
      const r = await http('GET', `${path}?fieldSelector=${encodeURIComponent(`${label}=x`)}`);
      expect(r.status).toBe(400);
      expect(r.json.message).toBe(`field label not supported: ${label}`);
    }
  });
});

describe('validation (pkg/apis/core/validation/events.go)', () => {
  const causes = (r: { json: Record<string, unknown> }) =>
    ((r.json.details as { causes?: { field: string; message: string }[] }).causes ?? []).map(
      (x) => `${x.field}: ${x.message}`,
    );

  test('core/v1 create: involvedObject.namespace must match the Event namespace', async () => {
    const r = await http('POST', CORE, {
      ...coreEvent('bad-ns'),
      involvedObject: { ...REGARDING, namespace: 'elsewhere' },
    });
    expect(r.status).toBe(422);
    expect(causes(r)).toEqual([
      'involvedObject.namespace: Invalid value: "elsewhere": does not match event.namespace',
    ]);
  });

  test('core/v1 create with eventTime: reportingComponent, reportingInstance, action required', async () => {
    const r = await http('POST', CORE, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'bad-new' },
      involvedObject: REGARDING,
      reason: 'X',
      eventTime: '2026-01-01T00:00:00.000000Z',
    });
    expect(r.status).toBe(422);
    expect(causes(r)).toEqual([
      'reportingComponent: Required value',
      'reportingInstance: Required value',
      'action: Required value',
    ]);
  });

  test('events.k8s.io/v1 create is strict: the deprecated fields must be unset', async () => {
    const r = await http('POST', V1, {
      ...v1Event('bad-v1'),
      deprecatedCount: 2,
      deprecatedSource: { component: 'x' },
      deprecatedFirstTimestamp: '2026-01-01T00:00:00Z',
    });
    expect(r.status).toBe(422);
    expect(causes(r)).toEqual([
      'firstTimestamp: Invalid value: "": needs to be unset',
      'count: Invalid value: "": needs to be unset',
      'source: Invalid value: "": needs to be unset',
    ]);
  });

  test('events.k8s.io/v1 update may not change the note; core/v1 may (legacy)', async () => {
    await http('POST', V1, v1Event('upd-1'));
    const cur = (await http('GET', `${V1}/upd-1`)).json;
    const r = await http('PUT', `${V1}/upd-1`, { ...cur, note: 'changed' });
    expect(r.status).toBe(422);
    expect(causes(r)).toEqual(['message: Invalid value: field is immutable']);
    const core = (await http('GET', `${CORE}/upd-1`)).json;
    expect((await http('PUT', `${CORE}/upd-1`, { ...core, message: 'changed' })).status).toBe(200);
    expect((await http('GET', `${V1}/upd-1`)).json.note).toBe('changed');
  });
});
