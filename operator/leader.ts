/**
 * Leader election on a coordination.k8s.io Lease, with client-go's semantics: lease
 * 15 s, renew deadline 10 s, retry every 2 s; a replace carries the resourceVersion, so
 * a 409 means another replica won. Times are MicroTime (…00.123000Z): the API server
 * refuses a plain Date's milliseconds (kubernetes/NOTES.md §2, client-node #828).
 */
import * as k8s from '@kubernetes/client-node';

export interface LeaseTimings {
  readonly leaseDurationSeconds: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export const DEFAULT_TIMINGS: LeaseTimings = {
  leaseDurationSeconds: 15,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

export interface LeaseView {
  readonly holderIdentity?: string;
  readonly leaseDurationSeconds?: number;
  readonly renewTime?: Date;
}

/** What a candidate may do with the Lease as it stands: take it, renew its own, or wait. */
export function leaseDecision(
  lease: LeaseView | undefined,
  identity: string,
  now: Date,
  timings: LeaseTimings = DEFAULT_TIMINGS,
): 'acquire' | 'renew' | 'wait' {
  if (!lease || !lease.holderIdentity) return 'acquire';
  if (lease.holderIdentity === identity) return 'renew';
  const duration = (lease.leaseDurationSeconds ?? timings.leaseDurationSeconds) * 1000;
  const renewed = lease.renewTime?.getTime() ?? 0;
  return now.getTime() > renewed + duration ? 'acquire' : 'wait';
}

function microTime(d: Date): k8s.V1MicroTime {
  return new k8s.V1MicroTime(d.getTime());
}

function statusOf(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'number'
    ? e.code
    : undefined;
}

export interface LeaderCallbacks {
  readonly onStartedLeading: () => void;
  /** Called once when leadership is lost (the process should exit and restart). */
  readonly onStoppedLeading: () => void;
  readonly log?: (message: string, fields?: object) => void;
}

export class LeaderElector {
  private leading = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly api: k8s.CoordinationV1Api,
    private readonly lease: { readonly namespace: string; readonly name: string; readonly identity: string },
    private readonly callbacks: LeaderCallbacks,
    private readonly timings: LeaseTimings = DEFAULT_TIMINGS,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  /** Gives the Lease up (so a successor need not wait for it to expire) and stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const current = await this.api.readNamespacedLease({
        name: this.lease.name,
        namespace: this.lease.namespace,
      });
      if (current.spec?.holderIdentity === this.lease.identity) {
        current.spec.holderIdentity = undefined;
        current.spec.renewTime = undefined;
        await this.api.replaceNamespacedLease({
          name: this.lease.name,
          namespace: this.lease.namespace,
          body: current,
        });
      }
    } catch {
      // Best effort: the Lease expires anyway.
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.timings.retryPeriodMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const ok = await this.tryAcquireOrRenew().catch((e: unknown) => {
      this.callbacks.log?.('lease update failed', { error: String(e) });
      return false;
    });
    const now = Date.now();
    if (ok) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.callbacks.log?.('became the leader', { lease: this.lease.name, identity: this.lease.identity });
        this.callbacks.onStartedLeading();
      }
    } else if (this.leading && now - this.lastRenew > this.timings.renewDeadlineMs) {
      this.leading = false;
      this.stopped = true;
      this.callbacks.log?.('lost the lease', { lease: this.lease.name });
      this.callbacks.onStoppedLeading();
      return;
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.lease;
    const now = new Date();
    let current: k8s.V1Lease | undefined;
    try {
      current = await this.api.readNamespacedLease({ name, namespace });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    if (!current) {
      const body: k8s.V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: this.timings.leaseDurationSeconds,
          acquireTime: microTime(now),
          renewTime: microTime(now),
          leaseTransitions: 0,
        },
      };
      try {
        await this.api.createNamespacedLease({ namespace, body });
        return true;
      } catch (e) {
        if (statusOf(e) === 409) return false;
        throw e;
      }
    }
    const spec = current.spec ?? {};
    const decision = leaseDecision(
      {
        ...(spec.holderIdentity ? { holderIdentity: spec.holderIdentity } : {}),
        ...(spec.leaseDurationSeconds !== undefined
          ? { leaseDurationSeconds: spec.leaseDurationSeconds }
          : {}),
        ...(spec.renewTime ? { renewTime: new Date(spec.renewTime) } : {}),
      },
      identity,
      now,
      this.timings,
    );
    if (decision === 'wait') return false;
    const takeover = decision === 'acquire';
    current.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.timings.leaseDurationSeconds,
      renewTime: microTime(now),
      ...(takeover
        ? {
            acquireTime: microTime(now),
            leaseTransitions: (spec.leaseTransitions ?? 0) + (spec.holderIdentity ? 1 : 0),
          }
        : {}),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: current });
      return true;
    } catch (e) {
      if (statusOf(e) === 409) return false;
      throw e;
    }
  }
}
