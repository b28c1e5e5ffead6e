/**
 * The local scheduler: a queue of derivations run by an executor with at most `maxJobs`
 * at a time. A derivation asked for by several sessions is built once; they share its
 * log and outcome. When the last interested requester releases it, it is cancelled
 * (unless a requester asked to keep it running).
 */
import { BuildStatus } from '../../nix/protocol/worker.js';
import { BuildOutput } from './build-output.js';
import type { BuildHandle, BuildOutcome, Executor, Scheduler, SubmitOptions } from './types.js';

interface Job {
  readonly key: string;
  readonly drvPath: string;
  readonly check: boolean;
  readonly outcome: Promise<BuildOutcome>;
  readonly resolve: (o: BuildOutcome) => void;
  readonly started: Promise<void>;
  readonly start: () => void;
  readonly abort: AbortController;
  readonly output: BuildOutput;
  readonly requesters: Map<string, number>;
  keepRunning: boolean;
  state: 'queued' | 'running' | 'done';
}

export function cancelledOutcome(why: string): BuildOutcome {
  return {
    status: BuildStatus.MiscFailure,
    errorMsg: why,
    timesBuilt: 0,
    startTime: 0,
    stopTime: 0,
    outputs: new Map(),
  };
}

export class LocalScheduler implements Scheduler {
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  private running = 0;
  private closed = false;

  constructor(
    private readonly executor: Executor,
    private readonly maxJobs: number,
  ) {}

  submit(drvPath: string, options: SubmitOptions): BuildHandle {
    // A check build is another build than the normal one of the same derivation.
    const check = options.check ?? false;
    const key = check ? `check:${drvPath}` : drvPath;
    let job = this.jobs.get(key);
    if (!job) {
      job = this.newJob(key, drvPath, check);
      this.jobs.set(key, job);
      this.queue.push(job);
      queueMicrotask(() => this.pump());
    }
    job.requesters.set(options.requester, (job.requesters.get(options.requester) ?? 0) + 1);
    if (options.keepRunning) job.keepRunning = true;
    return this.handle(job, options.requester);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.jobs.values()];
    for (const job of all) this.cancel(job, 'the gateway is shutting down');
    await Promise.allSettled(all.map((j) => j.outcome));
  }

  /** Derivations queued or running, for metrics and tests. */
  get active(): { queued: number; running: number } {
    return { queued: this.queue.length, running: this.running };
  }

  private newJob(key: string, drvPath: string, check: boolean): Job {
    let resolve!: (o: BuildOutcome) => void;
    const outcome = new Promise<BuildOutcome>((r) => (resolve = r));
    let start!: () => void;
    const started = new Promise<void>((r) => (start = r));
    return {
      key,
      drvPath,
      check,
      outcome,
      resolve,
      started,
      start,
      abort: new AbortController(),
      output: new BuildOutput(),
      requesters: new Map(),
      keepRunning: false,
      state: 'queued',
    };
  }

  private handle(job: Job, requester: string): BuildHandle {
    let released = false;
    return {
      drvPath: job.drvPath,
      outcome: job.outcome,
      started: job.started,
      follow: (listener, notice) => job.output.follow(listener, notice),
      release: () => {
        if (released) return;
        released = true;
        const n = (job.requesters.get(requester) ?? 1) - 1;
        if (n > 0) job.requesters.set(requester, n);
        else job.requesters.delete(requester);
        if (job.requesters.size === 0 && !job.keepRunning)
          this.cancel(job, 'nobody wants this build any more');
      },
    };
  }

  private cancel(job: Job, why: string): void {
    if (job.state === 'done') return;
    if (job.state === 'queued') {
      this.queue.splice(this.queue.indexOf(job), 1);
      this.finish(job, cancelledOutcome(why));
      return;
    }
    job.abort.abort(new Error(why));
  }

  private finish(job: Job, outcome: BuildOutcome): void {
    job.state = 'done';
    this.jobs.delete(job.key);
    job.output.close();
    job.resolve(outcome);
  }

  private pump(): void {
    while (!this.closed && this.running < this.maxJobs && this.queue.length > 0) {
      const job = this.queue.shift()!;
      job.state = 'running';
      this.running++;
      job.start();
      this.executor(job.drvPath, {
        signal: job.abort.signal,
        log: (line, notice) => job.output.push(line, notice),
        check: job.check,
      })
        .catch((err: unknown) => cancelledOutcome(err instanceof Error ? err.message : String(err)))
        .then((outcome) => {
          this.running--;
          this.finish(job, outcome);
          // Let the requesters react first (a failure without keep-going releases what
          // they queued), as Nix stops its worker before starting another build.
          setImmediate(() => this.pump());
        })
        .catch(() => undefined);
    }
  }
}
