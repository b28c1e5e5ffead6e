/**
 * Why a build Job failed, in Nix's terms, and whether to try again. Genuine build
 * failures (build-drv's exit statuses 100–107, the deadline) are final; the cluster's
 * failures (eviction, node loss, OOM-kill, a pod killed from outside) are retried up to
 * the configured number of attempts, an OOM-kill with twice the memory.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { BUILD_CONTAINER, DEADLINE_SLACK_SECONDS } from './job-builder.js';
import { formatBytes, parseQuantity } from './quantity.js';

export type FailureReason =
  | 'BuildFailed'
  | 'TimedOut'
  | 'HashMismatch'
  | 'NotDeterministic'
  | 'BuilderError'
  | 'OOMKilled'
  | 'Evicted'
  | 'Preempted'
  | 'NodeLost'
  | 'Killed'
  | 'PodFailed'
  | 'NoPoolForSystem'
  | 'MissingSystemFeatures'
  | 'RetriesExhausted';

export interface Failure {
  readonly reason: FailureReason;
  /** One sentence (or Nix's own error text) for status.message, the Event and the client. */
  readonly message: string;
  /** An infrastructure failure: the same build may well succeed on another try. */
  readonly retryable: boolean;
  readonly exitCode?: number;
}

/** `error: …` and its indented continuation lines, the last such block in a log tail. */
export function nixErrorOf(log: string | undefined): string | undefined {
  if (!log) return undefined;
  // eslint-disable-next-line no-control-regex -- ANSI colour escapes
  const lines = log.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i]!.startsWith('error: ')) {
      start = i;
      break;
    }
  }
  if (start < 0) return undefined;
  const block = [lines[start]!.slice('error: '.length)];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('       ')) break;
    block.push(line.slice(7));
  }
  return block.join('\n').trimEnd();
}

function buildContainerTerminated(pod: V1Pod | undefined) {
  const status = pod?.status?.containerStatuses?.find((c) => c.name === BUILD_CONTAINER);
  return status?.state?.terminated ?? status?.lastState?.terminated;
}

/** Nix's meaning of build-drv's exit status (nix-build's `Worker::exitStatus`). */
function fromExitCode(code: number, drvPath: string, nixError: string | undefined): Failure | undefined {
  if (code < 100 || code > 107) return undefined;
  const base = { retryable: false, exitCode: code } as const;
  const mask = code - 100;
  if (mask & 2)
    return {
      ...base,
      reason: 'HashMismatch',
      message: nixError ?? `hash mismatch in fixed-output derivation '${drvPath}'`,
    };
  if (mask & 1)
    return { ...base, reason: 'TimedOut', message: nixError ?? `building of '${drvPath}' timed out` };
  if (mask & 4)
    return {
      ...base,
      reason: 'NotDeterministic',
      message: nixError ?? `derivation '${drvPath}' may not be deterministic: output differs`,
    };
  return { ...base, reason: 'BuildFailed', message: nixError ?? `builder for '${drvPath}' failed` };
}

const DISRUPTION: Readonly<Record<string, { reason: FailureReason; what: string }>> = {
  EvictionByEvictionAPI: { reason: 'Evicted', what: 'the build pod was evicted' },
  TerminationByKubelet: {
    reason: 'Evicted',
    what: 'the node evicted the build pod (resource pressure or shutdown)',
  },
  PreemptionByScheduler: {
    reason: 'Preempted',
    what: 'the build pod was preempted by a higher-priority pod',
  },
  DeletionByTaintManager: { reason: 'NodeLost', what: 'the node of the build pod became unreachable' },
  DeletionByPodGC: { reason: 'NodeLost', what: 'the node of the build pod disappeared' },
};

/**
 * `logTail` is the end of the build container's log: used when the termination message
 * (FallbackToLogsOnError: the log's last 80 lines on a failure) is missing.
 */
export function classifyFailure(
  job: V1Job,
  pod: V1Pod | undefined,
  drvPath: string,
  logTail?: string,
): Failure {
  const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  const timeout = job.spec?.activeDeadlineSeconds;
  if (failed?.reason === 'DeadlineExceeded') {
    const secs = timeout !== undefined ? timeout - DEADLINE_SLACK_SECONDS : undefined;
    return {
      reason: 'TimedOut',
      retryable: false,
      message:
        `building of '${drvPath}' timed out` +
        (secs !== undefined && secs > 0 ? ` after ${secs} seconds` : ''),
    };
  }
  const terminated = buildContainerTerminated(pod);
  if (terminated) {
    const nixError = nixErrorOf(terminated.message) ?? nixErrorOf(logTail);
    if (terminated.reason === 'OOMKilled') {
      const limit = pod?.spec?.containers.find((c) => c.name === BUILD_CONTAINER)?.resources?.limits?.memory;
      return {
        reason: 'OOMKilled',
        retryable: true,
        exitCode: terminated.exitCode,
        message:
          `builder for '${drvPath}' failed due to signal 9 (Killed): out of memory` +
          (limit ? ` (limit ${limit})` : ''),
      };
    }
    const build = fromExitCode(terminated.exitCode, drvPath, nixError);
    if (build) return build;
  }
  const disruption = pod?.status?.conditions?.find(
    (c) => c.type === 'DisruptionTarget' && c.status === 'True',
  );
  const known = disruption?.reason ? DISRUPTION[disruption.reason] : undefined;
  if (known)
    return {
      reason: known.reason,
      retryable: true,
      message: `${known.what}: ${disruption?.message ?? ''}`.replace(/: $/, ''),
    };
  if (pod?.status?.reason === 'Evicted')
    return {
      reason: 'Evicted',
      retryable: true,
      message: `the node evicted the build pod: ${pod.status.message ?? ''}`.replace(/: $/, ''),
    };
  if (pod?.status?.reason === 'NodeLost' || pod?.status?.reason === 'Terminated')
    return { reason: 'NodeLost', retryable: true, message: `the node of the build pod was lost` };
  if (terminated) {
    const code = terminated.exitCode;
    if (code > 128 || terminated.signal !== undefined)
      return {
        reason: 'Killed',
        retryable: true,
        exitCode: code,
        message: `the build pod was killed from outside (exit status ${code}${terminated.reason ? `, ${terminated.reason}` : ''})`,
      };
    const nixError = nixErrorOf(terminated.message) ?? nixErrorOf(logTail);
    return {
      reason: 'BuilderError',
      retryable: false,
      exitCode: code,
      message: nixError ?? `nixyard build-drv failed with exit status ${code} building '${drvPath}'`,
    };
  }
  // The Pod is gone: the Job's own words are what is left.
  if (failed?.reason === 'PodFailurePolicy') {
    const m = /exit code (\d+)/.exec(failed.message ?? '');
    const byCode = m ? fromExitCode(Number(m[1]), drvPath, undefined) : undefined;
    if (byCode) return byCode;
    if (/DisruptionTarget/.test(failed.message ?? ''))
      return {
        reason: 'Evicted',
        retryable: true,
        message: 'the build pod was disrupted (evicted, preempted or its node lost)',
      };
  }
  return {
    reason: 'PodFailed',
    retryable: true,
    message: `the build pod failed and is gone${failed?.message ? `: ${failed.message}` : ''}`,
  };
}

export type RetryDecision =
  { readonly retry: true; readonly memoryLimit?: string } | { readonly retry: false; readonly why?: string };

/**
 * Retry an infrastructure failure while attempts remain; an OOM-kill only if the memory
 * limit can still grow (doubling, up to the pool's maxMemory).
 */
export function retryDecision(
  failure: Failure,
  attempts: number,
  maxAttempts: number,
  currentMemoryLimit: string | undefined,
  maxMemory: string | undefined,
): RetryDecision {
  if (!failure.retryable) return { retry: false };
  if (attempts >= maxAttempts) return { retry: false, why: `gave up after ${attempts} attempts` };
  if (failure.reason !== 'OOMKilled') return { retry: true };
  const current = currentMemoryLimit === undefined ? undefined : parseQuantity(currentMemoryLimit);
  if (current === undefined) return { retry: true };
  const cap = maxMemory === undefined ? Infinity : (parseQuantity(maxMemory) ?? Infinity);
  const next = Math.min(current * 2, cap);
  if (next <= current)
    return { retry: false, why: `the memory limit is at the pool's maximum (${maxMemory})` };
  return { retry: true, memoryLimit: formatBytes(next) };
}
