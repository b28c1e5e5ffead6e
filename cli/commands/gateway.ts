import type { BuildService } from '../../gateway/builds/service.js';
import { configHelp, loadGatewayConfig, type GatewayConfig } from '../../gateway/config.js';
import { startGateway } from '../../gateway/gateway.js';
import { localBuilds, storeHandlers } from '../../gateway/handlers.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { LocalStore } from '../../store/local-store.js';
import type { Command } from '../command.js';

const STALE_STAGING_MS = 6 * 3600 * 1000;

const usage = `Usage: nixyard gateway [options]

Runs the Nixyard gateway on this machine (the embedded default): an SSH server that
Nix clients use as a store, over ssh-ng:// (nix-daemon --stdio) and ssh://
(nix-store --serve). Stops on SIGINT or SIGTERM.

Options (flags win over environment variables):
${configHelp()}
`;

export const gatewayCommand: Command = {
  name: 'gateway',
  usage,
  async run(argv) {
    const config = loadGatewayConfig(argv);
    // With Redis the index is shared: rebuild it only if no one has since Redis lost it.
    // Cluster-only modules (Redis, the Kubernetes client) load only when configured.
    const redis =
      config.redisUrl === undefined
        ? undefined
        : await (await import('../../store/redis-index.js')).RedisPathIndex.connect(config.redisUrl);
    // …and so are locks, sessions, temp roots and the GC lock, shared with the other replicas.
    const coordination =
      redis && config.redisUrl !== undefined
        ? (await import('../../store/redis-coordination.js')).redisCoordination(redis.client, {
            url: config.redisUrl,
            prefix: redis.prefix,
            ttlMs: (config.redisTtl ?? 30) * 1000,
          })
        : undefined;
    const store = await LocalStore.open({
      dataDir: config.dataDir,
      // With a shared index, other replicas and build pods stage on this volume too:
      // remove only leftovers nobody has touched for hours.
      cleanStaging: redis ? { olderThanMs: STALE_STAGING_MS } : true,
      ...(redis ? { index: redis, reindex: !(await redis.isPopulated()) } : {}),
      ...(coordination ? { coordination } : {}),
    });
    const metrics = new GatewayMetrics();
    const builds = config.kubernetes
      ? await clusterBuilds(store, config, config.kubernetes)
      : localBuilds(store, config);
    const gateway = await startGateway(config, {
      handlers: storeHandlers(store, config, metrics, builds),
      metrics,
    });
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        gateway.log.info({ signal }, 'stopping');
        void Promise.all([gateway.close(), builds.close()])
          .then(() => redis?.close())
          .then(() => resolve());
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  },
};

/** Cluster mode: kubeconfig from KUBECONFIG, ~/.kube/config or the pod's service account. */
async function clusterBuilds(
  store: LocalStore,
  config: GatewayConfig,
  cluster: { readonly namespace: string | undefined },
): Promise<BuildService> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { kubernetesBuilds } = await import('../../gateway/builds/kubernetes-scheduler.js');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const namespace =
    cluster.namespace ?? kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ?? 'default';
  return kubernetesBuilds(
    store,
    { timeout: config.buildTimeout, maxSilentTime: config.maxSilentTime },
    { kubeConfig, namespace },
  );
}
