/**
 * The Job of one build attempt: a pure function of the NixBuild, its pool and the
 * operator's settings. Everything that decides where and how the build pod runs is here,
 * so that a table of (NixBuild, pool) → Job is the whole test of it.
 */
import type {
  V1Container,
  V1EnvVar,
  V1Job,
  V1PodSecurityContext,
  V1PodSpec,
  V1SecurityContext,
  V1Volume,
} from '@kubernetes/client-node';
import { OperatorError, OperatorErrorCode } from './errors.js';
import { jobName, parseDrvPath } from './names.js';
import type { PoolConfig } from './pools.js';
import { archOfSystem } from './pools.js';
import { parseQuantity } from './quantity.js';
import { API_VERSION, Annotation, KIND, Label, MANAGER, type NixBuild } from './types.js';

export const BUILD_CONTAINER = 'build';

/**
 * Exit statuses of `nixyard build-drv` that are the derivation's own failure (nix-build's
 * 100 | timed out 1 | hash mismatch 2 | not deterministic 4): never retried.
 */
export const BUILD_FAILURE_EXIT_CODES: readonly number[] = [100, 101, 102, 103, 104, 105, 106, 107];

/**
 * The Job deadline is the build's timeout plus this: build-drv enforces the timeout itself
 * and says so in Nix's words; the deadline is the backstop (image pulls, a hung builder).
 */
export const DEADLINE_SLACK_SECONDS = 300;

export type RedisSettings =
  { readonly url: string } | { readonly secretName: string; readonly secretKey: string } | undefined;

export interface JobSettings {
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  readonly imagePullSecrets?: readonly string[];
  /** The store PVC, mounted read-write in every build pod. */
  readonly storeClaim: string;
  readonly storeMountPath: string;
  readonly redis: RedisSettings;
  /** NIXYARD_REDIS_TTL of build pods: how long a killed pod's output locks outlive it. */
  readonly redisTtlSeconds?: number;
}

export interface AttemptSettings {
  /** 1 for the first Job, 2 for the first retry, … */
  readonly number: number;
  /** The memory limit an OOM-kill raised this attempt to. */
  readonly memoryLimit?: string;
}

/** The pod and container confinement when a pool says nothing: what the bwrap sandbox needs. */
export const DEFAULT_SANDBOX: {
  readonly hostUsers: boolean;
  readonly podSecurityContext: V1PodSecurityContext;
  readonly securityContext: V1SecurityContext;
} = {
  hostUsers: false,
  podSecurityContext: { seccompProfile: { type: 'Unconfined' } },
  securityContext: {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    // bwrap mounts a fresh /proc inside its namespaces; the runtime's masks forbid that.
    procMount: 'Unmasked',
  },
};

export function buildResources(
  nb: NixBuild,
  pool: PoolConfig,
  memoryLimit?: string,
): { requests: Record<string, string>; limits: Record<string, string> } {
  const requests: Record<string, string | number> = {
    ...pool.resources.requests,
    ...nb.spec.resources?.requests,
  };
  const limits: Record<string, string | number> = { ...pool.resources.limits, ...nb.spec.resources?.limits };
  if (memoryLimit !== undefined) limits.memory = memoryLimit;
  for (const r of ['cpu', 'memory']) {
    const req = requests[r];
    const lim = limits[r];
    // The API server refuses a request above its limit; the build asked for the request.
    if (req !== undefined && lim !== undefined && (parseQuantity(req) ?? 0) > (parseQuantity(lim) ?? 0))
      limits[r] = req;
  }
  const str = (q: Record<string, string | number>): Record<string, string> =>
    Object.fromEntries(Object.entries(q).map(([k, v]) => [k, String(v)]));
  return { requests: str(requests), limits: str(limits) };
}

function redisEnv(redis: RedisSettings, ttlSeconds: number | undefined): V1EnvVar[] {
  if (redis === undefined) return [];
  const ttl = ttlSeconds === undefined ? [] : [{ name: 'NIXYARD_REDIS_TTL', value: String(ttlSeconds) }];
  if ('url' in redis) return [{ name: 'NIXYARD_REDIS_URL', value: redis.url }, ...ttl];
  return [
    {
      name: 'NIXYARD_REDIS_URL',
      valueFrom: { secretKeyRef: { name: redis.secretName, key: redis.secretKey } },
    },
    ...ttl,
  ];
}

export function desiredJob(
  nb: NixBuild,
  pool: PoolConfig,
  settings: JobSettings,
  attempt: AttemptSettings,
): V1Job {
  const { metadata, spec } = nb;
  if (metadata.uid === undefined || metadata.namespace === undefined) {
    throw new OperatorError(
      OperatorErrorCode.API_ERROR,
      `NixBuild ${metadata.name} has no uid or namespace`,
      {
        name: metadata.name,
      },
    );
  }
  const arch = archOfSystem(spec.system);
  if (arch === undefined || !pool.systems.includes(spec.system)) {
    throw new OperatorError(
      OperatorErrorCode.CONFIG_INVALID,
      `pool ${pool.name} does not build ${spec.system}`,
      {
        pool: pool.name,
        system: spec.system,
      },
    );
  }
  const { hashPart } = parseDrvPath(spec.drvPath);
  const labels = {
    [Label.name]: 'nixyard',
    [Label.component]: 'build',
    [Label.managedBy]: MANAGER,
    [Label.nixBuild]: metadata.name,
    [Label.drvHash]: hashPart,
    [Label.system]: spec.system,
    [Label.pool]: pool.name,
    [Label.attempt]: String(attempt.number),
  };
  const annotations = { [Annotation.drvPath]: spec.drvPath };
  const resources = buildResources(nb, pool, attempt.memoryLimit);
  const cpu = parseQuantity(resources.limits.cpu ?? resources.requests.cpu ?? 0) ?? 0;

  const timeout = spec.timeoutSeconds ?? 0;
  const silent = spec.maxSilentTimeSeconds ?? 0;
  const command = [
    'nixyard',
    'build-drv',
    spec.drvPath,
    '--data-dir',
    spec.check ? `${settings.storeMountPath}/${spec.check.dataDir}` : settings.storeMountPath,
    ...(cpu > 0 ? ['--cores', String(Math.max(1, Math.ceil(cpu)))] : []),
    ...(timeout > 0 ? ['--timeout', String(timeout)] : []),
    ...(silent > 0 ? ['--max-silent-time', String(silent)] : []),
    // The CRD's pattern keeps it inside the volume.
    ...(spec.derivationFile
      ? ['--derivation-file', `${settings.storeMountPath}/${spec.derivationFile}`]
      : []),
  ];

  const container: V1Container = {
    name: BUILD_CONTAINER,
    image: settings.image,
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    command,
    env: [
      { name: 'NIXYARD_DATA_DIR', value: settings.storeMountPath },
      // A check registers in its scratch store only, never in the shared index.
      ...(spec.check ? [] : redisEnv(settings.redis, settings.redisTtlSeconds)),
      { name: 'TMPDIR', value: '/tmp' },
    ],
    resources,
    securityContext: pool.securityContext ?? structuredClone(DEFAULT_SANDBOX.securityContext),
    // On failure the last log lines (with build-drv's "error: …") become the termination message.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    volumeMounts: [
      { name: 'store', mountPath: settings.storeMountPath },
      { name: 'build-dir', mountPath: '/tmp' },
    ],
  };

  const volumes: V1Volume[] = [
    { name: 'store', persistentVolumeClaim: { claimName: settings.storeClaim } },
    { name: 'build-dir', emptyDir: pool.buildDirSizeLimit ? { sizeLimit: pool.buildDirSizeLimit } : {} },
  ];

  const podSpec: V1PodSpec = {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 30,
    nodeSelector: { ...pool.nodeSelector, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': arch },
    ...(pool.tolerations.length ? { tolerations: structuredClone([...pool.tolerations]) } : {}),
    ...(pool.affinity ? { affinity: structuredClone(pool.affinity) } : {}),
    ...(pool.runtimeClassName ? { runtimeClassName: pool.runtimeClassName } : {}),
    ...(pool.priorityClassName ? { priorityClassName: pool.priorityClassName } : {}),
    hostUsers: pool.hostUsers ?? (pool.securityContext ? true : DEFAULT_SANDBOX.hostUsers),
    securityContext: pool.podSecurityContext ?? structuredClone(DEFAULT_SANDBOX.podSecurityContext),
    ...(settings.imagePullSecrets?.length
      ? { imagePullSecrets: settings.imagePullSecrets.map((name) => ({ name })) }
      : {}),
    containers: [container],
    volumes,
  };
  if (podSpec.hostUsers === true) delete podSpec.hostUsers;

  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: jobName(metadata.name, attempt.number),
      namespace: metadata.namespace,
      labels,
      annotations,
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: metadata.name,
          uid: metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      // Retrying is the operator's decision: infrastructure failures only (failure.ts).
      backoffLimit: 0,
      podFailurePolicy: {
        rules: [
          {
            action: 'FailJob',
            onExitCodes: {
              containerName: BUILD_CONTAINER,
              operator: 'In',
              values: [...BUILD_FAILURE_EXIT_CODES],
            },
          },
          // Fail at once and say why, so an eviction is recognisable after the Pod is gone.
          { action: 'FailJob', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      ...(timeout > 0 ? { activeDeadlineSeconds: timeout + DEADLINE_SLACK_SECONDS } : {}),
      // ttlSecondsAfterFinished is set once the result is in the NixBuild's status (ttlPatch).
      template: {
        metadata: {
          labels: { ...pool.podLabels, ...labels },
          annotations: { ...pool.podAnnotations, ...annotations },
        },
        spec: podSpec,
      },
    },
  };
}

/**
 * Set after the NixBuild's status holds the result, so that the Job (and the Pod with its
 * log) cannot be collected before the operator has read them, however long it was away.
 */
export function ttlPatch(ttlSecondsAfterFinished: number): { spec: { ttlSecondsAfterFinished: number } } {
  return { spec: { ttlSecondsAfterFinished } };
}
