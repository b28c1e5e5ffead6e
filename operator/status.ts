/**
 * What the Job and its Pod say about a build, and the NixBuild status made from it:
 * phase (a summary), metav1 conditions, node, times, outputs.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { BUILD_CONTAINER } from './job-builder.js';
import type { BuildOutputRef, Condition, Phase } from './types.js';

export const ConditionType = {
  Scheduled: 'Scheduled',
  Building: 'Building',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
} as const;

type Time = Date | string | undefined;

/**
 * A time as the API server writes it. Objects from a list are deserialized (Date) and
 * those from a watch are not (string): both must give the same text, or a status would
 * flip between the two forms with every relist.
 */
export function iso(t: Time): string | undefined {
  if (t === undefined) return undefined;
  return typeof t === 'string' ? t : t.toISOString().replace(/\.000Z$/, 'Z');
}

/** RFC 3339 without fractions, as the API server writes metav1.Time. */
export function metaTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Sets one condition; lastTransitionTime changes only when status does (API conventions).
 * Returns a new array in a stable order (by type).
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date,
): Condition[] {
  const old = conditions?.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status ? old.lastTransitionTime : metaTime(now);
  const rest = (conditions ?? []).filter((c) => c.type !== next.type);
  return [...rest, { ...next, lastTransitionTime }].sort((a, b) => a.type.localeCompare(b.type));
}

/** kubectl's short durations: 45s, 3m12s, 2h5m, 3d4h. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60 * 2) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 60 * 3) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  return d < 8 ? `${d}d${h % 24 ? `${h % 24}h` : ''}` : `${d}d`;
}

export interface Observation {
  readonly phase: Exclude<Phase, 'Cancelled'>;
  readonly podName?: string;
  readonly nodeName?: string;
  readonly startTime?: string;
  readonly completionTime?: string;
  /** Why the pod is not running yet (scheduler or kubelet words), while Pending/Scheduled. */
  readonly waiting?: { readonly reason: string; readonly message: string };
}

function jobCondition(job: V1Job, type: string) {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

export function isJobFinished(job: V1Job): boolean {
  return jobCondition(job, 'Complete') !== undefined || jobCondition(job, 'Failed') !== undefined;
}

/** The state of one attempt. The Job's Complete/Failed conditions decide the end; the Pod says the rest. */
export function observe(job: V1Job, pod: V1Pod | undefined): Observation {
  const container = pod?.status?.containerStatuses?.find((c) => c.name === BUILD_CONTAINER);
  const where = {
    ...(pod?.metadata?.name ? { podName: pod.metadata.name } : {}),
    ...(pod?.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
  };
  const startTime =
    iso(container?.state?.running?.startedAt ?? container?.state?.terminated?.startedAt) ??
    iso(pod?.status?.startTime) ??
    iso(job.status?.startTime);
  const started = startTime ? { startTime } : {};
  const complete = jobCondition(job, 'Complete');
  const failed = jobCondition(job, 'Failed');
  if (complete || failed) {
    const end =
      iso(container?.state?.terminated?.finishedAt) ??
      iso(job.status?.completionTime) ??
      iso((complete ?? failed)?.lastTransitionTime);
    return {
      phase: complete ? 'Succeeded' : 'Failed',
      ...where,
      ...started,
      ...(end ? { completionTime: end } : {}),
    };
  }
  if (!pod)
    return { phase: 'Pending', waiting: { reason: 'WaitingForPod', message: 'the Job has no pod yet' } };
  if (container?.state?.running || pod.status?.phase === 'Running' || container?.state?.terminated)
    return { phase: 'Building', ...where, ...started };
  if (!pod.spec?.nodeName) {
    const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    return {
      phase: 'Pending',
      ...where,
      waiting: {
        reason: sched?.reason ?? 'WaitingForNode',
        message: sched?.message ?? 'the build pod waits for a node',
      },
    };
  }
  const waiting = container?.state?.waiting;
  return {
    phase: 'Scheduled',
    ...where,
    waiting: {
      reason: waiting?.reason ?? 'ContainerCreating',
      message: waiting?.message ?? `the build pod is starting on ${pod.spec.nodeName}`,
    },
  };
}

/**
 * The outputs from the end of a successful build's log: `nixyard build-drv` prints each
 * output path on a line of its own. Output `out` is named like the derivation; output
 * `dev` like `<name>-dev`.
 */
export function outputsFromLog(log: string | undefined, drvName: string): BuildOutputRef[] {
  if (!log) return [];
  const lines = log.trimEnd().split('\n');
  const out: BuildOutputRef[] = [];
  // Only the trailing run of store paths: a builder may print paths of its own earlier.
  for (let i = lines.length - 1; i >= 0; i--) {
    const path = lines[i]!.trim();
    const m = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-([A-Za-z0-9+._?=-]+)$/.exec(path);
    if (!m) break;
    const pathName = m[1]!;
    const name =
      pathName === drvName
        ? 'out'
        : pathName.startsWith(`${drvName}-`)
          ? pathName.slice(drvName.length + 1)
          : undefined;
    if (name !== undefined && !out.some((o) => o.name === name)) out.unshift({ name, path });
  }
  return out;
}
