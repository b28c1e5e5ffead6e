/**
 * The Job controller (NonIndexed Jobs): one pod per remaining completion, named
 * `<job>-<5 random>` with the job-name/controller-uid labels and the
 * `batch.kubernetes.io/job-tracking` finalizer; backoffLimit, podFailurePolicy,
 * activeDeadlineSeconds, ttlSecondsAfterFinished, and the 1.31+ condition sequence
 * (FailureTarget → Failed, SuccessCriteriaMet → Complete).
 * https://kubernetes.io/docs/concepts/workloads/controllers/job/
 * https://kubernetes.io/docs/tasks/job/pod-failure-policy/
 * https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/
 * Not modelled: Indexed completion, successPolicy, backoffLimitPerIndex, suspend
 * resume semantics beyond deleting active pods, the exponential pod-retry delay.
 */
import type { Api } from '../apiserver/api.js';
import { ApiError } from '../apiserver/errors.js';
import type { ResourceType } from '../apiserver/resources.js';
import { clone, rfc3339, type Dict, type KObject } from '../apiserver/types.js';
import { recordEvent } from './events.js';

export const JOB_TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking';

interface Rule {
  action: 'FailJob' | 'Ignore' | 'Count' | 'FailIndex';
  onExitCodes?: { containerName?: string; operator: 'In' | 'NotIn'; values: number[] };
  onPodConditions?: { type: string; status?: string }[];
}

function condition(status: Dict, type: string): Dict | undefined {
  return ((status.conditions as Dict[] | undefined) ?? []).find(
    (c) => c.type === type && c.status === 'True',
  );
}

/** Which podFailurePolicy rule matches a failed pod (index and rule), if any. */
export function matchRule(pod: KObject, rules: readonly Rule[]): [number, Rule, string] | undefined {
  const status = (pod.status as Dict | undefined) ?? {};
  for (const [i, r] of rules.entries()) {
    if (r.onExitCodes) {
      const { containerName, operator, values } = r.onExitCodes;
      for (const cs of (status.containerStatuses as Dict[] | undefined) ?? []) {
        if (containerName && cs.name !== containerName) continue;
        const code = ((cs.state as Dict | undefined)?.terminated as Dict | undefined)?.exitCode as
          number | undefined;
        if (code === undefined || code === 0) continue;
        if ((operator === 'In') === values.includes(code))
          return [
            i,
            r,
            `Container ${String(cs.name)} for pod ${pod.metadata.namespace}/${pod.metadata.name} failed with exit code ${code} matching ${r.action} rule at index ${i}`,
          ];
      }
    }
    for (const pc of r.onPodConditions ?? []) {
      const c = ((status.conditions as Dict[] | undefined) ?? []).find(
        (x) => x.type === pc.type && x.status === (pc.status ?? 'True'),
      );
      if (c)
        return [
          i,
          r,
          `Pod ${pod.metadata.namespace}/${pod.metadata.name} has condition ${pc.type} matching ${r.action} rule at index ${i}`,
        ];
    }
  }
  return undefined;
}

function randomSuffix(): string {
  const a = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => a[Math.floor(Math.random() * a.length)]).join('');
}

export class JobController {
  private busy = false;
  private again = false;
  private stopped = false;
  /** Pods already counted, per job uid (the real controller uses uncountedTerminatedPods). */
  private readonly counted = new Map<string, Map<string, 'succeeded' | 'failed' | 'ignored'>>();
  private readonly timers = new Map<string, () => void>();

  constructor(private readonly api: Api) {
    api.react((e) => {
      if (e.typeKey === 'batch/v1/jobs' || e.typeKey === '/v1/pods') this.kick();
    });
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.timers.values()) c();
  }

  private get jobs(): ResourceType {
    return this.api.findType('batch', 'v1', 'jobs')!;
  }
  private get pods(): ResourceType {
    return this.api.findType('', 'v1', 'pods')!;
  }

  kick(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    setImmediate(() => {
      this.syncAll()
        .catch((e: unknown) => {
          if (!(e instanceof ApiError && (e.code === 409 || e.code === 404)))
            process.emitWarning(`sim job controller: ${String(e)}`);
          else this.again = true;
        })
        .finally(() => {
          this.busy = false;
          if (this.again) {
            this.again = false;
            this.kick();
          }
        });
    });
  }

  private async syncAll(): Promise<void> {
    const pods = this.api.list(this.pods, undefined).items;
    const jobs = this.api.list(this.jobs, undefined).items;
    // Orphaned pods (job gone or orphaned) lose the tracking finalizer.
    for (const p of pods) {
      if (!(p.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER)) continue;
      const owner = (p.metadata.ownerReferences ?? []).find((r) => r.kind === 'Job' && r.controller);
      if (!owner || !jobs.some((j) => j.metadata.uid === owner.uid)) await this.dropFinalizer(p);
    }
    for (const job of jobs)
      await this.syncJob(
        job,
        pods.filter((p) =>
          (p.metadata.ownerReferences ?? []).some((r) => r.uid === job.metadata.uid && r.controller),
        ),
      );
  }

  private async dropFinalizer(p: KObject): Promise<void> {
    const cur = this.api.tryGet(this.pods, p.metadata.namespace!, p.metadata.name!);
    if (!cur) return;
    cur.metadata.finalizers = (cur.metadata.finalizers ?? []).filter((f) => f !== JOB_TRACKING_FINALIZER);
    await this.api.update(this.pods, cur.metadata.namespace!, cur.metadata.name!, cur, {
      fieldManager: 'job-controller',
    });
  }

  private timer(key: string, atMs: number, fn: () => void): void {
    if (this.timers.has(key)) return;
    this.timers.set(
      key,
      this.api.clock.after(Math.max(0, atMs - this.api.clock.now()), () => {
        this.timers.delete(key);
        fn();
      }),
    );
  }

  private async syncJob(job: KObject, pods: KObject[]): Promise<void> {
    const uid = job.metadata.uid!;
    const spec = job.spec as Dict;
    const status = clone((job.status as Dict | undefined) ?? {});
    const now = this.api.clock.now();
    const nowS = rfc3339(now);
    const ns = job.metadata.namespace!;
    const finished = condition(status, 'Complete') ?? condition(status, 'Failed');
    if (finished) {
      for (const p of pods)
        if ((p.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER)) await this.dropFinalizer(p);
      const ttl = spec.ttlSecondsAfterFinished as number | undefined;
      if (ttl !== undefined && !job.metadata.deletionTimestamp) {
        const at = Date.parse(String(finished.lastTransitionTime)) + ttl * 1000;
        if (at <= now)
          await this.api
            .delete(this.jobs, ns, job.metadata.name!, { propagationPolicy: 'Background' })
            .catch(() => undefined);
        else this.timer(`ttl/${uid}`, at, () => this.kick());
      }
      return;
    }
    if (job.metadata.deletionTimestamp) return;
    const counted = this.counted.get(uid) ?? new Map<string, 'succeeded' | 'failed' | 'ignored'>();
    this.counted.set(uid, counted);
    const rules = ((spec.podFailurePolicy as Dict | undefined)?.rules as Rule[] | undefined) ?? [];
    let failJob: [string, string] | undefined;
    for (const p of pods) {
      const phase = (p.status as Dict | undefined)?.phase;
      if ((phase !== 'Succeeded' && phase !== 'Failed') || counted.has(p.metadata.uid!)) continue;
      if (phase === 'Succeeded') counted.set(p.metadata.uid!, 'succeeded');
      else {
        const m = matchRule(p, rules);
        if (m?.[1].action === 'Ignore') counted.set(p.metadata.uid!, 'ignored');
        else {
          counted.set(p.metadata.uid!, 'failed');
          if (m?.[1].action === 'FailJob' || m?.[1].action === 'FailIndex')
            failJob ??= ['PodFailurePolicy', m[2]];
        }
      }
      if ((p.metadata.finalizers ?? []).includes(JOB_TRACKING_FINALIZER)) await this.dropFinalizer(p);
    }
    const succeeded = [...counted.values()].filter((v) => v === 'succeeded').length;
    const failed = [...counted.values()].filter((v) => v === 'failed').length;
    const live = pods.filter(
      (p) => !['Succeeded', 'Failed'].includes(String((p.status as Dict | undefined)?.phase)),
    );
    const active = live.filter((p) => !p.metadata.deletionTimestamp);
    const terminating = live.filter((p) => p.metadata.deletionTimestamp);
    status.startTime ??= nowS;
    const backoffLimit = Number(spec.backoffLimit ?? 6);
    const deadline = spec.activeDeadlineSeconds as number | undefined;
    const target = condition(status, 'FailureTarget');
    if (!failJob && !target) {
      if (failed > backoffLimit)
        failJob = ['BackoffLimitExceeded', 'Job has reached the specified backoff limit'];
      else if (deadline !== undefined) {
        const at = Date.parse(String(status.startTime)) + deadline * 1000;
        if (at <= now) failJob = ['DeadlineExceeded', 'Job was active longer than specified deadline'];
        else this.timer(`deadline/${uid}`, at, () => this.kick());
      }
    }
    const conds = ((status.conditions as Dict[] | undefined) ?? []).slice();
    const add = (type: string, reason: string, message: string): void => {
      if (!conds.some((c) => c.type === type))
        conds.push({ type, status: 'True', reason, message, lastProbeTime: nowS, lastTransitionTime: nowS });
    };
    const completions = Number(spec.completions ?? 1);
    let events: [string, string, string][] = [];
    if (failJob || target) {
      const [reason, message] = failJob ?? [String(target!.reason), String(target!.message)];
      add('FailureTarget', reason, message);
      for (const p of active)
        await this.api
          .delete(this.pods, ns, p.metadata.name!, { propagationPolicy: 'Background' })
          .catch(() => undefined);
      if (live.length === 0) {
        add('Failed', reason, message);
        events.push(['Warning', reason, message]);
      }
    } else if (succeeded >= completions) {
      add('SuccessCriteriaMet', 'CompletionsReached', 'Reached expected number of succeeded pods');
      if (live.length === 0) {
        add('Complete', 'CompletionsReached', 'Reached expected number of succeeded pods');
        status.completionTime = nowS;
        events.push(['Normal', 'Completed', 'Job completed']);
      }
    } else if (spec.suspend === true) {
      for (const p of active)
        await this.api.delete(this.pods, ns, p.metadata.name!, {}).catch(() => undefined);
      add('Suspended', 'JobSuspended', 'Job suspended');
    } else {
      const replaceable =
        spec.podReplacementPolicy === 'Failed' ? active.length + terminating.length : active.length;
      const want = Math.min(Number(spec.parallelism ?? 1), completions - succeeded) - replaceable;
      for (let i = 0; i < want; i++) {
        const name = await this.createPod(job);
        events.push(['Normal', 'SuccessfulCreate', `Created pod: ${name}`]);
      }
    }
    status.conditions = conds;
    status.active = active.length;
    status.ready = active.filter((p) =>
      ((p.status as Dict | undefined)?.conditions as Dict[] | undefined)?.some(
        (c) => c.type === 'Ready' && c.status === 'True',
      ),
    ).length;
    status.terminating = terminating.length;
    status.succeeded = succeeded;
    status.failed = failed;
    status.uncountedTerminatedPods = {};
    for (const k of ['active', 'succeeded', 'failed'] as const) if (status[k] === 0) delete status[k];
    const cur = this.api.tryGet(this.jobs, ns, job.metadata.name!);
    if (!cur || cur.metadata.uid !== uid) return;
    cur.status = status;
    await this.api.update(this.jobs, ns, cur.metadata.name!, cur, {
      subresource: 'status',
      fieldManager: 'job-controller',
    });
    for (const [type, reason, message] of events)
      await recordEvent(this.api, job, type as 'Normal' | 'Warning', reason, message, 'job-controller');
    events = [];
  }

  private async createPod(job: KObject): Promise<string> {
    const tmpl = clone(((job.spec as Dict).template as Dict | undefined) ?? {});
    const meta = (tmpl.metadata as Dict | undefined) ?? {};
    const name = `${job.metadata.name}-${randomSuffix()}`;
    const pod: KObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        labels: { ...(meta.labels as Record<string, string> | undefined) },
        ...(meta.annotations ? { annotations: meta.annotations as Record<string, string> } : {}),
        ownerReferences: [
          {
            apiVersion: 'batch/v1',
            kind: 'Job',
            name: job.metadata.name!,
            uid: job.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
        finalizers: [JOB_TRACKING_FINALIZER],
      },
      spec: tmpl.spec,
    };
    await this.api.create(this.pods, job.metadata.namespace!, pod, { fieldManager: 'job-controller' });
    return name;
  }
}
