/**
 * Nixyard on the simulated cluster, whole: the simulated API server with an amd64 and an
 * arm64 node, the NixBuild CRD, the real operator (in this process) and a cluster-mode
 * gateway on loopback that the real nix reaches over the real OpenSSH client. Build pods
 * run the real `nixyard build-drv` (dist/) as local processes of the sim kubelet, with
 * the store PVC mapped to the gateway's data directory. The index is shared in a real
 * `redis-server` on loopback (test/store/redis-support.ts): the gateway's store opens
 * with it, and the operator gives build pods its URL (`NIXYARD_REDIS_URL`), so they
 * register their outputs on the volume and in Redis, as in a real cluster.
 *
 * `npm run sim` (test/sim/run.ts) and test/e2e/cluster.test.ts start it.
 *
 * aarch64: the runner builds only the machine's own system. The sim kubelet emulates each
 * node's CPU for the Node processes of its pods (test/sim/kubelet/kubelet.ts, "CPU
 * architecture"): build-drv on the arm64 node sees an arm64 CPU, so an `aarch64-linux`
 * derivation whose builder is this machine's (x86-64) busybox builds there; on the amd64
 * node it is refused as on a real node.
 */
import * as k8s from '@kubernetes/client-node';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { parseAllDocuments } from 'yaml';
import type { BuildService } from '../../gateway/builds/service.js';
import { kubernetesBuilds } from '../../gateway/builds/kubernetes-scheduler.js';
import { redisCoordination } from '../../store/redis-coordination.js';
import { storeHandlers } from '../../gateway/handlers.js';
import { loadOperatorConfig } from '../../operator/config.js';
import { startOperator, type RunningOperator } from '../../operator/operator.js';
import type { PoolConfig } from '../../operator/pools.js';
import { LocalStore } from '../../store/local-store.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import { startSimCluster, type SimCluster } from '../sim/cluster.js';
import { startRedis, type RedisServer } from '../store/redis-support.js';
import { startGatewayHarness, type GatewayHarness } from '../support/gateway-harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '../..');
export const CRD_FILE = join(REPO_ROOT, 'crds', 'nixbuilds.nixyard.dev.yaml');
export const NIXYARD_MAIN = join(REPO_ROOT, 'dist', 'cli', 'main.js');
/** How often the gateway looks for NixBuilds only dead sessions want (production: a minute). */
export const ABANDONED_CHECK_MS = 500;

export const POOLS: readonly PoolConfig[] = [
  {
    name: 'amd64',
    systems: ['x86_64-linux'],
    features: ['big-parallel', 'benchmark', 'nixos-test', 'kvm'],
    nodeSelector: {},
    tolerations: [],
    resources: { requests: { cpu: '1', memory: '1Gi' } },
    podLabels: {},
    podAnnotations: {},
  },
  {
    name: 'arm64',
    systems: ['aarch64-linux'],
    features: [],
    nodeSelector: {},
    tolerations: [],
    resources: { requests: { cpu: '1', memory: '1Gi' } },
    podLabels: {},
    podAnnotations: {},
  },
];

export interface NixyardSim {
  readonly cluster: SimCluster;
  readonly operator: RunningOperator;
  readonly gateway: GatewayHarness;
  readonly store: LocalStore;
  /** The `redis-server` holding the index the gateway and the build pods share. */
  readonly redis: RedisServer;
  /** The gateway store's index (in `redis`). */
  readonly index: RedisPathIndex;
  readonly builds: BuildService;
  readonly namespace: string;
  readonly kubeConfig: k8s.KubeConfig;
  readonly kubeconfigPath: string;
  /** ssh-ng://gateway, with `env.NIX_SSHOPTS` pointing at the harness's ssh_config. */
  readonly storeUrl: string;
  readonly env: NodeJS.ProcessEnv;
  /** Starts another gateway replica on the same store volume and Redis (closed with the sim). */
  addGateway(): Promise<ClusterGateway>;
  close(): Promise<void>;
}

/** One cluster-mode gateway replica of the sim. */
export interface ClusterGateway {
  readonly gateway: GatewayHarness;
  readonly store: LocalStore;
  readonly builds: BuildService;
  readonly index: RedisPathIndex;
  readonly storeUrl: string;
  readonly env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export interface NixyardSimOptions {
  readonly namespace?: string;
  readonly log?: Logger;
  /** Fixed API server port (default: any). */
  readonly port?: number;
  readonly kubeconfigPath?: string;
}

export async function startNixyardSim(options: NixyardSimOptions = {}): Promise<NixyardSim> {
  const namespace = options.namespace ?? 'nixyard';
  const log = options.log ?? pino({ level: process.env.NIXYARD_TEST_LOG ?? 'silent' });
  // The store volume. Not under /tmp: the sim kubelet rewrites mount paths in argv one
  // after another, so the build pod's /tmp (its build-dir emptyDir) would be rewritten
  // again inside a store path under /tmp.
  const volumes = await mkdtemp(join('/var/tmp', 'nixyard-sim-'));
  const dataDir = join(volumes, 'store');
  // The shared index. Its URL is loopback: build pods are local processes.
  const redis = await startRedis();
  // Every container's environment.
  const baseEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
  };
  const cluster = await startSimCluster({
    namespaces: [namespace],
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.kubeconfigPath !== undefined ? { kubeconfigPath: options.kubeconfigPath } : {}),
    volumeMap: (v) => {
      if (v.kind !== 'persistentVolumeClaim' || v.source !== 'nixyard-store')
        throw new Error(`no local directory for ${v.kind} ${v.source}`);
      return dataDir;
    },
    commands: { nixyard: [process.execPath, NIXYARD_MAIN] },
    baseEnv,
  });
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromFile(cluster.kubeconfigPath);
  const ext = kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
  const [crd] = parseAllDocuments(await readFile(CRD_FILE, 'utf8')).map((d) => d.toJS() as object);
  await ext.createCustomResourceDefinition({
    body: k8s.loadYaml<k8s.V1CustomResourceDefinition>(JSON.stringify(crd)),
  });

  const operatorConfig = loadOperatorConfig(
    [
      `--namespace=${namespace}`,
      '--image=ghcr.io/nixyard/nixyard:sim',
      '--metrics-listen=127.0.0.1:0',
      '--leader-election=false',
      '--relist-interval=30',
      `--redis-url=${redis.url}`,
      // The output locks of a killed build pod (OOM) free after 5 s instead of 30, so
      // its retry need not wait long for them.
      '--redis-ttl=5',
    ],
    { POD_NAME: 'nixyard-operator-0' },
  );
  const operator = await startOperator(operatorConfig, {
    kubeConfig,
    pools: [...POOLS],
    log: log.child({ component: 'operator' }),
  });

  /** A cluster-mode gateway replica: its own store instance and Redis connection, one data dir. */
  const startReplica = async (): Promise<ClusterGateway> => {
    const replicaIndex = await RedisPathIndex.connect(redis.url);
    let replicaStore: LocalStore | undefined;
    let replicaBuilds: BuildService | undefined;
    const harness = await startGatewayHarness(
      (config, metrics) => {
        if (!replicaStore) throw new Error('store not opened');
        replicaBuilds = kubernetesBuilds(
          replicaStore,
          { timeout: config.buildTimeout, maxSilentTime: config.maxSilentTime },
          {
            kubeConfig,
            namespace,
            log: log.child({ component: 'kubernetes-scheduler' }),
            abandonedCheckMs: ABANDONED_CHECK_MS,
          },
        );
        return storeHandlers(replicaStore, config, metrics, replicaBuilds);
      },
      ['--kubernetes', '--namespace', namespace, '--redis-url', redis.url],
      async () => {
        // As `nixyard gateway` opens it: rebuild the index only if Redis lost it; locks,
        // sessions and temp roots in Redis too.
        const coordination = redisCoordination(replicaIndex.client, {
          url: redis.url,
          prefix: replicaIndex.prefix,
        });
        replicaStore = await LocalStore.open({
          dataDir,
          index: replicaIndex,
          coordination,
          cleanStaging: false,
          reindex: !(await replicaIndex.isPopulated()),
        });
      },
    );
    if (!replicaStore || !replicaBuilds) throw new Error('gateway not started');
    const opened = { store: replicaStore, builds: replicaBuilds };
    return {
      gateway: harness,
      store: opened.store,
      builds: opened.builds,
      index: replicaIndex,
      storeUrl: harness.storeUrl,
      env: harness.env,
      async close() {
        await opened.builds.close();
        await harness.stop();
        await replicaIndex.close();
      },
    };
  };
  const first = await startReplica();
  const more: ClusterGateway[] = [];
  const gateway = first.gateway;
  const index = first.index;
  const openedStore = first.store;
  const openedBuilds = first.builds;
  return {
    cluster,
    operator,
    gateway,
    store: openedStore,
    redis,
    index,
    builds: openedBuilds,
    namespace,
    kubeConfig,
    kubeconfigPath: cluster.kubeconfigPath,
    storeUrl: gateway.storeUrl,
    env: gateway.env,
    async addGateway() {
      const replica = await startReplica();
      more.push(replica);
      return replica;
    },
    async close() {
      for (const r of more) await r.close();
      await first.close();
      await operator.close();
      await cluster.close();
      await redis.stop();
      await rm(volumes, { recursive: true, force: true });
    },
  };
}
