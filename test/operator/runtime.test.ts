import { leaseDecision } from '../../operator/leader.js';
import { loadOperatorConfig, operatorConfigHelp } from '../../operator/config.js';
import { createOperatorHttpServer } from '../../operator/http.js';
import { OperatorMetrics, systemLabel } from '../../operator/metrics.js';
import { WorkQueue } from '../../operator/queue.js';
import { operatorCommand } from '../../cli/commands/operator.js';

describe('WorkQueue', () => {
  test('dedupes, never runs a key twice at once, reruns a key added while it ran', async () => {
    const runs: string[] = [];
    let concurrent = 0;
    let max = 0;
    const release: (() => void)[] = [];
    const q = new WorkQueue(async (key) => {
      runs.push(key);
      concurrent++;
      max = Math.max(max, concurrent);
      await new Promise<void>((r) => release.push(r));
      concurrent--;
    });
    q.add('a');
    q.add('a');
    q.add('b');
    await Promise.resolve();
    q.add('a'); // while a runs
    expect(runs).toEqual(['a', 'b']);
    while (release.length) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    await q.idle();
    while (release.length) release.shift()!();
    await q.idle();
    expect(runs).toEqual(['a', 'b', 'a']);
    expect(max).toBe(2);
    await q.close();
  });

  test('a failing key comes back after a growing backoff; success resets it', async () => {
    let calls = 0;
    const errors: string[] = [];
    const q = new WorkQueue(
      () => {
        calls++;
        return calls < 3 ? Promise.reject(new Error(`boom ${calls}`)) : Promise.resolve();
      },
      { baseDelayMs: 5, maxDelayMs: 20 },
      (key, err) => errors.push(`${key}: ${String(err)}`),
    );
    q.add('x');
    const deadline = Date.now() + 2000;
    while (calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(calls).toBe(3);
    expect(errors).toEqual(['x: Error: boom 1', 'x: Error: boom 2']);
    expect([1, 2, 3, 10].map((n) => q.backoffMs(n))).toEqual([5, 10, 20, 20]);
    await q.close();
  });

  test('requeueAfter: a sooner requeue wins over a later one', async () => {
    const runs: number[] = [];
    const q = new WorkQueue(() => {
      runs.push(Date.now());
      return Promise.resolve(runs.length === 1 ? { requeueAfterMs: 10 } : {});
    });
    q.addAfter('k', 60_000);
    q.add('k');
    const deadline = Date.now() + 2000;
    while (runs.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(runs.length).toBe(2);
    await q.close();
  });
});

describe('leaseDecision (client-go semantics)', () => {
  const now = new Date('2026-11-25T10:00:30Z');
  test.each([
    ['no Lease', undefined, 'acquire'],
    ['a released Lease', { leaseDurationSeconds: 15 }, 'acquire'],
    [
      'our own',
      { holderIdentity: 'me', leaseDurationSeconds: 15, renewTime: new Date('2026-11-25T10:00:29Z') },
      'renew',
    ],
    [
      'another’s, fresh',
      { holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: new Date('2026-11-25T10:00:20Z') },
      'wait',
    ],
    [
      'another’s, expired',
      { holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: new Date('2026-11-25T10:00:10Z') },
      'acquire',
    ],
  ] as const)('%s', (_, lease, decision) => {
    expect(leaseDecision(lease, 'me', now)).toBe(decision);
  });
});

describe('operator configuration', () => {
  const base = ['--image=ghcr.io/nixyard/nixyard:0.1.0'];
  test('defaults, flags over environment', () => {
    const c = loadOperatorConfig([...base, '--namespace=builds'], {
      NIXYARD_NAMESPACE: 'ignored',
      POD_NAME: 'op-1',
    });
    expect(c).toMatchObject({
      namespace: 'builds',
      poolsFile: '/etc/nixyard/pools.json',
      job: {
        image: 'ghcr.io/nixyard/nixyard:0.1.0',
        storeClaim: 'nixyard-store',
        storeMountPath: '/var/lib/nixyard',
      },
      metrics: { host: '0.0.0.0', port: 8081 },
      maxAttempts: 3,
      concurrency: 16,
      ttlSecondsAfterFinished: 3600,
      leaderElection: { enabled: true, namespace: 'builds', name: 'nixyard-operator', identity: 'op-1' },
    });
    expect(c.job.redis).toBeUndefined();
    expect(loadOperatorConfig([...base, '--concurrency=64'], {}).concurrency).toBe(64);
    expect(loadOperatorConfig(base, { NIXYARD_REDIS_SECRET: 'redis:url' }).job.redis).toEqual({
      secretName: 'redis',
      secretKey: 'url',
    });
  });

  test.each([
    [[]],
    [[...base, '--max-attempts=0']],
    [[...base, '--max-attempts=100']],
    [[...base, '--concurrency=0']],
    [[...base, '--metrics-listen=8081']],
    [[...base, '--redis-url=localhost:6379']],
    [[...base, '--redis-url=redis://r', '--redis-secret=s:k']],
    [[...base, '--leader-election=yes']],
    [[...base, '--image-pull-policy=Sometimes']],
  ])('refuses %j', (argv) => {
    expect(() => loadOperatorConfig(argv, {})).toThrow(/^--/);
  });

  test('nixyard operator --help documents every setting', () => {
    for (const word of [
      '--namespace',
      '--pools-file',
      '--store-claim',
      '--redis-url',
      '--image',
      '--metrics-listen',
    ])
      expect(operatorCommand.usage).toContain(word);
    expect(operatorCommand.usage).toContain(operatorConfigHelp());
    expect(operatorCommand.name).toBe('operator');
  });
});

describe('operator HTTP and metrics', () => {
  test('/healthz, /readyz, /metrics with Prometheus names and no derivation labels', async () => {
    const metrics = new OperatorMetrics({ defaultMetrics: false });
    let ready = false;
    const app = createOperatorHttpServer({ metrics, healthy: () => true, ready: () => ready });
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(503);
    ready = true;
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    metrics.reconciles.inc({ result: 'success' });
    metrics.setBuilds([
      { phase: 'Building', system: 'x86_64-linux' },
      { phase: 'Building', system: 'x86_64-linux' },
      { phase: undefined, system: 'weird-system-from-a-user' },
    ]);
    const res = await app.inject({ url: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toContain('nixyard_operator_reconcile_total{result="success"} 1');
    expect(res.body).toContain('nixyard_operator_builds{phase="Building",system="x86_64-linux"} 2');
    expect(res.body).toContain('nixyard_operator_builds{phase="Pending",system="other"} 1');
    expect(res.body).toContain('nixyard_operator_workqueue_depth');
    expect(res.body).toContain('nixyard_operator_reconcile_duration_seconds_bucket');
    const metricsJson = await metrics.registry.getMetricsAsJSON();
    for (const m of metricsJson) {
      expect(m.name).toMatch(/^nixyard_operator_[a-z_]+$/);
      if (String(m.type) === 'counter') expect(m.name).toMatch(/_total$/);
    }
    const labels = new Set(
      (
        await Promise.all(
          metricsJson.map(async (m) => (await metrics.registry.getSingleMetric(m.name)!.get()).values),
        )
      ).flatMap((values) => values.flatMap((v) => Object.keys(v.labels))),
    );
    const bounded = new Set(['le', 'phase', 'result', 'system', 'pool', 'reason', 'resource']);
    expect([...labels].filter((l) => !bounded.has(l))).toEqual([]);
    await app.close();
  });

  test('systemLabel keeps the label set bounded', () => {
    expect(systemLabel('aarch64-linux')).toBe('aarch64-linux');
    expect(systemLabel('x86_64-darwin')).toBe('other');
    expect(systemLabel(undefined)).toBe('other');
  });
});
