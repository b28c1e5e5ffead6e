/**
 * Gateway configuration: flags win over environment variables, which win over defaults.
 * Scripts and the Helm chart rely on these flag names.
 */
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GatewayError, GatewayErrorCode } from './errors.js';

export interface GatewayConfig {
  readonly dataDir: string;
  readonly listenHost: string;
  readonly listenPort: number;
  /** fastify health and metrics endpoint; undefined = off. */
  readonly http: { readonly host: string; readonly port: number } | undefined;
  readonly authorizedKeysFile: string;
  readonly hostKeyFile: string;
  readonly maxNarSize: number;
  readonly maxPathsPerRequest: number;
  readonly maxSessionsPerKey: number;
  readonly logLevel: string;
  /** Derivations built at once (Nix's max-jobs). */
  readonly maxJobs: number;
  /** NIX_BUILD_CORES of each build; 0 = all cores. */
  readonly cores: number;
  /** Seconds a build may run / stay silent; 0 = no limit. */
  readonly buildTimeout: number;
  readonly maxSilentTime: number;
  /** `name:base64` Ed25519 keys whose signatures make an uploaded path acceptable. */
  readonly trustedPublicKeys: readonly string[];
  /**
   * Cluster mode: builds become NixBuild objects (kubeconfig from KUBECONFIG, ~/.kube/config
   * or the pod's service account); undefined = the embedded default (local children).
   * `namespace` undefined: the kubeconfig context's (in a pod: its own).
   */
  readonly kubernetes?: { readonly namespace: string | undefined } | undefined;
  /**
   * The cluster's Redis, holding what replicas and build pods on one volume share: the
   * index, per-path locks, sessions and their temp roots, the GC lock; undefined = in-process.
   */
  readonly redisUrl?: string | undefined;
  /** Seconds a replica's sessions, temp roots and locks outlive it in Redis (renewed every third). */
  readonly redisTtl?: number;
}

interface Setting {
  readonly flag: string;
  readonly env: string;
  readonly help: string;
  readonly default: (dataDir: string) => string;
}

const SETTINGS = {
  dataDir: {
    flag: 'data-dir',
    env: 'NIXYARD_DATA_DIR',
    help: 'where the store, host key and authorized_keys live',
    default: () => (process.env.XDG_DATA_HOME ? join(process.env.XDG_DATA_HOME, 'nixyard') : resolve('data')),
  },
  listen: {
    flag: 'listen',
    env: 'NIXYARD_LISTEN',
    help: 'SSH address, HOST:PORT',
    default: () => '127.0.0.1:2222',
  },
  httpListen: {
    flag: 'http-listen',
    env: 'NIXYARD_HTTP_LISTEN',
    help: 'HTTP address for /healthz, /readyz, /metrics, HOST:PORT (empty: off)',
    default: () => '',
  },
  authorizedKeys: {
    flag: 'authorized-keys',
    env: 'NIXYARD_AUTHORIZED_KEYS',
    help: 'OpenSSH authorized_keys file with permissions="…" options',
    default: (d) => join(d, 'authorized_keys'),
  },
  hostKey: {
    flag: 'host-key',
    env: 'NIXYARD_HOST_KEY',
    help: 'SSH host private key, generated on first start',
    default: (d) => join(d, 'ssh_host_ed25519_key'),
  },
  maxNarSize: {
    flag: 'max-nar-size',
    env: 'NIXYARD_MAX_NAR_SIZE',
    help: 'largest NAR accepted in one upload, bytes',
    default: () => String(64 * 2 ** 30),
  },
  maxPathsPerRequest: {
    flag: 'max-paths-per-request',
    env: 'NIXYARD_MAX_PATHS_PER_REQUEST',
    help: 'most store paths in one request',
    default: () => '1000000',
  },
  maxSessionsPerKey: {
    flag: 'max-sessions-per-key',
    env: 'NIXYARD_MAX_SESSIONS_PER_KEY',
    help: 'most concurrent sessions of one key',
    default: () => '64',
  },
  maxJobs: {
    flag: 'max-jobs',
    env: 'NIXYARD_MAX_JOBS',
    help: 'derivations built at once',
    default: () => String(availableParallelism()),
  },
  cores: {
    flag: 'cores',
    env: 'NIXYARD_CORES',
    help: 'NIX_BUILD_CORES of each build (Nix default: the number of CPUs)',
    default: () => String(availableParallelism()),
  },
  buildTimeout: {
    flag: 'build-timeout',
    env: 'NIXYARD_BUILD_TIMEOUT',
    help: 'seconds a build may take (0: no limit)',
    default: () => '0',
  },
  maxSilentTime: {
    flag: 'max-silent-time',
    env: 'NIXYARD_MAX_SILENT_TIME',
    help: 'seconds a build may print nothing (0: no limit)',
    default: () => '0',
  },
  trustedPublicKeys: {
    flag: 'trusted-public-keys',
    env: 'NIXYARD_TRUSTED_PUBLIC_KEYS',
    help: 'space-separated name:base64 keys; uploads signed by them are accepted',
    default: () => '',
  },
  redisUrl: {
    flag: 'redis-url',
    env: 'NIXYARD_REDIS_URL',
    help: 'Redis shared by replicas and build pods (index, locks, sessions), redis://HOST:PORT/DB (empty: in-process)',
    default: () => '',
  },
  redisTtl: {
    flag: 'redis-ttl',
    env: 'NIXYARD_REDIS_TTL',
    help: "seconds a dead replica's sessions, temp roots and locks stay in Redis (renewed every third while alive)",
    default: () => '30',
  },
  logLevel: {
    flag: 'log-level',
    env: 'NIXYARD_LOG_LEVEL',
    help: 'trace, debug, info, warn or error',
    default: () => 'info',
  },
} satisfies Record<string, Setting>;

export function configHelp(): string {
  const rows = Object.values(SETTINGS).map(
    (s: Setting) =>
      `  --${s.flag} VALUE`.padEnd(34) +
      `${s.help}\n${' '.repeat(34)}env ${s.env}, default ${s.default('$DATA_DIR')}`,
  );
  rows.push(
    `  --kubernetes`.padEnd(34) +
      `build on Kubernetes (NixBuild objects; kubeconfig from KUBECONFIG,\n${' '.repeat(34)}~/.kube/config or in-cluster); env NIXYARD_KUBERNETES=true`,
    `  --namespace NAME`.padEnd(34) +
      `namespace of the NixBuilds (with --kubernetes)\n${' '.repeat(34)}env NIXYARD_NAMESPACE, default the kubeconfig context's`,
  );
  return rows.join('\n');
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new GatewayError(
      GatewayErrorCode.CONFIG_INVALID,
      `--${name} must be a positive integer, got '${value}'`,
      {
        setting: name,
      },
    );
  }
  return n;
}

function nonNegativeInt(name: string, value: string): number {
  return value === '0' ? 0 : positiveInt(name, value);
}

export function parseListen(value: string, setting = 'listen'): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(value);
  if (!m) {
    throw new GatewayError(
      GatewayErrorCode.CONFIG_INVALID,
      `--${setting} must be HOST:PORT, got '${value}'`,
      {
        setting,
      },
    );
  }
  const port = Number(m[2]);
  if (port > 65535) {
    throw new GatewayError(GatewayErrorCode.CONFIG_INVALID, `--${setting} port ${port} is out of range`, {
      setting,
    });
  }
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

export function loadGatewayConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): GatewayConfig {
  const options = {
    ...Object.fromEntries(Object.values(SETTINGS).map((s: Setting) => [s.flag, { type: 'string' as const }])),
    kubernetes: { type: 'boolean' as const },
    namespace: { type: 'string' as const },
  };
  const { values } = parseArgs({ args: [...argv], options, allowPositionals: false });
  const kubernetes =
    values.kubernetes === true || /^(1|true|yes)$/i.test(env.NIXYARD_KUBERNETES ?? '')
      ? { namespace: values.namespace ?? (env.NIXYARD_NAMESPACE || undefined) }
      : undefined;
  const get = (s: Setting, dataDir: string): string => {
    const v = (values as Record<string, string | boolean | undefined>)[s.flag];
    return typeof v === 'string' ? v : (env[s.env] ?? s.default(dataDir));
  };
  const dataDir = resolve(get(SETTINGS.dataDir, ''));
  const { host, port } = parseListen(get(SETTINGS.listen, dataDir));
  const httpListen = get(SETTINGS.httpListen, dataDir);
  return {
    dataDir,
    listenHost: host,
    listenPort: port,
    http: httpListen === '' ? undefined : parseListen(httpListen, 'http-listen'),
    authorizedKeysFile: resolve(get(SETTINGS.authorizedKeys, dataDir)),
    hostKeyFile: resolve(get(SETTINGS.hostKey, dataDir)),
    maxNarSize: positiveInt('max-nar-size', get(SETTINGS.maxNarSize, dataDir)),
    maxPathsPerRequest: positiveInt('max-paths-per-request', get(SETTINGS.maxPathsPerRequest, dataDir)),
    maxSessionsPerKey: positiveInt('max-sessions-per-key', get(SETTINGS.maxSessionsPerKey, dataDir)),
    logLevel: get(SETTINGS.logLevel, dataDir),
    maxJobs: positiveInt('max-jobs', get(SETTINGS.maxJobs, dataDir)),
    cores: nonNegativeInt('cores', get(SETTINGS.cores, dataDir)),
    buildTimeout: nonNegativeInt('build-timeout', get(SETTINGS.buildTimeout, dataDir)),
    maxSilentTime: nonNegativeInt('max-silent-time', get(SETTINGS.maxSilentTime, dataDir)),
    trustedPublicKeys: get(SETTINGS.trustedPublicKeys, dataDir)
      .split(/\s+/)
      .filter((k) => k !== ''),
    kubernetes,
    redisUrl: get(SETTINGS.redisUrl, dataDir) || undefined,
    redisTtl: positiveInt('redis-ttl', get(SETTINGS.redisTtl, dataDir)),
  };
}
