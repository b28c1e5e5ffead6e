/**
 * Realising derived paths the way Nix's worker does it for one client request: for each
 * requested derivation, first realise the input derivations whose outputs are missing
 * (in parallel), then submit the derivation itself to the scheduler; a failed input
 * fails its dependents. Without keep-going the first failure cancels what this request
 * started and leaves the rest unattempted (MiscFailure, empty message, as Nix reports it).
 */
import { BuildStatus } from '../../nix/protocol/worker.js';
import type { Derivation } from '../../nix/derivation/types.js';
import type { LocalStore } from '../../store/local-store.js';
import { magenta } from '../nix-messages.js';
import { readStoreDerivation } from '../worker/derivations.js';
import type { BuildHandle, BuildOutcome, Scheduler } from './types.js';

export interface RealiseEvents {
  /** A derivation starts building on the scheduler (Nix's actBuild activity). */
  readonly buildStarted?: (drvPath: string) => void;
  readonly logLine?: (drvPath: string, line: string) => void;
  readonly buildStopped?: (drvPath: string, outcome: BuildOutcome) => void;
}

export interface RealiseOptions {
  readonly store: LocalStore;
  readonly scheduler: Scheduler;
  readonly requester: string;
  readonly keepGoing: boolean;
  readonly keepRunning?: boolean;
  readonly events?: RealiseEvents;
}

const NOT_ATTEMPTED: BuildOutcome = {
  status: BuildStatus.MiscFailure,
  errorMsg: '',
  timesBuilt: 0,
  startTime: 0,
  stopTime: 0,
  outputs: new Map(),
};

function isFailure(o: BuildOutcome): boolean {
  return (
    o.status !== BuildStatus.Built &&
    o.status !== BuildStatus.AlreadyValid &&
    o.status !== BuildStatus.Substituted
  );
}

/** Output name → path of the outputs that have fixed paths. */
export function knownOutputPaths(drv: Derivation): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, o] of drv.outputs)
    if (o.kind === 'inputAddressed' || o.kind === 'fixed') out.set(name, o.path);
  return out;
}

export class Realisation {
  private readonly goals = new Map<string, Promise<BuildOutcome>>();
  private readonly handles = new Set<BuildHandle>();
  private stopped = false;

  constructor(private readonly options: RealiseOptions) {}

  /** The outcome of building `drvPath` (all of its outputs), memoised for this request. */
  derivation(drvPath: string): Promise<BuildOutcome> {
    let goal = this.goals.get(drvPath);
    if (!goal) {
      goal = this.run(drvPath);
      this.goals.set(drvPath, goal);
    }
    return goal;
  }

  /** Submits `drvPath` as it is (no input realisation): BuildDerivation's derivations. */
  submitted(drvPath: string): Promise<BuildOutcome> {
    return this.build(drvPath);
  }

  /** Stop: release every build this request started (they are cancelled unless others want them). */
  release(): void {
    this.stopped = true;
    for (const h of this.handles) h.release();
    this.handles.clear();
  }

  private async run(drvPath: string): Promise<BuildOutcome> {
    const { store } = this.options;
    const drv = await readStoreDerivation(store, drvPath);
    const outputs = knownOutputPaths(drv);
    const valid = await store.queryValid([...outputs.values()]);
    if (outputs.size === drv.outputs.size && [...outputs.values()].every((p) => valid.has(p))) {
      return { ...NOT_ATTEMPTED, status: BuildStatus.AlreadyValid, outputs };
    }
    const inputs = await Promise.all([...drv.inputDrvs.keys()].map((input) => this.derivation(input)));
    const failed = inputs.filter(isFailure).length;
    if (failed > 0) {
      return {
        ...NOT_ATTEMPTED,
        status: BuildStatus.DependencyFailed,
        errorMsg: `${failed} dependencies of derivation '${magenta(drvPath)}' failed to build`,
      };
    }
    if (this.stopped) return NOT_ATTEMPTED;
    const outcome = await this.build(drvPath);
    if (isFailure(outcome) && !this.options.keepGoing) this.release();
    return outcome;
  }

  private async build(drvPath: string): Promise<BuildOutcome> {
    const { scheduler, requester, keepRunning, events } = this.options;
    const handle = scheduler.submit(drvPath, { requester, keepRunning: keepRunning ?? false });
    this.handles.add(handle);
    // The client sees the build (and its log) from when it runs, not while it is queued:
    // a queued derivation cancelled by an earlier failure never appears.
    let started = false;
    let unfollow = (): void => undefined;
    const following = handle.started.then(() => {
      started = true;
      events?.buildStarted?.(drvPath);
      const stop = handle.follow((line) => events?.logLine?.(drvPath, line));
      unfollow = () => void stop();
    });
    try {
      const outcome = await handle.outcome;
      if (started) {
        await following;
        events?.buildStopped?.(drvPath, outcome);
      }
      return outcome;
    } finally {
      unfollow();
      if (this.handles.delete(handle)) handle.release();
    }
  }
}
