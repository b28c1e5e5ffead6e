/**
 * Operator configuration: flags win over environment variables, which win over defaults.
 * The Helm chart (charts/nixyard/templates/deployment-operator.yaml) relies on these names.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { OperatorError, OperatorErrorCode } from './errors.js';
import type { JobSettings, RedisSettings } from './job-builder.js';
import { parsePools, type PoolConfig } from './pools.js';

export interface OperatorConfig {
  /** Where NixBuilds and their Jobs live (the operator watches this namespace only). */
  readonly namespace: string;
  readonly poolsFile: string;
  readonly job: JobSettings;
  readonly metrics: { readonly host: string; readonly port: number };
  readonly maxAttempts: number;
  /** NixBuilds reconciled at once. */
  readonly concurrency: number;
  readonly ttlSecondsAfterFinished: number;
  readonly leaderElection: {
    readonly enabled: boolean;
    readonly namespace: string;
    readonly name: string;
    readonly identity: string;
  };
  /** Seconds between full relists of NixBuilds, Jobs and Pods (a watch can hang silently). */
  readonly relistSeconds: number;
  readonly logLevel: string;
}

interface Setting {
  readonly flag: string;
  readonly env: string;
  readonly help: string;
  readonly default: string;
}

const SETTINGS = {
  namespace: {
    flag: 'namespace',
    env: 'NIXYARD_NAMESPACE',
    help: 'namespace of the NixBuilds and build Jobs',
    default: 'default',
  },
  poolsFile: {
    flag: 'pools-file',
    env: 'NIXYARD_POOLS_FILE',
    help: 'JSON list of node pools (Helm values `pools`)',
    default: '/etc/nixyard/pools.json',
  },
  storeClaim: {
    flag: 'store-claim',
    env: 'NIXYARD_STORE_CLAIM',
    help: 'PersistentVolumeClaim of the shared store, mounted in build pods',
    default: 'nixyard-store',
  },
  storeMountPath: {
    flag: 'store-mount-path',
    env: 'NIXYARD_STORE_MOUNT_PATH',
    help: 'where build pods mount the store (their --data-dir)',
    default: '/var/lib/nixyard',
  },
  redisUrl: {
    flag: 'redis-url',
    env: 'NIXYARD_REDIS_URL',
    help: 'Redis URL given to build pods (redis://host:6379/0)',
    default: '',
  },
  redisTtl: {
    flag: 'redis-ttl',
    env: 'NIXYARD_REDIS_TTL',
    help: "seconds a killed build pod's output locks outlive it in Redis (build-drv's default: 30)",
    default: '',
  },
  redisSecret: {
    flag: 'redis-secret',
    env: 'NIXYARD_REDIS_SECRET',
    help: 'or SECRET:KEY: build pods read the Redis URL from that Secret',
    default: '',
  },
  image: {
    flag: 'image',
    env: 'NIXYARD_IMAGE',
    help: 'image of the build pods (runs nixyard build-drv)',
    default: '',
  },
  imagePullPolicy: {
    flag: 'image-pull-policy',
    env: 'NIXYARD_IMAGE_PULL_POLICY',
    help: 'Always, IfNotPresent or Never (empty: the cluster default)',
    default: '',
  },
  imagePullSecrets: {
    flag: 'image-pull-secrets',
    env: 'NIXYARD_IMAGE_PULL_SECRETS',
    help: 'comma-separated Secrets for pulling the build image',
    default: '',
  },
  metricsListen: {
    flag: 'metrics-listen',
    env: 'NIXYARD_METRICS_LISTEN',
    help: 'HTTP address of /healthz, /readyz and /metrics, HOST:PORT',
    default: '0.0.0.0:8081',
  },
  concurrency: {
    flag: 'concurrency',
    env: 'NIXYARD_RECONCILE_CONCURRENCY',
    help: 'NixBuilds reconciled at once (each reconcile waits on a few API calls)',
    default: '16',
  },
  maxAttempts: {
    flag: 'max-attempts',
    env: 'NIXYARD_MAX_ATTEMPTS',
    help: 'build pods per derivation at most (retries of infrastructure failures)',
    default: '3',
  },
  ttlAfterFinished: {
    flag: 'ttl-after-finished',
    env: 'NIXYARD_TTL_AFTER_FINISHED',
    help: 'seconds a finished Job stays once its result is recorded',
    default: '3600',
  },
  leaderElection: {
    flag: 'leader-election',
    env: 'NIXYARD_LEADER_ELECTION',
    help: 'true: take a Lease before reconciling (several replicas are safe)',
    default: 'true',
  },
  leaseNamespace: {
    flag: 'lease-namespace',
    env: 'NIXYARD_LEASE_NAMESPACE',
    help: 'namespace of the leader Lease (default: --namespace)',
    default: '',
  },
  leaseName: {
    flag: 'lease-name',
    env: 'NIXYARD_LEASE_NAME',
    help: 'name of the leader Lease',
    default: 'nixyard-operator',
  },
  relistInterval: {
    flag: 'relist-interval',
    env: 'NIXYARD_RELIST_INTERVAL',
    help: 'seconds between full relists',
    default: '300',
  },
  logLevel: {
    flag: 'log-level',
    env: 'NIXYARD_LOG_LEVEL',
    help: 'trace, debug, info, warn or error',
    default: 'info',
  },
} satisfies Record<string, Setting>;

export function operatorConfigHelp(): string {
  return Object.values(SETTINGS)
    .map(
      (s: Setting) =>
        `  --${s.flag} VALUE`.padEnd(34) +
        `${s.help}\n${' '.repeat(34)}env ${s.env}` +
        (s.default ? `, default ${s.default}` : ''),
    )
    .join('\n');
}

function invalid(setting: string, message: string): never {
  throw new OperatorError(OperatorErrorCode.CONFIG_INVALID, `--${setting} ${message}`, { setting });
}

function int(setting: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    invalid(setting, `must be an integer from ${min} to ${max}, got '${value}'`);
  return n;
}

function listen(setting: string, value: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(value);
  if (!m) invalid(setting, `must be HOST:PORT, got '${value}'`);
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, '') || '0.0.0.0', port: int(setting, m[2]!, 0, 65535) };
}

export function loadOperatorConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): OperatorConfig {
  const options = Object.fromEntries(
    Object.values(SETTINGS).map((s: Setting) => [s.flag, { type: 'string' as const }]),
  );
  const { values } = parseArgs({ args: [...argv], options, allowPositionals: false });
  const get = (s: Setting): string => {
    const v = values[s.flag];
    return typeof v === 'string' ? v : (env[s.env] ?? s.default);
  };
  const image = get(SETTINGS.image);
  if (!image) invalid('image', 'is required: the image of the build pods');
  const pullPolicy = get(SETTINGS.imagePullPolicy);
  if (pullPolicy && !['Always', 'IfNotPresent', 'Never'].includes(pullPolicy))
    invalid('image-pull-policy', `must be Always, IfNotPresent or Never, got '${pullPolicy}'`);
  const url = get(SETTINGS.redisUrl);
  const secret = get(SETTINGS.redisSecret);
  if (url && secret) invalid('redis-secret', 'and --redis-url exclude each other');
  let redis: RedisSettings;
  if (url) {
    if (!/^rediss?:\/\//.test(url)) invalid('redis-url', `must start with redis:// or rediss://`);
    redis = { url };
  } else if (secret) {
    const m = /^([a-z0-9][-a-z0-9.]*):([-._a-zA-Z0-9]+)$/.exec(secret);
    if (!m) invalid('redis-secret', `must be SECRET:KEY, got '${secret}'`);
    redis = { secretName: m[1]!, secretKey: m[2]! };
  }
  const leader = get(SETTINGS.leaderElection);
  if (leader !== 'true' && leader !== 'false')
    invalid('leader-election', `must be true or false, got '${leader}'`);
  const namespace = get(SETTINGS.namespace);
  const pullSecrets = get(SETTINGS.imagePullSecrets)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    namespace,
    poolsFile: get(SETTINGS.poolsFile),
    job: {
      image,
      ...(pullPolicy ? { imagePullPolicy: pullPolicy as JobSettings['imagePullPolicy'] } : {}),
      ...(pullSecrets.length ? { imagePullSecrets: pullSecrets } : {}),
      storeClaim: get(SETTINGS.storeClaim),
      storeMountPath: get(SETTINGS.storeMountPath),
      redis,
      ...(get(SETTINGS.redisTtl)
        ? { redisTtlSeconds: int('redis-ttl', get(SETTINGS.redisTtl), 1, 86_400) }
        : {}),
    },
    metrics: listen('metrics-listen', get(SETTINGS.metricsListen)),
    maxAttempts: int('max-attempts', get(SETTINGS.maxAttempts), 1, 99),
    concurrency: int('concurrency', get(SETTINGS.concurrency), 1, 1000),
    ttlSecondsAfterFinished: int('ttl-after-finished', get(SETTINGS.ttlAfterFinished), 0),
    leaderElection: {
      enabled: leader === 'true',
      namespace: get(SETTINGS.leaseNamespace) || namespace,
      name: get(SETTINGS.leaseName),
      identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
    },
    relistSeconds: int('relist-interval', get(SETTINGS.relistInterval), 1),
    logLevel: get(SETTINGS.logLevel),
  };
}

export async function loadPoolsFile(path: string): Promise<PoolConfig[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new OperatorError(
      OperatorErrorCode.POOLS_INVALID,
      `cannot read the pools file ${path}: ${String(e)}`,
      { path },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new OperatorError(
      OperatorErrorCode.POOLS_INVALID,
      `the pools file ${path} is not JSON: ${String(e)}`,
      { path },
    );
  }
  return parsePools(doc);
}
