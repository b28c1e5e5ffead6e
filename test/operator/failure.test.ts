import { classifyFailure, nixErrorOf, retryDecision, type Failure } from '../../operator/failure.js';
import { desiredJob } from '../../operator/job-builder.js';
import { DRV, jobSettings, nixBuild, pod, pools, withStatus } from './fixtures.js';

const job = desiredJob(nixBuild({ timeoutSeconds: 600 }), pools.amd64, jobSettings, { number: 1 });
const failedBy = (reason: string, message = '') => withStatus(job, [{ type: 'Failed', reason, message }]);

const BUILDER_LOG = [
  'building',
  'make: *** [Makefile:12: all] Error 2',
  "error: builder for '/nix/store/0c9x4s6khn8mi4rzsn3hbcn5ppyq8ppc-hello-2.12.1.drv' failed with exit code 2;",
  '       last 1 log lines:',
  '       > make: *** [Makefile:12: all] Error 2',
].join('\n');

describe('classifyFailure: the failure in Nix terms, and whether it is the build’s own', () => {
  test.each<[string, ReturnType<typeof failedBy>, Parameters<typeof pod>[1] | undefined, Partial<Failure>]>([
    [
      'builder failed (100) with Nix’s error from the termination message',
      failedBy('PodFailurePolicy'),
      { kind: 'terminated', exitCode: 100, reason: 'Error', message: BUILDER_LOG },
      {
        reason: 'BuildFailed',
        retryable: false,
        exitCode: 100,
        message: `builder for '${DRV}' failed with exit code 2;\nlast 1 log lines:\n> make: *** [Makefile:12: all] Error 2`,
      },
    ],
    [
      'timed out (101)',
      failedBy('PodFailurePolicy'),
      { kind: 'terminated', exitCode: 101 },
      { reason: 'TimedOut', retryable: false },
    ],
    [
      'hash mismatch (102)',
      failedBy('PodFailurePolicy'),
      { kind: 'terminated', exitCode: 102 },
      { reason: 'HashMismatch', retryable: false },
    ],
    [
      'not deterministic (104)',
      failedBy('PodFailurePolicy'),
      { kind: 'terminated', exitCode: 104 },
      { reason: 'NotDeterministic', retryable: false },
    ],
    [
      'the Job deadline, even though the kubelet killed the pod',
      failedBy('DeadlineExceeded'),
      { kind: 'terminated', exitCode: 137, reason: 'Error' },
      { reason: 'TimedOut', retryable: false, message: `building of '${DRV}' timed out after 600 seconds` },
    ],
    [
      'OOM-killed',
      failedBy('BackoffLimitExceeded'),
      { kind: 'terminated', exitCode: 137, reason: 'OOMKilled' },
      {
        reason: 'OOMKilled',
        retryable: true,
        message: `builder for '${DRV}' failed due to signal 9 (Killed): out of memory (limit 8Gi)`,
      },
    ],
    [
      'evicted through the API (drain)',
      failedBy('PodFailurePolicy'),
      { kind: 'disrupted', reason: 'EvictionByEvictionAPI' },
      { reason: 'Evicted', retryable: true },
    ],
    [
      'node-pressure eviction',
      failedBy('PodFailurePolicy'),
      { kind: 'disrupted', reason: 'TerminationByKubelet' },
      { reason: 'Evicted', retryable: true },
    ],
    [
      'preempted',
      failedBy('PodFailurePolicy'),
      { kind: 'disrupted', reason: 'PreemptionByScheduler' },
      { reason: 'Preempted', retryable: true },
    ],
    [
      'node unreachable',
      failedBy('PodFailurePolicy'),
      { kind: 'disrupted', reason: 'DeletionByTaintManager' },
      { reason: 'NodeLost', retryable: true },
    ],
    [
      'node deleted',
      failedBy('PodFailurePolicy'),
      { kind: 'disrupted', reason: 'DeletionByPodGC' },
      { reason: 'NodeLost', retryable: true },
    ],
    [
      'SIGTERM from outside',
      failedBy('BackoffLimitExceeded'),
      { kind: 'terminated', exitCode: 143, reason: 'Error' },
      { reason: 'Killed', retryable: true },
    ],
    [
      'build-drv’s other failures (exit 1) are the build’s',
      failedBy('BackoffLimitExceeded'),
      { kind: 'terminated', exitCode: 1, message: "error: path '/nix/store/…-dep' is not valid" },
      { reason: 'BuilderError', retryable: false, message: "path '/nix/store/…-dep' is not valid" },
    ],
    [
      'pod gone, the Job says exit code 100',
      failedBy(
        'PodFailurePolicy',
        'Container build for pod builds/x failed with exit code 100 matching FailJob rule at index 0',
      ),
      undefined,
      { reason: 'BuildFailed', retryable: false, exitCode: 100 },
    ],
    [
      'pod gone, the Job says DisruptionTarget',
      failedBy(
        'PodFailurePolicy',
        'Pod builds/x has condition DisruptionTarget matching FailJob rule at index 1',
      ),
      undefined,
      { reason: 'Evicted', retryable: true },
    ],
    [
      'pod gone, nothing known',
      failedBy('BackoffLimitExceeded', 'Job has reached the specified backoff limit'),
      undefined,
      { reason: 'PodFailed', retryable: true },
    ],
  ])('%s', (_, j, state, expected) => {
    const p = state ? pod(j, state) : undefined;
    expect(classifyFailure(j, p, DRV)).toMatchObject(expected);
  });

  test('without a termination message, the log tail tells Nix’s error', () => {
    const j = failedBy('PodFailurePolicy');
    expect(classifyFailure(j, pod(j, { kind: 'terminated', exitCode: 100 }), DRV, BUILDER_LOG)).toMatchObject(
      {
        reason: 'BuildFailed',
        message: expect.stringMatching(
          /^builder for '.*' failed with exit code 2;\nlast 1 log lines:/,
        ) as unknown,
      },
    );
  });

  test('nixErrorOf takes the last error block, without colours', () => {
    expect(nixErrorOf('x\nerror: first\nerror: \x1b[1msecond\x1b[0m\n       more\nafter')).toBe(
      'second\nmore',
    );
    expect(nixErrorOf('no errors here')).toBeUndefined();
    expect(nixErrorOf(undefined)).toBeUndefined();
  });
});

describe('retryDecision: infrastructure failures only, bounded, OOM with more memory', () => {
  const evicted: Failure = { reason: 'Evicted', retryable: true, message: '' };
  const oom: Failure = { reason: 'OOMKilled', retryable: true, message: '' };
  const build: Failure = { reason: 'BuildFailed', retryable: false, message: '' };
  test.each([
    ['a build failure, never', build, 1, '8Gi', undefined, { retry: false }],
    ['eviction, attempts left', evicted, 1, '8Gi', undefined, { retry: true }],
    [
      'eviction, attempts used up',
      evicted,
      3,
      '8Gi',
      undefined,
      { retry: false, why: 'gave up after 3 attempts' },
    ],
    ['OOM doubles the limit', oom, 1, '8Gi', '32Gi', { retry: true, memoryLimit: '16Gi' }],
    ['OOM up to the pool maximum', oom, 2, '24Gi', '32Gi', { retry: true, memoryLimit: '32Gi' }],
    [
      'OOM at the maximum: no point',
      oom,
      2,
      '32Gi',
      '32Gi',
      { retry: false, why: "the memory limit is at the pool's maximum (32Gi)" },
    ],
    ['OOM without a limit: the node ran out, try again', oom, 1, undefined, undefined, { retry: true }],
    ['OOM in odd units', oom, 1, '1500M', undefined, { retry: true, memoryLimit: '3000000000' }],
  ])('%s', (_, failure, attempts, limit, max, expected) => {
    expect(retryDecision(failure, attempts, 3, limit, max)).toEqual(expected);
  });
});
