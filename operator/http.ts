/** The operator's HTTP side (fastify, its own port): probes and Prometheus metrics. */
import Fastify from 'fastify';
import type { OperatorMetrics } from './metrics.js';

export interface OperatorHttpDeps {
  readonly metrics: OperatorMetrics;
  /** False when the process should be restarted (e.g. its watches gave up). */
  readonly healthy: () => boolean;
  /** False until the operator can do its work (standby replicas are ready too). */
  readonly ready: () => boolean;
}

export function createOperatorHttpServer(deps: OperatorHttpDeps) {
  const app = Fastify({ logger: false });
  app.get('/healthz', async (_req, reply) => {
    if (!deps.healthy()) return reply.code(503).send({ status: 'unhealthy' });
    return { status: 'ok' };
  });
  app.get('/readyz', async (_req, reply) => {
    if (!deps.ready()) return reply.code(503).send({ status: 'not ready' });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  return app;
}
