/**
 * reconcile(NixBuild, world) → what to do: a pure function, so that every transition is a
 * table row in a test. The world is read anew each time (the Jobs labelled with the
 * NixBuild, the current Job's newest Pod, the log tail after a success: reconciler.ts
 * says which come from the informer caches and when it asks the API server); what
 * triggered the reconcile is not an input.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { classifyFailure, retryDecision, type Failure } from './failure.js';
import { BUILD_CONTAINER, desiredJob, type JobSettings } from './job-builder.js';
import { parseDrvPath } from './names.js';
import { choosePool, type PoolConfig } from './pools.js';
import {
  ConditionType,
  humanDuration,
  isJobFinished,
  metaTime,
  observe,
  outputsFromLog,
  setCondition,
  type Observation,
} from './status.js';
import { Label, type Condition, type NixBuild, type NixBuildStatus, type Phase } from './types.js';

export interface Policy {
  readonly pools: readonly PoolConfig[];
  readonly job: JobSettings;
  /** Jobs started for one build at most (the first plus infrastructure retries). */
  readonly maxAttempts: number;
  readonly ttlSecondsAfterFinished: number;
}

export interface World {
  /** Every Job labelled with this NixBuild (all attempts, including ones being deleted). */
  readonly jobs: readonly V1Job[];
  /** The newest Pod of the current attempt's Job. */
  readonly pod?: V1Pod;
  /** The tail of the build container's log, read once the current Job has finished. */
  readonly buildLog?: string;
  readonly now: Date;
}

export interface BuildEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface Plan {
  /** The whole status as it should be; written when it differs from the current one. */
  readonly status: NixBuildStatus;
  readonly createJob?: V1Job;
  /** Deleted with propagationPolicy Background, so their Pods go too. */
  readonly deleteJobs: readonly string[];
  /** Jobs that are finished and recorded: give them their TTL (after the status write). */
  readonly ttlJobs: readonly string[];
  readonly events: readonly BuildEvent[];
}

export function attemptOf(job: V1Job): number {
  return Number(job.metadata?.labels?.[Label.attempt] ?? '0') || 0;
}

/** Every session left, and nobody asked to keep it running. */
export function isAbandoned(nb: NixBuild): boolean {
  return nb.spec.requesters !== undefined && nb.spec.requesters.length === 0 && nb.spec.keepRunning !== true;
}

function conditionsFor(
  old: readonly Condition[] | undefined,
  phase: Phase,
  generation: number | undefined,
  now: Date,
  detail: { reason: string; message: string },
): Condition[] {
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  const row = (type: string, on: boolean, reason: string, message: string) =>
    ({ type, status: on ? 'True' : 'False', reason, message, ...g }) as const;
  const scheduled = phase === 'Scheduled' || phase === 'Building' || phase === 'Succeeded';
  const states: [string, boolean, string, string][] = [
    [
      ConditionType.Scheduled,
      scheduled,
      scheduled ? 'PodScheduled' : detail.reason,
      scheduled ? '' : detail.message,
    ],
    [
      ConditionType.Building,
      phase === 'Building',
      phase === 'Building' ? 'ContainerRunning' : detail.reason,
      phase === 'Building' ? '' : detail.message,
    ],
    [ConditionType.Succeeded, phase === 'Succeeded', detail.reason, detail.message],
    [ConditionType.Failed, phase === 'Failed', detail.reason, detail.message],
  ];
  let conditions = [...(old ?? [])];
  for (const [type, on, reason, message] of states)
    conditions = setCondition(conditions, row(type, on, reason, message), now);
  return conditions;
}

function drop<T extends object>(o: T, ...keys: (keyof T)[]): T {
  const copy = { ...o };
  for (const k of keys) delete copy[k];
  return copy;
}

function duration(start: string | undefined, end: string | undefined): string | undefined {
  if (!start || !end) return undefined;
  return humanDuration(Date.parse(end) - Date.parse(start));
}

export function planReconcile(nb: NixBuild, world: World, policy: Policy): Plan {
  const { now } = world;
  const st: NixBuildStatus = nb.status ?? {};
  const gen = nb.metadata.generation;
  const drvPath = nb.spec.drvPath;
  const events: BuildEvent[] = [];
  const deleteJobs: string[] = [];
  const ttlJobs: string[] = [];
  const base: NixBuildStatus = { ...st, ...(gen !== undefined ? { observedGeneration: gen } : {}) };
  const status = (phase: Phase, detail: { reason: string; message: string }, extra: NixBuildStatus = {}) => ({
    ...base,
    ...extra,
    phase,
    conditions: conditionsFor(st.conditions, phase, gen, now, detail),
  });
  const live = world.jobs.filter((j) => !j.metadata?.deletionTimestamp);
  const attempts = Math.max(st.attempts ?? 0, ...world.jobs.map(attemptOf));
  const current = live.find((j) => attemptOf(j) === attempts);
  const needTtl = (j: V1Job) =>
    isJobFinished(j) && j.spec?.ttlSecondsAfterFinished === undefined && j.metadata?.name !== undefined;

  // Finished: the result is recorded; let its Jobs be collected.
  if (st.phase === 'Succeeded' || st.phase === 'Failed') {
    for (const j of live) if (needTtl(j)) ttlJobs.push(j.metadata!.name!);
    return { status: base, deleteJobs, ttlJobs, events };
  }

  if (isAbandoned(nb)) {
    for (const j of live) if (!isJobFinished(j)) deleteJobs.push(j.metadata!.name!);
    if (st.phase !== 'Cancelled')
      events.push({
        type: 'Normal',
        reason: 'Cancelled',
        message: 'every session that wanted the build has left',
      });
    const detail = {
      reason: 'Cancelled',
      message: 'cancelled: every session that wanted the build has left',
    };
    return {
      status: status('Cancelled', detail, {
        reason: 'Cancelled',
        message: detail.message,
        completionTime: st.completionTime ?? metaTime(now),
      }),
      deleteJobs,
      ttlJobs,
      events,
    };
  }

  // The pool is chosen for every new Job. A build already running when the pools change
  // is watched to its end; only a new attempt needs a pool.
  const choice = choosePool(policy.pools, drvPath, nb.spec.system, nb.spec.requiredSystemFeatures);
  const noPool = (refusal: Extract<typeof choice, { ok: false }>): Plan => {
    events.push({ type: 'Warning', reason: refusal.reason, message: refusal.message });
    for (const j of live) if (!isJobFinished(j)) deleteJobs.push(j.metadata!.name!);
    return {
      status: status('Failed', refusal, {
        reason: refusal.reason,
        message: refusal.message,
        completionTime: metaTime(now),
      }),
      deleteJobs,
      ttlJobs,
      events,
    };
  };

  const start = (n: number, memoryLimit: string | undefined, why: BuildEvent | undefined): Plan => {
    if (!choice.ok) return noPool(choice);
    const pool = choice.pool;
    const job = desiredJob(nb, pool, policy.job, { number: n, ...(memoryLimit ? { memoryLimit } : {}) });
    const name = job.metadata!.name!;
    // Earlier attempts: a finished one stays for `kubectl logs` until its TTL; one still
    // running (a cancelled build wanted again) goes, Pods and all.
    for (const j of live) {
      if (attemptOf(j) >= n) continue;
      if (!isJobFinished(j)) deleteJobs.push(j.metadata!.name!);
      else if (needTtl(j)) ttlJobs.push(j.metadata!.name!);
    }
    if (why) events.push(why);
    events.push({
      type: 'Normal',
      reason: 'JobCreated',
      message:
        `created Job ${name} on pool ${pool.name}` +
        (n > 1 ? ` (attempt ${n} of ${policy.maxAttempts})` : ''),
    });
    const detail = why
      ? { reason: 'Retrying', message: `${why.message}` }
      : { reason: 'JobCreated', message: `created Job ${name}` };
    return {
      status: status(
        'Pending',
        detail,
        drop(
          { ...st, attempts: n, jobName: name, pool: pool.name, ...(memoryLimit ? { memoryLimit } : {}) },
          'podName',
          'nodeName',
          'startTime',
          'completionTime',
          'duration',
          'reason',
          'message',
          'exitCode',
          'outputs',
        ),
      ),
      createJob: job,
      deleteJobs,
      ttlJobs,
      events,
    };
  };

  // Nothing started yet, or wanted again after a cancellation.
  if (attempts === 0) return start(1, st.memoryLimit, undefined);
  if (st.phase === 'Cancelled') return start(attempts + 1, st.memoryLimit, undefined);

  const retryOrFail = (
    failure: Failure,
    obs: Observation | undefined,
    currentLimit: string | undefined,
  ): Plan => {
    const decision = retryDecision(
      failure,
      attempts,
      policy.maxAttempts,
      currentLimit,
      choice.ok ? choice.pool.maxMemory : undefined,
    );
    if (decision.retry) {
      const memory = decision.memoryLimit ?? st.memoryLimit;
      return start(attempts + 1, memory, {
        type: 'Warning',
        reason: failure.reason,
        message:
          `${failure.message}; retrying (attempt ${attempts + 1} of ${policy.maxAttempts}` +
          (decision.memoryLimit ? `, memory limit ${decision.memoryLimit})` : ')'),
      });
    }
    const message = decision.why ? `${failure.message} (${decision.why})` : failure.message;
    events.push({ type: 'Warning', reason: failure.reason, message });
    if (current && needTtl(current)) ttlJobs.push(current.metadata!.name!);
    const completionTime = obs?.completionTime ?? metaTime(now);
    const startTime = obs?.startTime ?? st.startTime;
    const d = duration(startTime, completionTime);
    return {
      status: status(
        'Failed',
        { reason: failure.reason, message },
        {
          ...(obs?.podName ? { podName: obs.podName } : {}),
          ...(obs?.nodeName ? { nodeName: obs.nodeName } : {}),
          ...(startTime ? { startTime } : {}),
          completionTime,
          ...(d ? { duration: d } : {}),
          reason: failure.reason,
          message,
          ...(failure.exitCode !== undefined ? { exitCode: failure.exitCode } : {}),
        },
      ),
      deleteJobs,
      ttlJobs,
      events,
    };
  };

  if (!current) {
    return retryOrFail(
      {
        reason: 'PodFailed',
        retryable: true,
        message: `the build Job ${st.jobName ?? ''} was deleted`.replace('  ', ' '),
      },
      undefined,
      st.memoryLimit,
    );
  }

  const obs = observe(current, world.pod);
  const where = {
    jobName: current.metadata?.name ?? st.jobName ?? '',
    ...(obs.podName ? { podName: obs.podName } : {}),
    ...(obs.nodeName ? { nodeName: obs.nodeName } : {}),
    ...(obs.startTime ? { startTime: obs.startTime } : {}),
  };
  switch (obs.phase) {
    case 'Succeeded': {
      const outputs = outputsFromLog(world.buildLog, parseDrvPath(drvPath).name);
      const completionTime = obs.completionTime ?? metaTime(now);
      const d = duration(obs.startTime, completionTime);
      events.push({
        type: 'Normal',
        reason: 'Succeeded',
        message: `built '${drvPath}'` + (obs.nodeName ? ` on ${obs.nodeName}` : '') + (d ? ` in ${d}` : ''),
      });
      if (needTtl(current)) ttlJobs.push(current.metadata!.name!);
      return {
        status: status(
          'Succeeded',
          { reason: 'BuildSucceeded', message: `built '${drvPath}'` },
          {
            ...drop(where, 'jobName'),
            jobName: where.jobName,
            completionTime,
            ...(d ? { duration: d } : {}),
            ...(outputs.length ? { outputs } : {}),
          },
        ),
        deleteJobs,
        ttlJobs,
        events,
      };
    }
    case 'Failed': {
      const failure = classifyFailure(current, world.pod, drvPath, world.buildLog);
      const limit = current.spec?.template.spec?.containers.find((c) => c.name === BUILD_CONTAINER)?.resources
        ?.limits?.memory;
      return retryOrFail(failure, obs, limit);
    }
    default: {
      if (obs.phase !== st.phase && obs.phase === 'Scheduled' && obs.nodeName)
        events.push({
          type: 'Normal',
          reason: 'Scheduled',
          message: `build pod ${obs.podName ?? ''} placed on ${obs.nodeName}`,
        });
      if (obs.phase !== st.phase && obs.phase === 'Building')
        events.push({
          type: 'Normal',
          reason: 'Building',
          message: `building '${drvPath}'` + (obs.nodeName ? ` on ${obs.nodeName}` : ''),
        });
      const detail = obs.waiting ?? { reason: 'ContainerRunning', message: '' };
      return { status: status(obs.phase, detail, where), deleteJobs, ttlJobs, events };
    }
  }
}
