/**
 * The gateway's Prometheus metrics. Labels are bounded sets (protocol, op name, result):
 * never a store path or key, which would grow without limit.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class GatewayMetrics {
  readonly registry = new Registry();

  readonly sessionsActive = new Gauge({
    name: 'nixyard_gateway_sessions_active',
    help: 'Open protocol sessions',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });

  readonly sessionsTotal = new Counter({
    name: 'nixyard_gateway_sessions_total',
    help: 'Protocol sessions started',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });

  readonly ops = new Counter({
    name: 'nixyard_gateway_ops_total',
    help: 'Protocol operations by name and result',
    labelNames: ['protocol', 'op', 'result'] as const,
    registers: [this.registry],
  });

  readonly opDuration = new Histogram({
    name: 'nixyard_gateway_op_duration_seconds',
    help: 'Time from reading an operation to its reply',
    labelNames: ['protocol', 'op'] as const,
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 600],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'nixyard_gateway_' });
  }

  opDone(protocol: 'worker' | 'serve', op: string, ok: boolean, seconds: number): void {
    this.ops.inc({ protocol, op, result: ok ? 'ok' : 'error' });
    this.opDuration.observe({ protocol, op }, seconds);
  }
}
