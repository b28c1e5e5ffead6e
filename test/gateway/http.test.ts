import { describe, expect, test } from '@jest/globals';
import { createHttpServer } from '../../gateway/http.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { startStoreGateway } from '../support/gateway-harness.js';
import { runNix } from '../support/nix-cli.js';

describe('gateway HTTP', () => {
  test('healthz answers, readyz follows readiness', async () => {
    let ready = false;
    const app = createHttpServer({
      metrics: new GatewayMetrics({ defaultMetrics: false }),
      ready: () => ready,
    });
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(503);
    ready = true;
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    await app.close();
  });

  test('metrics are Prometheus text with op counts and durations', async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    metrics.opDone('worker', 'QueryPathInfo', true, 0.002);
    metrics.opDone('worker', 'AddToStoreNar', false, 0.5);
    metrics.sessionsActive.inc({ protocol: 'worker' });
    const app = createHttpServer({ metrics, ready: () => true });
    const res = await app.inject({ url: '/metrics' });
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toContain(
      'nixyard_gateway_ops_total{protocol="worker",op="QueryPathInfo",result="ok"} 1',
    );
    expect(res.body).toContain(
      'nixyard_gateway_ops_total{protocol="worker",op="AddToStoreNar",result="error"} 1',
    );
    expect(res.body).toContain(
      'nixyard_gateway_op_duration_seconds_bucket{le="0.005",protocol="worker",op="QueryPathInfo"} 1',
    );
    expect(res.body).toContain('nixyard_gateway_sessions_active{protocol="worker"} 1');
    await app.close();
  });
});

describe('gateway HTTP next to a running gateway', () => {
  test('--http-listen serves metrics that count real nix sessions and ops', async () => {
    const h = await startStoreGateway(['--http-listen', '127.0.0.1:0']);
    try {
      const port = h.gateway.httpPort;
      expect(port).toBeGreaterThan(0);
      await runNix('nix', ['store', 'ping', '--store', h.storeUrl], undefined, h.env);
      await runNix(
        'nix',
        ['path-info', '--store', h.storeUrl, '/nix/store/00000000000000000000000000000000-x'],
        undefined,
        h.env,
      ).catch(() => undefined);
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const value = (series: string): number => {
        const line = text.split('\n').find((l) => l.startsWith(`${series} `));
        return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
      };
      // path-info of a missing path makes nix 2.8 reconnect after the error: 3 sessions.
      expect(value('nixyard_gateway_sessions_total{protocol="worker"}')).toBe(3);
      expect(value('nixyard_gateway_sessions_active{protocol="worker"}')).toBe(0);
      expect(
        value('nixyard_gateway_ops_total{protocol="worker",op="QueryPathInfo",result="ok"}'),
      ).toBeGreaterThanOrEqual(1);
      expect(value('nixyard_gateway_ops_total{protocol="worker",op="QueryMissing",result="ok"}')).toBe(1);
    } finally {
      await h.stop();
    }
  });
});
