/**
 * The operator's Prometheus metrics (prefix nixyard_operator_, base units, _total for
 * counters). Labels are bounded sets: result, phase, a known system (else "other"),
 * pool, reason. Never a derivation path, hash or NixBuild name.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { archOfSystem } from './pools.js';
import type { Phase } from './types.js';

/** A system as a label value: the known Linux systems, everything else "other". */
export function systemLabel(system: string | undefined): string {
  return system !== undefined && archOfSystem(system) !== undefined ? system : 'other';
}

export type ReconcileResult = 'success' | 'requeue' | 'error';

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly reconciles = new Counter({
    name: 'nixyard_operator_reconcile_total',
    help: 'Reconciles of NixBuilds by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly reconcileDuration = new Histogram({
    name: 'nixyard_operator_reconcile_duration_seconds',
    help: 'Time one reconcile took',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly builds = new Gauge({
    name: 'nixyard_operator_builds',
    help: 'NixBuilds by phase and system',
    labelNames: ['phase', 'system'] as const,
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'nixyard_operator_workqueue_depth',
    help: 'NixBuilds waiting for a reconcile',
    registers: [this.registry],
  });

  readonly jobsCreated = new Counter({
    name: 'nixyard_operator_jobs_created_total',
    help: 'Build Jobs created, by system and pool',
    labelNames: ['system', 'pool'] as const,
    registers: [this.registry],
  });

  readonly buildsFinished = new Counter({
    name: 'nixyard_operator_builds_finished_total',
    help: 'Builds that ended, by system, phase and reason',
    labelNames: ['system', 'phase', 'reason'] as const,
    registers: [this.registry],
  });

  readonly retries = new Counter({
    name: 'nixyard_operator_build_retries_total',
    help: 'Infrastructure failures retried, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly watchRestarts = new Counter({
    name: 'nixyard_operator_watch_restarts_total',
    help: 'Watches restarted after an error or a relist, by resource',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  readonly isLeader = new Gauge({
    name: 'nixyard_operator_leader',
    help: '1 while this replica holds the leader Lease',
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'nixyard_operator_' });
  }

  /** Replaces the builds gauge with a fresh count (from the informer's cache). */
  setBuilds(items: readonly { phase: Phase | undefined; system: string | undefined }[]): void {
    this.builds.reset();
    for (const { phase, system } of items)
      this.builds.inc({ phase: phase ?? 'Pending', system: systemLabel(system) });
  }
}
