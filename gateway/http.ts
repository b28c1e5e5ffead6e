/** The gateway's HTTP side (fastify): health for probes and Prometheus metrics. */
import Fastify from 'fastify';
import type { GatewayMetrics } from './metrics.js';

export interface HttpDeps {
  readonly metrics: GatewayMetrics;
  /** False while the gateway cannot take sessions (e.g. its store is not open). */
  readonly ready: () => boolean;
}

export function createHttpServer(deps: HttpDeps) {
  // No request logging: probes and scrapes every few seconds would drown the session logs.
  const app = Fastify({ logger: false });
  app.get('/healthz', () => ({ status: 'ok' }));
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
