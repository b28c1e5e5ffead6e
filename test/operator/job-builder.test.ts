import type { V1Job } from '@kubernetes/client-node';
import {
  BUILD_FAILURE_EXIT_CODES,
  DEADLINE_SLACK_SECONDS,
  DEFAULT_SANDBOX,
  desiredJob,
  ttlPatch,
  type JobSettings,
} from '../../operator/job-builder.js';
import { loadOperatorConfig } from '../../operator/config.js';
import type { PoolConfig } from '../../operator/pools.js';
import { builtinErrors, schemaErrors, unknownFields } from './k8s-validate.js';
import { DRV, HASH, jobSettings, nixBuild, pools } from './fixtures.js';

const minimal: PoolConfig = {
  name: 'minimal',
  systems: ['x86_64-linux', 'aarch64-linux'],
  features: [],
  nodeSelector: {},
  tolerations: [],
  resources: {},
  podLabels: {},
  podAnnotations: {},
};

const cases: [string, PoolConfig, Parameters<typeof nixBuild>[0], JobSettings][] = [
  ['amd64 pool, defaults', pools.amd64, {}, jobSettings],
  ['amd64 pool, i686 build', pools.amd64, { system: 'i686-linux' }, jobSettings],
  [
    'arm pool with selectors, tolerations, runtime class and its own sandbox',
    pools.arm,
    { system: 'aarch64-linux', timeoutSeconds: 7200, maxSilentTimeSeconds: 600 },
    { ...jobSettings, redis: { secretName: 'nixyard-redis', secretKey: 'url' }, imagePullSecrets: ['ghcr'] },
  ],
  [
    'kvm pool, privileged, affinity, big resources from the build',
    pools.kvm,
    {
      requiredSystemFeatures: ['kvm', 'nixos-test'],
      resources: { requests: { cpu: 16, memory: '96Gi' }, limits: { cpu: '32' } },
    },
    { ...jobSettings, redis: undefined },
  ],
  [
    'a pool that says nothing',
    minimal,
    { system: 'aarch64-linux' },
    { ...jobSettings, imagePullPolicy: 'Always' },
  ],
];

describe('desiredJob: (NixBuild, pool) → Job', () => {
  test.each(cases)(
    '%s: valid against the Kubernetes schemas, no unknown fields',
    async (_, pool, spec, settings) => {
      const job = desiredJob(nixBuild(spec), pool, settings, { number: 1 });
      expect(await builtinErrors(job)).toEqual([]);
    },
  );

  test.each(cases)('%s: placement, command, store, ownership', (_, pool, spec, settings) => {
    const nb = nixBuild(spec);
    const job = desiredJob(nb, pool, settings, { number: 1 });
    const podSpec = job.spec!.template.spec!;
    const arch = nb.spec.system === 'aarch64-linux' ? 'arm64' : 'amd64';
    expect(podSpec.nodeSelector).toEqual({
      ...pool.nodeSelector,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': arch,
    });
    expect(podSpec.tolerations ?? []).toEqual(pool.tolerations);
    expect(podSpec.runtimeClassName).toBe(pool.runtimeClassName);
    expect(podSpec.priorityClassName).toBe(pool.priorityClassName);
    expect(podSpec.restartPolicy).toBe('Never');
    expect(podSpec.automountServiceAccountToken).toBe(false);
    const [c, ...others] = podSpec.containers;
    expect(others).toEqual([]);
    expect(c!.command!.slice(0, 5)).toEqual(['nixyard', 'build-drv', DRV, '--data-dir', '/var/lib/nixyard']);
    expect(c!.image).toBe(settings.image);
    expect(c!.volumeMounts).toContainEqual({ name: 'store', mountPath: '/var/lib/nixyard' });
    expect(podSpec.volumes).toContainEqual({
      name: 'store',
      persistentVolumeClaim: { claimName: 'nixyard-store' },
    });
    expect(job.metadata!.ownerReferences).toEqual([
      {
        apiVersion: 'nixyard.dev/v1alpha1',
        kind: 'NixBuild',
        name: nb.metadata.name,
        uid: nb.metadata.uid,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    expect(job.metadata!.namespace).toBe('builds');
    expect(job.metadata!.labels).toMatchObject({
      'nixyard.dev/nixbuild': nb.metadata.name,
      'nixyard.dev/drv-hash': HASH,
      'nixyard.dev/system': nb.spec.system,
      'nixyard.dev/pool': pool.name,
      'nixyard.dev/attempt': '1',
    });
    expect(job.spec!.template.metadata!.labels).toMatchObject({
      ...pool.podLabels,
      'nixyard.dev/nixbuild': nb.metadata.name,
    });
    // Never the Job controller's retries: the operator decides (failure.ts).
    expect(job.spec!.backoffLimit).toBe(0);
    expect(job.spec!.podFailurePolicy!.rules[0]).toEqual({
      action: 'FailJob',
      onExitCodes: { containerName: 'build', operator: 'In', values: BUILD_FAILURE_EXIT_CODES },
    });
    // The TTL comes after the status holds the result.
    expect(job.spec!.ttlSecondsAfterFinished).toBeUndefined();
  });

  test('security: a pool without its own gets the bwrap sandbox profile; a pool with one gets exactly it', () => {
    const plain = desiredJob(nixBuild(), minimal, jobSettings, { number: 1 }).spec!.template.spec!;
    expect(plain.hostUsers).toBe(false);
    expect(plain.securityContext).toEqual(DEFAULT_SANDBOX.podSecurityContext);
    expect(plain.containers[0]!.securityContext).toEqual(DEFAULT_SANDBOX.securityContext);
    const kvm = desiredJob(nixBuild(), pools.kvm, jobSettings, { number: 1 }).spec!.template.spec!;
    expect(kvm.hostUsers).toBeUndefined();
    expect(kvm.containers[0]!.securityContext).toEqual({ privileged: true });
  });

  test('timeout: build-drv enforces it in Nix words, the Job deadline is the backstop', () => {
    const job = desiredJob(
      nixBuild({ timeoutSeconds: 3600, maxSilentTimeSeconds: 300 }),
      pools.amd64,
      jobSettings,
      {
        number: 1,
      },
    );
    expect(job.spec!.activeDeadlineSeconds).toBe(3600 + DEADLINE_SLACK_SECONDS);
    expect(job.spec!.template.spec!.containers[0]!.command).toEqual(
      expect.arrayContaining(['--timeout', '3600', '--max-silent-time', '300']),
    );
    expect(
      desiredJob(nixBuild(), pools.amd64, jobSettings, { number: 1 }).spec!.activeDeadlineSeconds,
    ).toBeUndefined();
  });

  test('a derivation sent whole: build-drv reads it from its file on the store volume', () => {
    const file = `derivations/${DRV.slice('/nix/store/'.length, -'.drv'.length)}.0a1b2c.drv`;
    const command = desiredJob(nixBuild({ derivationFile: file }), pools.amd64, jobSettings, { number: 1 })
      .spec!.template.spec!.containers[0]!.command!;
    expect(command.slice(0, 3)).toEqual(['nixyard', 'build-drv', DRV]);
    expect(command.slice(-2)).toEqual(['--derivation-file', `${jobSettings.storeMountPath}/${file}`]);
    expect(
      desiredJob(nixBuild(), pools.amd64, jobSettings, { number: 1 }).spec!.template.spec!.containers[0]!
        .command,
    ).not.toContain('--derivation-file');
  });

  test('a check: build-drv rebuilds in the scratch store the spec names, without Redis', () => {
    const scratch = 'staging/0123456789abcdef01234567';
    const spec = { check: { dataDir: `${scratch}/data` }, derivationFile: `${scratch}/derivation.drv` };
    const settings = { ...jobSettings, redis: { url: 'redis://redis:6379' } };
    const c = desiredJob(nixBuild(spec), pools.amd64, settings, { number: 1 }).spec!.template.spec!
      .containers[0]!;
    expect(c.command!.slice(0, 5)).toEqual([
      'nixyard',
      'build-drv',
      DRV,
      '--data-dir',
      `${jobSettings.storeMountPath}/${scratch}/data`,
    ]);
    expect(c.command!.slice(-2)).toEqual([
      '--derivation-file',
      `${jobSettings.storeMountPath}/${scratch}/derivation.drv`,
    ]);
    expect(c.env!.map((e) => e.name)).not.toContain('NIXYARD_REDIS_URL');
    const plain = desiredJob(nixBuild(), pools.amd64, settings, { number: 1 }).spec!.template.spec!
      .containers[0]!;
    expect(plain.env!.map((e) => e.name)).toContain('NIXYARD_REDIS_URL');
  });

  test('resources: the build wins over the pool, limits never below requests, cores from the CPU', () => {
    const c = (job: V1Job) => job.spec!.template.spec!.containers[0]!;
    const big = c(
      desiredJob(nixBuild({ resources: { requests: { memory: '12Gi' } } }), pools.amd64, jobSettings, {
        number: 1,
      }),
    );
    expect(big.resources).toEqual({ requests: { cpu: '1', memory: '12Gi' }, limits: { memory: '12Gi' } });
    expect(big.command).toEqual(expect.arrayContaining(['--cores', '1']));
    const arm = c(desiredJob(nixBuild({ system: 'aarch64-linux' }), pools.arm, jobSettings, { number: 1 }));
    expect(arm.command).toEqual(expect.arrayContaining(['--cores', '8']));
    const none = c(desiredJob(nixBuild(), minimal, jobSettings, { number: 1 }));
    expect(none.command).not.toContain('--cores');
  });

  test('a retry after an OOM-kill: its own Job name, attempt label and the raised memory limit', async () => {
    const job = desiredJob(nixBuild(), pools.amd64, jobSettings, { number: 2, memoryLimit: '16Gi' });
    expect(job.metadata!.name).toBe(`${HASH}-hello-2-12-1-retry1`);
    expect(job.metadata!.labels!['nixyard.dev/attempt']).toBe('2');
    expect(job.spec!.template.spec!.containers[0]!.resources!.limits).toEqual({ memory: '16Gi' });
    expect(await builtinErrors(job)).toEqual([]);
  });

  test('Redis: a URL as a value or from a Secret, never both', () => {
    const env = (s: JobSettings) =>
      desiredJob(nixBuild(), pools.amd64, s, { number: 1 }).spec!.template.spec!.containers[0]!.env!;
    expect(env(jobSettings)).toContainEqual({
      name: 'NIXYARD_REDIS_URL',
      value: 'redis://nixyard-redis:6379',
    });
    expect(env({ ...jobSettings, redis: { secretName: 's', secretKey: 'k' } })).toContainEqual({
      name: 'NIXYARD_REDIS_URL',
      valueFrom: { secretKeyRef: { name: 's', key: 'k' } },
    });
    expect(env({ ...jobSettings, redis: undefined }).map((e) => e.name)).not.toContain('NIXYARD_REDIS_URL');
    // The lease of a pod's output locks: build-drv's default unless the operator sets it.
    expect(env(jobSettings).map((e) => e.name)).not.toContain('NIXYARD_REDIS_TTL');
    expect(env({ ...jobSettings, redisTtlSeconds: 5 })).toContainEqual({
      name: 'NIXYARD_REDIS_TTL',
      value: '5',
    });
    expect(env({ ...jobSettings, redis: undefined, redisTtlSeconds: 5 }).map((e) => e.name)).not.toContain(
      'NIXYARD_REDIS_TTL',
    );
    expect(
      loadOperatorConfig(['--image=i', '--redis-url=redis://r:6379', '--redis-ttl=7'], {}).job,
    ).toMatchObject({
      redisTtlSeconds: 7,
    });
    expect(() => loadOperatorConfig(['--image=i', '--redis-ttl=0'], {})).toThrow(/redis-ttl/);
  });

  test('the pool must serve the system (choosePool comes first)', () => {
    expect(() =>
      desiredJob(nixBuild({ system: 'aarch64-linux' }), pools.amd64, jobSettings, { number: 1 }),
    ).toThrow(/does not build aarch64-linux/);
  });

  test('the strict check catches what the schemas let through', async () => {
    const job = desiredJob(nixBuild(), pools.amd64, jobSettings, { number: 1 });
    const typo = structuredClone(job) as unknown as { spec: Record<string, unknown> };
    typo.spec.backofLimit = 1;
    expect(unknownFields(typo, 'V1Job')).toEqual(['.spec.backofLimit: unknown field of V1JobSpec']);
    expect(await builtinErrors(typo)).not.toEqual([]);
    // …and the schemas catch what they should.
    const bad = structuredClone(job);
    bad.spec!.template.spec!.containers[0]!.name = undefined as unknown as string;
    bad.spec!.backoffLimit = 'none' as unknown as number;
    expect((await schemaErrors(bad)).length).toBeGreaterThanOrEqual(2);
  });

  test('ttlPatch', () => {
    expect(ttlPatch(3600)).toEqual({ spec: { ttlSecondsAfterFinished: 3600 } });
  });
});
