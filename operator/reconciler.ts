/**
 * One reconcile of one NixBuild: read the NixBuild fresh from the API server and its
 * Jobs and Pods from the operator's informer caches (the log tail after success from
 * the API server), ask planReconcile what to do, do it in a crash-safe order (create,
 * then delete, then events, then status, then the TTL of recorded Jobs) and report.
 *
 * The caches may be behind the API server (never ahead), so what they lack is not
 * known to be gone. Where that matters:
 * - No reconcile runs before both caches have listed once (`cache.waitForSync`).
 * - Creating a Job is safe however stale the cache: Job names are deterministic per
 *   attempt, so a create answered 409 means "it exists" and nothing is duplicated.
 * - A Job missing from the cache for the attempt the status (or a newer Job) says is
 *   current would read as "the Job was deleted", and the planner would start the next
 *   attempt: a second Job for a build that may be running. That Job may just be new
 *   (created by the last reconcile, or by a predecessor before it stopped) and not yet
 *   seen by the cache, so its absence is confirmed with a GET by its name first.
 * - Once the current Job has finished, its Pod (exit code, OOM, eviction: the verdict)
 *   is read fresh by name; the Pod cache may trail the Job cache.
 * Anything else a stale cache hides (a Job to delete or to give its TTL) comes back
 * with the Job's own watch event, which enqueues its NixBuild.
 */
import * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { BUILD_CONTAINER, ttlPatch } from './job-builder.js';
import type { OperatorMetrics } from './metrics.js';
import { systemLabel } from './metrics.js';
import { jobName } from './names.js';
import { attemptOf, planReconcile, type BuildEvent, type Policy } from './plan.js';
import { isJobFinished } from './status.js';
import { GROUP, Label, MANAGER, PLURAL, VERSION, type NixBuild, type NixBuildStatus } from './types.js';

/** Where the reconciler reads Jobs and Pods: the operator's informer caches. */
export interface BuildCache {
  /** The cached Jobs labelled with this NixBuild's name (Label.nixBuild), any owner. */
  jobs(nixBuild: string): readonly k8s.V1Job[];
  /** The cached Pods labelled with this NixBuild's name (Label.nixBuild), any attempt. */
  pods(nixBuild: string): readonly k8s.V1Pod[];
  /** Resolves once both caches have listed (at once if they have). */
  waitForSync(): Promise<void>;
}

export interface ReconcilerDeps {
  readonly kubeConfig: k8s.KubeConfig;
  readonly cache: BuildCache;
  readonly namespace: string;
  readonly policy: Policy;
  readonly metrics: OperatorMetrics;
  readonly log: Logger;
  /** Identifies this replica in Events (reportingInstance). */
  readonly identity: string;
  readonly now?: () => Date;
}

export function statusCode(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'number'
    ? e.code
    : undefined;
}

/** Canonical JSON (sorted keys), to tell whether a status changed. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/** Seconds between reconciles of an unfinished build even without events (a safety net). */
export const RESYNC_RUNNING_MS = 60_000;

export class Reconciler {
  private readonly custom: k8s.CustomObjectsApi;
  private readonly batch: k8s.BatchV1Api;
  private readonly core: k8s.CoreV1Api;
  private readonly now: () => Date;

  constructor(private readonly deps: ReconcilerDeps) {
    this.custom = deps.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.batch = deps.kubeConfig.makeApiClient(k8s.BatchV1Api);
    this.core = deps.kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.now = deps.now ?? (() => new Date());
  }

  async reconcile(name: string): Promise<{ requeueAfterMs?: number }> {
    const { namespace, log } = this.deps;
    await this.deps.cache.waitForSync();
    let nb: NixBuild;
    try {
      nb = (await this.custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
      })) as NixBuild;
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      // Deleted: its Jobs go with their Pods (the garbage collector would too, through the
      // ownerReferences; deleting them here does not wait for it and orphans nothing).
      await this.deleteJobs(this.cachedJobs(name, undefined));
      return {};
    }
    if (nb.metadata.deletionTimestamp) {
      await this.deleteJobs(this.cachedJobs(name, nb.metadata.uid));
      return {};
    }

    const jobs = await this.jobsOf(nb);
    const attempts = Math.max(nb.status?.attempts ?? 0, ...jobs.map(attemptOf));
    const current = jobs.find((j) => attemptOf(j) === attempts && !j.metadata?.deletionTimestamp);
    // The log's end has the outputs after a success and Nix's error after a failure.
    const phase = nb.status?.phase;
    const deciding =
      current !== undefined && isJobFinished(current) && phase !== 'Succeeded' && phase !== 'Failed';
    const pod = current ? await this.podOf(name, current, attempts, deciding) : undefined;
    const buildLog = deciding && pod?.metadata?.name ? await this.logTail(pod.metadata.name) : undefined;

    const plan = planReconcile(
      nb,
      { jobs, ...(pod ? { pod } : {}), ...(buildLog !== undefined ? { buildLog } : {}), now: this.now() },
      this.deps.policy,
    );

    if (plan.createJob) {
      try {
        await this.batch.createNamespacedJob({ namespace, body: plan.createJob, fieldManager: MANAGER });
        this.deps.metrics.jobsCreated.inc({
          system: systemLabel(nb.spec.system),
          pool: plan.status.pool ?? 'none',
        });
        log.info({ nixbuild: name, job: plan.createJob.metadata?.name }, 'created Job');
      } catch (e) {
        if (statusCode(e) !== 409) throw e; // 409: created by an earlier reconcile whose status write was lost
      }
    }
    await this.deleteJobs(plan.deleteJobs);
    for (const event of plan.events) await this.emit(nb, event);

    const changed = canonical(plan.status) !== canonical(nb.status ?? {});
    if (changed) {
      try {
        await this.custom.replaceNamespacedCustomObjectStatus({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: PLURAL,
          name,
          body: { ...nb, status: plan.status },
        });
      } catch (e) {
        // 409: the NixBuild changed since it was read; reconcile again with the new one.
        if (statusCode(e) === 409) return { requeueAfterMs: 0 };
        throw e;
      }
      this.count(nb, nb.status, plan.status, plan.events);
    }
    for (const job of plan.ttlJobs) {
      try {
        await this.batch.patchNamespacedJob(
          { name: job, namespace, body: ttlPatch(this.deps.policy.ttlSecondsAfterFinished) },
          mergePatch,
        );
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
    }
    const finished = ['Succeeded', 'Failed', 'Cancelled'].includes(plan.status.phase ?? '');
    return finished ? {} : { requeueAfterMs: RESYNC_RUNNING_MS };
  }

  private count(
    nb: NixBuild,
    before: NixBuildStatus | undefined,
    after: NixBuildStatus,
    events: readonly BuildEvent[],
  ) {
    const system = systemLabel(nb.spec.system);
    if (after.phase !== before?.phase && (after.phase === 'Succeeded' || after.phase === 'Failed'))
      this.deps.metrics.buildsFinished.inc({
        system,
        phase: after.phase,
        reason: after.reason ?? 'BuildSucceeded',
      });
    if (
      (after.attempts ?? 0) > (before?.attempts ?? 0) &&
      (before?.attempts ?? 0) > 0 &&
      before?.phase !== 'Cancelled'
    ) {
      const why = events.find((e) => e.type === 'Warning');
      this.deps.metrics.retries.inc({ reason: why?.reason ?? 'Unknown' });
    }
  }

  /** The cached Jobs of a NixBuild: labelled with its name and, when known, owned by this very object. */
  private cachedJobs(name: string, uid: string | undefined): k8s.V1Job[] {
    return this.deps.cache.jobs(name).filter((j) => uid === undefined || ownedBy(j, uid));
  }

  /**
   * The Jobs of a live NixBuild: the cached ones, plus the current attempt's Job read from
   * the API server when the cache lacks it while the build is still in progress (see the
   * top of this file: the cache may not have seen it yet).
   */
  private async jobsOf(nb: NixBuild): Promise<k8s.V1Job[]> {
    const { name, uid } = nb.metadata;
    const jobs = this.cachedJobs(name, uid);
    const attempts = Math.max(nb.status?.attempts ?? 0, ...jobs.map(attemptOf));
    const phase = nb.status?.phase;
    // Finished or cancelled, the planner starts no attempt because a Job is missing.
    if (attempts === 0 || phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled') return jobs;
    if (jobs.some((j) => attemptOf(j) === attempts)) return jobs;
    try {
      const job = await this.batch.readNamespacedJob({
        name: jobName(name, attempts),
        namespace: this.deps.namespace,
      });
      this.deps.log.debug(
        { nixbuild: name, job: job.metadata?.name },
        'the Job cache is behind; read the Job',
      );
      return uid === undefined || ownedBy(job, uid) ? [...jobs, job] : jobs;
    } catch (e) {
      if (statusCode(e) !== 404) throw e;
      return jobs;
    }
  }

  /**
   * The newest Pod of the Job of an attempt, from the cache; read from the API server when
   * `fresh` (the Job has finished and its Pod says how), by name when the cache knows it.
   */
  private async podOf(
    name: string,
    job: k8s.V1Job,
    attempt: number,
    fresh: boolean,
  ): Promise<k8s.V1Pod | undefined> {
    const ofJob = (pods: readonly k8s.V1Pod[]) =>
      newest(
        pods.filter(
          (p) =>
            p.metadata?.labels?.[Label.attempt] === String(attempt) &&
            (job.metadata?.uid === undefined ||
              !p.metadata?.ownerReferences?.length ||
              ownedBy(p, job.metadata.uid)),
        ),
      );
    const cached = ofJob(this.deps.cache.pods(name));
    if (!fresh) return cached;
    const { namespace } = this.deps;
    if (cached?.metadata?.name) {
      try {
        return await this.core.readNamespacedPod({ name: cached.metadata.name, namespace });
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
    }
    const list = await this.core.listNamespacedPod({
      namespace,
      labelSelector: `${Label.nixBuild}=${name},${Label.attempt}=${attempt}`,
    });
    return ofJob(list.items);
  }

  private async logTail(pod: string): Promise<string | undefined> {
    try {
      return await this.core.readNamespacedPodLog({
        name: pod,
        namespace: this.deps.namespace,
        container: BUILD_CONTAINER,
        tailLines: 64,
      });
    } catch (e) {
      this.deps.log.warn({ pod, error: String(e) }, 'cannot read the build log; outputs stay unknown');
      return undefined;
    }
  }

  private async deleteJobs(jobs: readonly (string | k8s.V1Job)[]): Promise<void> {
    for (const job of jobs) {
      const name = typeof job === 'string' ? job : job.metadata?.name;
      if (!name || (typeof job !== 'string' && job.metadata?.deletionTimestamp)) continue;
      try {
        // Background: the Job's Pods go too (the API's default for Jobs orphans them).
        await this.batch.deleteNamespacedJob({
          name,
          namespace: this.deps.namespace,
          propagationPolicy: 'Background',
        });
        this.deps.log.info({ job: name }, 'deleted Job');
      } catch (e) {
        if (statusCode(e) !== 404) throw e;
      }
    }
  }

  private async emit(nb: NixBuild, event: BuildEvent): Promise<void> {
    const now = this.now();
    const body: k8s.CoreV1Event = {
      metadata: {
        name: `${nb.metadata.name}.${now.getTime().toString(16)}${Math.random().toString(16).slice(2, 6)}`,
      },
      involvedObject: {
        apiVersion: nb.apiVersion,
        kind: nb.kind,
        name: nb.metadata.name,
        namespace: this.deps.namespace,
        ...(nb.metadata.uid ? { uid: nb.metadata.uid } : {}),
        ...(nb.metadata.resourceVersion ? { resourceVersion: nb.metadata.resourceVersion } : {}),
      },
      type: event.type,
      reason: event.reason,
      message: event.message.slice(0, 1024),
      source: { component: MANAGER },
      reportingComponent: `${GROUP}/${MANAGER}`,
      reportingInstance: this.deps.identity.slice(0, 128),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.core.createNamespacedEvent({ namespace: this.deps.namespace, body });
    } catch (e) {
      // Events are best effort: never fail a reconcile for one.
      this.deps.log.warn({ reason: event.reason, error: String(e) }, 'cannot record an Event');
    }
  }
}

function ownedBy(o: k8s.KubernetesObject, uid: string): boolean {
  return o.metadata?.ownerReferences?.some((r) => r.uid === uid) ?? false;
}

function newest<T extends k8s.KubernetesObject>(objects: readonly T[]): T | undefined {
  const time = (o: T) => new Date(o.metadata?.creationTimestamp ?? 0).getTime();
  let best: T | undefined;
  for (const o of objects) if (!best || time(o) > time(best)) best = o;
  return best;
}
