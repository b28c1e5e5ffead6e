/**
 * The operator process: HTTP (probes, metrics) at once; with the Lease (or without
 * leader election), watches on NixBuilds and on the Jobs and Pods it made, feeding a
 * per-NixBuild work queue that runs the Reconciler. The Jobs' and Pods' watches are
 * also the Reconciler's caches, indexed by the NixBuild label: a reconcile lists nothing.
 */
import * as k8s from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import type { OperatorConfig } from './config.js';
import { loadPoolsFile } from './config.js';
import { OperatorError, OperatorErrorCode } from './errors.js';
import { createOperatorHttpServer } from './http.js';
import { LeaderElector } from './leader.js';
import { OperatorMetrics } from './metrics.js';
import type { PoolConfig } from './pools.js';
import { WorkQueue } from './queue.js';
import { Reconciler, statusCode, type BuildCache } from './reconciler.js';
import { GROUP, Label, MANAGER, PLURAL, VERSION, type NixBuild } from './types.js';
import { ResilientWatch } from './watch.js';

/** A NixBuild as the informer holds it (only what the metrics read). */
type WatchedNixBuild = k8s.KubernetesObject & Partial<Pick<NixBuild, 'spec' | 'status'>>;

export interface OperatorDeps {
  readonly kubeConfig: k8s.KubeConfig;
  readonly log?: Logger;
  readonly metrics?: OperatorMetrics;
  /** Pools given directly instead of read from config.poolsFile (tests). */
  readonly pools?: readonly PoolConfig[];
  /** Called when the Lease is lost: the process should exit (default: exit 1). */
  readonly onLostLeadership?: () => void;
}

export interface RunningOperator {
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly queue: WorkQueue;
  /** The HTTP address actually bound (port 0 picks one). */
  readonly httpAddress: string;
  close(): Promise<void>;
}

export async function startOperator(config: OperatorConfig, deps: OperatorDeps): Promise<RunningOperator> {
  const log = deps.log ?? pino({ level: config.logLevel, base: { component: 'operator' } });
  const metrics = deps.metrics ?? new OperatorMetrics();
  const pools = deps.pools ?? (await loadPoolsFile(config.poolsFile));
  const { kubeConfig } = deps;
  const ns = config.namespace;
  const custom = kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  const batch = kubeConfig.makeApiClient(k8s.BatchV1Api);
  const core = kubeConfig.makeApiClient(k8s.CoreV1Api);

  const listNixBuilds = async () =>
    (await custom.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
    })) as k8s.KubernetesListObject<WatchedNixBuild>;
  try {
    await listNixBuilds();
  } catch (e) {
    if (statusCode(e) === 404)
      throw new OperatorError(
        OperatorErrorCode.CRD_MISSING,
        `the NixBuild CRD is not installed: kubectl apply --server-side -f crds/nixbuilds.nixyard.dev.yaml`,
        { namespace: ns },
      );
    throw e;
  }

  // The Job and Pod watches below; a reconcile waits until both have listed.
  const cache: BuildCache = {
    jobs: (name) => jobs.byIndex(name),
    pods: (name) => pods.byIndex(name),
    waitForSync: async () => {
      await jobs.waitForSync();
      await pods.waitForSync();
    },
  };
  const reconciler = new Reconciler({
    kubeConfig,
    cache,
    namespace: ns,
    policy: {
      pools,
      job: config.job,
      maxAttempts: config.maxAttempts,
      ttlSecondsAfterFinished: config.ttlSecondsAfterFinished,
    },
    metrics,
    log,
    identity: config.leaderElection.identity,
  });
  const queue = new WorkQueue(
    async (name) => {
      const end = metrics.reconcileDuration.startTimer();
      try {
        const result = await reconciler.reconcile(name);
        metrics.reconciles.inc({ result: result.requeueAfterMs === 0 ? 'requeue' : 'success' });
        return result;
      } catch (e) {
        metrics.reconciles.inc({ result: 'error' });
        throw e;
      } finally {
        end();
      }
    },
    { onDepth: (d) => metrics.queueDepth.set(d), concurrency: config.concurrency },
    (name, err) =>
      log.warn({ nixbuild: name, error: String(err) }, 'reconcile failed; retrying with backoff'),
  );

  const relistMs = config.relistSeconds * 1000;
  const restarted = (resource: string) => (reason: string, err?: unknown) => {
    metrics.watchRestarts.inc({ resource });
    if (reason === 'error') log.warn({ resource, error: String(err) }, 'watch failed; restarting');
  };
  const selector = `${Label.managedBy}=${MANAGER}`;
  const owner = (o: k8s.KubernetesObject) => o.metadata?.labels?.[Label.nixBuild];
  const nixBuilds = new ResilientWatch<WatchedNixBuild>({
    kubeConfig,
    path: `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`,
    list: listNixBuilds,
    onObject: (o) => {
      if (o.metadata?.name) queue.add(o.metadata.name);
    },
    relistMs,
    onRestart: restarted('nixbuilds'),
  });
  const jobs = new ResilientWatch<k8s.V1Job>({
    kubeConfig,
    path: `/apis/batch/v1/namespaces/${ns}/jobs`,
    list: () => batch.listNamespacedJob({ namespace: ns, labelSelector: selector }),
    labelSelector: selector,
    indexBy: owner,
    onObject: (o) => {
      const name = owner(o);
      if (name) queue.add(name);
    },
    relistMs,
    onRestart: restarted('jobs'),
  });
  const pods = new ResilientWatch<k8s.V1Pod>({
    kubeConfig,
    path: `/api/v1/namespaces/${ns}/pods`,
    list: () => core.listNamespacedPod({ namespace: ns, labelSelector: selector }),
    labelSelector: selector,
    indexBy: owner,
    onObject: (o) => {
      const name = owner(o);
      if (name) queue.add(name);
    },
    relistMs,
    onRestart: restarted('pods'),
  });
  const watches = [nixBuilds, jobs, pods];
  const buildsGauge = setInterval(() => {
    metrics.setBuilds(nixBuilds.list().map((b) => ({ phase: b.status?.phase, system: b.spec?.system })));
  }, 5000);
  buildsGauge.unref();

  let leading = !config.leaderElection.enabled;
  const startWork = async () => {
    await Promise.all(watches.map((w) => w.start()));
    log.info({ namespace: ns, pools: pools.map((p) => p.name) }, 'watching NixBuilds');
  };
  const elector = config.leaderElection.enabled
    ? new LeaderElector(kubeConfig.makeApiClient(k8s.CoordinationV1Api), config.leaderElection, {
        onStartedLeading: () => {
          leading = true;
          metrics.isLeader.set(1);
          void startWork();
        },
        onStoppedLeading: () => {
          leading = false;
          metrics.isLeader.set(0);
          void Promise.all([...watches.map((w) => w.stop()), queue.close()]).then(
            deps.onLostLeadership ??
              (() => {
                log.error('lost the leader Lease; exiting so that a fresh replica takes over');
                process.exit(1);
              }),
          );
        },
        log: (message, fields) => log.info(fields ?? {}, message),
      })
    : undefined;

  const http = createOperatorHttpServer({
    metrics,
    healthy: () => true,
    ready: () => !leading || watches.every((w) => w.hasSynced),
  });
  const httpAddress = await http.listen({ host: config.metrics.host, port: config.metrics.port });

  if (elector) elector.start();
  else {
    metrics.isLeader.set(1);
    await startWork();
  }

  return {
    log,
    metrics,
    queue,
    httpAddress,
    async close() {
      clearInterval(buildsGauge);
      await Promise.all(watches.map((w) => w.stop()));
      await queue.close();
      await elector?.stop();
      await http.close();
    },
  };
}
