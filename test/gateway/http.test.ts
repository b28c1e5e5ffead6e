import { describe, expect, test } from '@jest/globals';
import { createHttpServer } from '../../gateway/http.js';
import { GatewayMetrics } from '../../gateway/metrics.js';

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
