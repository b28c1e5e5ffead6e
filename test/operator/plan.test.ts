import { desiredJob } from '../../operator/job-builder.js';
import { planReconcile, type World } from '../../operator/plan.js';
import { humanDuration, outputsFromLog, setCondition } from '../../operator/status.js';
import type { NixBuild, NixBuildStatus } from '../../operator/types.js';
import { nixBuildValidator } from './k8s-validate.js';
import { DRV, HASH, NOW, nixBuild, pod, policy, pools, withStatus } from './fixtures.js';

const NAME = `${HASH}-hello-2-12-1`;
const validate = nixBuildValidator();
const job1 = desiredJob(nixBuild(), pools.amd64, policy.job, { number: 1 });
const running: NixBuildStatus = { phase: 'Building', attempts: 1, jobName: NAME, pool: 'amd64' };

function plan(nb: NixBuild, world: Partial<World> = {}) {
  const p = planReconcile(nb, { jobs: [], now: NOW, ...world }, policy);
  // Whatever the operator writes must pass the CRD's schema.
  expect(validate({ ...nb, status: p.status })).toEqual([]);
  return p;
}

const cond = (s: NixBuildStatus, type: string) => s.conditions?.find((c) => c.type === type);

describe('planReconcile: NixBuild + Jobs + Pod → actions and status', () => {
  test('a new build: create the first Job, Pending', () => {
    const p = plan(nixBuild({ requesters: ['session-1'] }));
    expect(p.createJob?.metadata?.name).toBe(NAME);
    expect(p.status).toMatchObject({
      phase: 'Pending',
      attempts: 1,
      jobName: NAME,
      pool: 'amd64',
      observedGeneration: 1,
    });
    expect(cond(p.status, 'Scheduled')).toMatchObject({
      status: 'False',
      reason: 'JobCreated',
      observedGeneration: 1,
    });
    expect(p.events).toEqual([expect.objectContaining({ type: 'Normal', reason: 'JobCreated' })]);
  });

  test('the status lagging behind an existing Job does not create a second one', () => {
    const p = plan(nixBuild(), { jobs: [withStatus(job1, [])] });
    expect(p.createJob).toBeUndefined();
    expect(p.status.phase).toBe('Pending');
  });

  test.each([
    ['unschedulable', { kind: 'unscheduled' } as const, 'Pending', 'Unschedulable'],
    [
      'pulling the image',
      { kind: 'creating', waiting: 'ErrImagePull' } as const,
      'Scheduled',
      'ErrImagePull',
    ],
    ['running', { kind: 'running' } as const, 'Building', 'ContainerRunning'],
  ])('%s → %s', (_, state, phase, reason) => {
    const j = withStatus(job1, [], { active: 1 });
    const p = plan(nixBuild({}, { phase: 'Pending', attempts: 1, jobName: NAME }), {
      jobs: [j],
      pod: pod(j, state),
    });
    expect(p.status.phase).toBe(phase);
    expect(p.createJob).toBeUndefined();
    const building = cond(p.status, 'Building')!;
    expect(building.status).toBe(phase === 'Building' ? 'True' : 'False');
    expect(building.reason).toBe(reason);
    if (phase !== 'Pending') expect(p.status.nodeName).toBe('worker-amd64-1');
  });

  test('success: outputs from the log, times, duration, then the Job’s TTL', () => {
    const j = withStatus(job1, [{ type: 'Complete' }], { completionTime: new Date('2026-11-25T10:01:34Z') });
    const log = `building...\nok\n/nix/store/${HASH}-hello-2.12.1\n/nix/store/${HASH}-hello-2.12.1-man\n`;
    const p = plan(nixBuild({}, running), {
      jobs: [j],
      pod: pod(j, { kind: 'terminated', exitCode: 0 }),
      buildLog: log,
    });
    expect(p.status).toMatchObject({
      phase: 'Succeeded',
      nodeName: 'worker-amd64-1',
      startTime: '2026-11-25T10:00:10Z',
      completionTime: '2026-11-25T10:01:33Z',
      duration: '83s',
      outputs: [
        { name: 'out', path: `/nix/store/${HASH}-hello-2.12.1` },
        { name: 'man', path: `/nix/store/${HASH}-hello-2.12.1-man` },
      ],
    });
    expect(cond(p.status, 'Succeeded')?.status).toBe('True');
    expect(cond(p.status, 'Failed')?.status).toBe('False');
    expect(p.ttlJobs).toEqual([NAME]);
    expect(p.events.map((e) => e.reason)).toEqual(['Succeeded']);
  });

  test('a genuine build failure: Failed, in Nix words, not retried', () => {
    const j = withStatus(job1, [{ type: 'Failed', reason: 'PodFailurePolicy' }]);
    const p = plan(nixBuild({}, running), {
      jobs: [j],
      pod: pod(j, {
        kind: 'terminated',
        exitCode: 100,
        message: `error: builder for '${DRV}' failed with exit code 2`,
      }),
    });
    expect(p.createJob).toBeUndefined();
    expect(p.status).toMatchObject({
      phase: 'Failed',
      reason: 'BuildFailed',
      exitCode: 100,
      message: `builder for '${DRV}' failed with exit code 2`,
    });
    expect(cond(p.status, 'Failed')).toMatchObject({ status: 'True', reason: 'BuildFailed' });
    expect(p.events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'BuildFailed' })]);
    expect(p.ttlJobs).toEqual([NAME]);
  });

  test('eviction: a second attempt with its own Job; the failed one kept until its TTL', () => {
    const j = withStatus(job1, [{ type: 'Failed', reason: 'PodFailurePolicy' }]);
    const p = plan(nixBuild({}, running), {
      jobs: [j],
      pod: pod(j, { kind: 'disrupted', reason: 'EvictionByEvictionAPI' }),
    });
    expect(p.createJob?.metadata?.name).toBe(`${NAME}-retry1`);
    expect(p.status).toMatchObject({ phase: 'Pending', attempts: 2, jobName: `${NAME}-retry1` });
    expect(p.status.nodeName).toBeUndefined();
    expect(cond(p.status, 'Scheduled')?.reason).toBe('Retrying');
    expect(p.events.map((e) => e.reason)).toEqual(['Evicted', 'JobCreated']);
    expect(p.ttlJobs).toEqual([NAME]);
    expect(p.deleteJobs).toEqual([]);
  });

  test('OOM-kill: retried with twice the memory', () => {
    const j = withStatus(job1, [{ type: 'Failed', reason: 'BackoffLimitExceeded' }]);
    const p = plan(nixBuild({}, running), {
      jobs: [j],
      pod: pod(j, { kind: 'terminated', exitCode: 137, reason: 'OOMKilled' }),
    });
    expect(p.status.memoryLimit).toBe('16Gi');
    expect(p.createJob?.spec?.template.spec?.containers[0]?.resources?.limits?.memory).toBe('16Gi');
  });

  test('infrastructure failures stop after maxAttempts', () => {
    const j3 = withStatus(desiredJob(nixBuild(), pools.amd64, policy.job, { number: 3 }), [
      { type: 'Failed', reason: 'PodFailurePolicy' },
    ]);
    const p = plan(nixBuild({}, { ...running, attempts: 3 }), {
      jobs: [j3],
      pod: pod(j3, { kind: 'disrupted', reason: 'DeletionByTaintManager' }),
    });
    expect(p.createJob).toBeUndefined();
    expect(p.status).toMatchObject({ phase: 'Failed', reason: 'NodeLost' });
    expect(p.status.message).toMatch(/gave up after 3 attempts/);
  });

  test('a system no pool serves fails at once, with Nix’s kind of message', () => {
    const p = plan(nixBuild({ system: 'aarch64-darwin' }));
    expect(p.createJob).toBeUndefined();
    expect(p.status).toMatchObject({ phase: 'Failed', reason: 'NoPoolForSystem' });
    expect(p.status.message).toMatch(
      /^a 'aarch64-darwin' with features \{\} is required to build '\/nix\/store\/.*', but no Nixyard pool offers it/,
    );
  });

  test('a build already running when its pool goes away is watched to its end', () => {
    const j = withStatus(job1, [], { active: 1 });
    const p = planReconcile(
      nixBuild({}, running),
      { jobs: [j], pod: pod(j, { kind: 'running' }), now: NOW },
      { ...policy, pools: [pools.arm] },
    );
    expect(p.status.phase).toBe('Building');
    expect(p.deleteJobs).toEqual([]);
  });

  test('a missing system feature fails at once too', () => {
    const p = plan(nixBuild({ requiredSystemFeatures: ['cuda'] }));
    expect(p.status).toMatchObject({ phase: 'Failed', reason: 'MissingSystemFeatures' });
  });

  test('required features choose the pool', () => {
    const p = plan(nixBuild({ requiredSystemFeatures: ['kvm'] }));
    expect(p.status.pool).toBe('kvm');
  });

  test('the last session leaves: the Job goes (background), Cancelled', () => {
    const j = withStatus(job1, [], { active: 1 });
    const p = plan(nixBuild({ requesters: [] }, running), { jobs: [j], pod: pod(j, { kind: 'running' }) });
    expect(p.deleteJobs).toEqual([NAME]);
    expect(p.status).toMatchObject({ phase: 'Cancelled', reason: 'Cancelled' });
    expect(p.events.map((e) => e.reason)).toEqual(['Cancelled']);
  });

  test('keepRunning, or no session tracking at all, keeps it building', () => {
    const j = withStatus(job1, [], { active: 1 });
    const world = { jobs: [j], pod: pod(j, { kind: 'running' }) };
    expect(plan(nixBuild({ requesters: [], keepRunning: true }, running), world).deleteJobs).toEqual([]);
    expect(plan(nixBuild({}, running), world).status.phase).toBe('Building');
  });

  test('a session comes back after a cancellation: a new attempt', () => {
    const p = plan(nixBuild({ requesters: ['session-2'] }, { ...running, phase: 'Cancelled' }));
    expect(p.createJob?.metadata?.name).toBe(`${NAME}-retry1`);
    expect(p.status).toMatchObject({ phase: 'Pending', attempts: 2 });
    expect(p.status.reason).toBeUndefined();
  });

  test('the Job vanished under a running build: counted as an infrastructure failure', () => {
    const p = plan(nixBuild({}, running), { jobs: [] });
    expect(p.createJob?.metadata?.name).toBe(`${NAME}-retry1`);
  });

  test('finished builds stay finished; their Jobs get the TTL', () => {
    const j = withStatus(job1, [{ type: 'Complete' }]);
    const done = nixBuild({ requesters: [] }, { ...running, phase: 'Succeeded' });
    const p = plan(done, { jobs: [j] });
    expect(p.status.phase).toBe('Succeeded');
    expect(p.deleteJobs).toEqual([]);
    expect(p.ttlJobs).toEqual([NAME]);
    expect(
      plan(done, { jobs: [{ ...j, spec: { ...j.spec!, ttlSecondsAfterFinished: 3600 } }] }).ttlJobs,
    ).toEqual([]);
  });

  test('reconciling twice in the same world changes nothing the second time', () => {
    const j = withStatus(job1, [], { active: 1 });
    const world = { jobs: [j], pod: pod(j, { kind: 'running' }) };
    const first = plan(nixBuild({}, { phase: 'Pending', attempts: 1, jobName: NAME }), world);
    const second = plan(nixBuild({}, first.status), { ...world, now: new Date(NOW.getTime() + 60_000) });
    expect(second.status).toEqual(first.status);
    expect(second.events).toEqual([]);
  });
});

describe('status helpers', () => {
  test('setCondition keeps lastTransitionTime unless the status flips', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const t1 = new Date('2026-01-01T00:01:00Z');
    const a = setCondition(undefined, { type: 'Building', status: 'False', reason: 'A', message: '' }, t0);
    const b = setCondition(a, { type: 'Building', status: 'False', reason: 'B', message: 'x' }, t1);
    expect(b[0]).toMatchObject({ reason: 'B', lastTransitionTime: '2026-01-01T00:00:00Z' });
    const c = setCondition(b, { type: 'Building', status: 'True', reason: 'C', message: '' }, t1);
    expect(c[0]!.lastTransitionTime).toBe('2026-01-01T00:01:00Z');
  });

  test.each([
    [0, '0s'],
    [45_000, '45s'],
    [119_000, '119s'],
    [192_000, '3m12s'],
    [3_600_000, '60m'],
    [3 * 3_600_000 + 300_000, '3h5m'],
    [30 * 3_600_000, '30h'],
    [76 * 3_600_000, '3d4h'],
    [10 * 86_400_000, '10d'],
  ])('humanDuration(%d) = %s', (ms, s) => expect(humanDuration(ms)).toBe(s));

  test('outputs: only the trailing store paths that belong to the derivation', () => {
    const log = `/nix/store/${HASH}-bash\nbuilt\n/nix/store/${HASH}-hello-2.12.1-dev\n/nix/store/${HASH}-hello-2.12.1\n`;
    expect(outputsFromLog(log, 'hello-2.12.1')).toEqual([
      { name: 'dev', path: `/nix/store/${HASH}-hello-2.12.1-dev` },
      { name: 'out', path: `/nix/store/${HASH}-hello-2.12.1` },
    ]);
    expect(outputsFromLog('error\n', 'hello')).toEqual([]);
  });
});
