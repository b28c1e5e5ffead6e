/** Helpers shared by the simulated-cluster conformance tests. */
import * as k8s from '@kubernetes/client-node';
import type { SimCluster } from './cluster.js';

export function clients(cluster: SimCluster) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    batch: kc.makeApiClient(k8s.BatchV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    ext: kc.makeApiClient(k8s.ApiextensionsV1Api),
    coord: kc.makeApiClient(k8s.CoordinationV1Api),
  };
}

/** The parsed Status of a failed client-node call (ApiException.body is a string, NOTES.md §2.2). */
export async function failure(
  p: Promise<unknown>,
): Promise<{ code: number; reason: string; message: string; headers: Record<string, string> }> {
  try {
    await p;
  } catch (e) {
    const ex = e as { code: number; body: string; headers: Record<string, string> };
    const s = JSON.parse(ex.body) as { reason: string; message: string };
    return { code: ex.code, reason: s.reason, message: s.message, headers: ex.headers };
  }
  throw new Error('expected the call to fail');
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The CRD as YAML would spell it (raw keys: `enum`, `default`, `x-kubernetes-*`). */
export const NIXBUILD_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'simbuilds.sim.nixyard.dev' },
  spec: {
    group: 'sim.nixyard.dev',
    scope: 'Namespaced',
    names: {
      plural: 'simbuilds',
      singular: 'simbuild',
      kind: 'SimBuild',
      shortNames: ['sb'],
      categories: ['simcat'],
    },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [
          { name: 'System', type: 'string', jsonPath: '.spec.system' },
          { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
          { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          { name: 'Derivation', type: 'string', jsonPath: '.spec.drvPath', priority: 1 },
        ],
        schema: {
          openAPIV3Schema: {
            type: 'object',
            required: ['spec'],
            properties: {
              spec: {
                type: 'object',
                required: ['drvPath', 'system'],
                properties: {
                  drvPath: { type: 'string', pattern: '^/nix/store/[0-9a-df-np-sv-z]{32}-.+\\.drv$' },
                  system: { type: 'string', enum: ['x86_64-linux', 'aarch64-linux'] },
                  cores: { type: 'integer', default: 1, minimum: 1 },
                  extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                },
              },
              status: {
                type: 'object',
                properties: {
                  phase: { type: 'string' },
                  observedGeneration: { type: 'integer' },
                  conditions: {
                    type: 'array',
                    'x-kubernetes-list-type': 'map',
                    'x-kubernetes-list-map-keys': ['type'],
                    items: {
                      type: 'object',
                      required: ['type', 'status'],
                      properties: {
                        type: { type: 'string' },
                        status: { type: 'string' },
                        reason: { type: 'string' },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};

export const DRV = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello.drv';

/**
 * client-node's typed APIs serialize by property name (`_enum`, `_default`,
 * `x_kubernetes_list_type`): raw YAML keys are silently dropped unless the object is
 * first deserialized into the model (a trap pinned in api-semantics.test.ts).
 */
export function typedCrd(raw: object): k8s.V1CustomResourceDefinition {
  return k8s.loadYaml<k8s.V1CustomResourceDefinition>(JSON.stringify(raw));
}
