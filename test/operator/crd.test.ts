import { readFileSync } from 'node:fs';
import { builtinErrors, CRD_FILE, loadYamlDocs, nixBuildValidator } from './k8s-validate.js';
import { DRV, HASH, nixBuild } from './fixtures.js';

interface SchemaProps {
  properties: Record<string, SchemaProps>;
  'x-kubernetes-validations'?: unknown;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
}
interface Crd {
  metadata: { name: string };
  spec: {
    versions: {
      additionalPrinterColumns: { name: string; priority?: number; jsonPath: string }[];
      schema: { openAPIV3Schema: SchemaProps };
    }[];
  };
}
const [crd] = loadYamlDocs(readFileSync(CRD_FILE, 'utf8')) as unknown as [Crd];
const version = crd.spec.versions[0]!;
const validate = nixBuildValidator();

describe('the NixBuild CRD', () => {
  test('is a valid CustomResourceDefinition (schema + strict fields)', async () => {
    expect(await builtinErrors(crd)).toEqual([]);
  });

  test('names, scope, status subresource', () => {
    expect(crd.metadata.name).toBe('nixbuilds.nixyard.dev');
    expect(crd.spec).toMatchObject({
      group: 'nixyard.dev',
      scope: 'Namespaced',
      names: { kind: 'NixBuild', plural: 'nixbuilds', shortNames: ['nb'], categories: ['nix'] },
    });
    expect(version).toMatchObject({
      name: 'v1alpha1',
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  test('kubectl get: NAME, SYSTEM, PHASE, NODE, AGE, DURATION; -o wide adds DERIVATION and REASON', () => {
    const columns = version.additionalPrinterColumns as {
      name: string;
      priority?: number;
      jsonPath: string;
    }[];
    expect(columns.filter((c) => !c.priority).map((c) => c.name.toUpperCase())).toEqual([
      'SYSTEM',
      'PHASE',
      'NODE',
      'AGE',
      'DURATION',
    ]);
    expect(columns.filter((c) => c.priority === 1).map((c) => [c.name.toUpperCase(), c.jsonPath])).toEqual([
      ['DERIVATION', '.spec.drvPath'],
      ['REASON', '.status.reason'],
    ]);
  });

  test('drvPath and system are immutable (CEL), conditions are a map keyed by type', () => {
    const spec = version.schema.openAPIV3Schema.properties.spec!.properties;
    expect(spec.drvPath!['x-kubernetes-validations']).toEqual([
      { rule: 'self == oldSelf', message: 'drvPath is immutable' },
    ]);
    expect(spec.system!['x-kubernetes-validations']).toEqual([
      { rule: 'self == oldSelf', message: 'system is immutable' },
    ]);
    expect(spec.derivationFile!['x-kubernetes-validations']).toEqual([
      { rule: 'self == oldSelf', message: 'derivationFile is immutable' },
    ]);
    const conditions = version.schema.openAPIV3Schema.properties.status!.properties.conditions!;
    expect(conditions['x-kubernetes-list-type']).toBe('map');
    expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
  });

  const full = nixBuild(
    {
      requiredSystemFeatures: ['big-parallel'],
      resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: 2, memory: '4Gi' } },
      timeoutSeconds: 3600,
      maxSilentTimeSeconds: 600,
      requesters: ['ssh-abc'],
      keepRunning: false,
      derivationFile: `derivations/${HASH}-hello.0a1b2c3d4e5f.drv`,
    },
    {
      phase: 'Failed',
      observedGeneration: 1,
      conditions: [
        {
          type: 'Failed',
          status: 'True',
          reason: 'BuildFailed',
          message: 'builder failed',
          lastTransitionTime: '2026-11-25T10:00:00Z',
          observedGeneration: 1,
        },
      ],
      pool: 'amd64',
      jobName: 'j',
      podName: 'p',
      nodeName: 'n',
      startTime: '2026-11-25T10:00:00Z',
      completionTime: '2026-11-25T10:01:00Z',
      duration: '60s',
      outputs: [{ name: 'out', path: `/nix/store/${HASH}-hello` }],
      reason: 'BuildFailed',
      message: 'x',
      exitCode: 100,
      attempts: 1,
    },
  );

  test.each([
    ['a minimal build', nixBuild()],
    [
      'a check',
      nixBuild({
        check: { dataDir: 'staging/0123456789abcdef01234567/data' },
        derivationFile: 'staging/0123456789abcdef01234567/derivation.drv',
      }),
    ],
    ['every field', full],
    [
      'an aarch64-darwin build (refused later by the operator, not by the schema)',
      nixBuild({ system: 'aarch64-darwin' }),
    ],
  ])('accepts %s', (_, obj) => {
    expect(validate(obj)).toEqual([]);
  });

  /** `full` with the value at `path` replaced (or deleted, for undefined). */
  const bad = (path: (string | number)[], value?: unknown): unknown => {
    const o = structuredClone(full) as unknown as Record<string | number, unknown>;
    let at = o;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
    const last = path[path.length - 1]!;
    if (value === undefined) delete at[last];
    else at[last] = value;
    return o;
  };
  test.each([
    ['no spec', bad(['spec'])],
    ['no drvPath', bad(['spec', 'drvPath'])],
    ['a drvPath outside the store', bad(['spec', 'drvPath'], `/tmp/${HASH}-x.drv`)],
    ['a drvPath with a bad hash (e is not base32)', bad(['spec', 'drvPath'], DRV.replace('0c9', 'ec9'))],
    ['a path that is not a .drv', bad(['spec', 'drvPath'], DRV.replace('.drv', ''))],
    ['a system without a dash', bad(['spec', 'system'], 'linux')],
    ['a derivationFile leaving the volume', bad(['spec', 'derivationFile'], 'derivations/../meta/x.drv')],
    ['a derivationFile outside derivations/', bad(['spec', 'derivationFile'], `store/${HASH}-hello.drv`)],
    ['an absolute derivationFile', bad(['spec', 'derivationFile'], `/derivations/${HASH}-hello.drv`)],
    ['a check scratch store outside staging/', bad(['spec', 'check'], { dataDir: 'store/x/data' })],
    ['a check without its scratch store', bad(['spec', 'check'], {})],
    ['a negative timeout', bad(['spec', 'timeoutSeconds'], -1)],
    ['a memory that is not a quantity', bad(['spec', 'resources', 'limits', 'memory'], 'lots')],
    ['an unknown phase', bad(['status', 'phase'], 'Running')],
    ['a condition without reason', bad(['status', 'conditions', 0, 'reason'])],
    ['a condition reason with spaces', bad(['status', 'conditions', 0, 'reason'], 'build failed')],
    ['a condition status that is not True/False/Unknown', bad(['status', 'conditions', 0, 'status'], 'yes')],
    [
      'a lastTransitionTime that is not a time',
      bad(['status', 'conditions', 0, 'lastTransitionTime'], 'today'),
    ],
    ['an output without a path', bad(['status', 'outputs', 0, 'path'])],
    ['an unknown spec field (pruned by the server)', bad(['spec', 'priority'], 5)],
  ])('rejects %s', (_, obj) => {
    expect(validate(obj)).not.toEqual([]);
  });
});
