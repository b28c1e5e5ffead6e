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
  readonly buildStarted?: (drvPath: string, check: boolean) => void;
  readonly logLine?: (drvPath: string, line: string) => void;
  /** The runner's notice about a build (`waiting for lock on …`), not part of its log. */
  readonly notice?: (drvPath: string, text: string) => void;
  readonly buildStopped?: (drvPath: string, outcome: BuildOutcome) => void;
}

export interface RealiseOptions {
  readonly store: LocalStore;
  readonly scheduler: Scheduler;
  readonly requester: string;
  readonly keepGoing: boolean;
  readonly keepRunning?: boolean;
  /**
   * Check mode (BuildMode 2) for the requested derivations: rebuild their valid outputs
   * and compare. Their inputs are realised normally, as Nix does.
   */
  readonly check?: boolean;
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

/** Outputs a request or a dependent needs: all, or these names. */
export type Wanted = 'all' | readonly string[];

export class Realisation {
  private readonly goals = new Map<string, Promise<BuildOutcome>>();
  private readonly builds = new Map<string, Promise<BuildOutcome>>();
  private readonly handles = new Set<BuildHandle>();
  private stopped = false;
  /** Derivations read by `plan`, and their breadth-first rank from the targets. */
  private readonly loaded = new Map<string, Derivation>();
  private readonly ranks = new Map<string, number>();
  private ready: { rank: number; go: () => void }[] = [];

  constructor(private readonly options: RealiseOptions) {}

  /**
   * Reads the derivation graph of the targets first, breadth first (targets in order,
   * inputs in .drv order), like the goals Nix's worker creates. Derivations that become
   * ready together are then submitted in that order, whatever order their reads finish
   * in: the same request builds in the same order every time (and as the recorded daemon
   * did with max-jobs 1).
   */
  async plan(drvPaths: readonly string[]): Promise<void> {
    const { store } = this.options;
    let level = [...drvPaths];
    while (level.length > 0) {
      level = level.filter((p, i) => !this.ranks.has(p) && level.indexOf(p) === i);
      for (const p of level) this.ranks.set(p, this.ranks.size);
      const drvs = await Promise.all(level.map((p) => readStoreDerivation(store, p).catch(() => undefined)));
      const next: string[] = [];
      for (const [i, drv] of drvs.entries()) {
        if (drv === undefined) continue;
        this.loaded.set(level[i]!, drv);
        const outs = [...knownOutputPaths(drv).values()];
        const valid = await store.queryValid(outs);
        // Inputs of a derivation with valid outputs are only needed when it is checked.
        if (outs.length === drv.outputs.size && outs.every((o) => valid.has(o)) && !this.options.check)
          continue;
        next.push(...drv.inputDrvs.keys());
      }
      level = next;
    }
  }

  /** The outcome of a requested derivation (the wanted outputs), in the request's mode. */
  derivation(drvPath: string, wanted: Wanted = 'all'): Promise<BuildOutcome> {
    return this.goal(drvPath, this.options.check ?? false, wanted);
  }

  /** Submits `drvPath` as it is (no input realisation): BuildDerivation's derivations. */
  submitted(drvPath: string): Promise<BuildOutcome> {
    return this.build(drvPath, this.options.check ?? false);
  }

  /**
   * Memoised for this request, per mode (a checked target may be another's input) and
   * wanted outputs (a dependent needs only the outputs it uses to be valid, as in Nix).
   */
  private goal(drvPath: string, check: boolean, wanted: Wanted): Promise<BuildOutcome> {
    const outs = wanted === 'all' ? '*' : [...wanted].sort().join(',');
    const key = `${check ? 'check' : 'normal'}:${drvPath}!${outs}`;
    let goal = this.goals.get(key);
    if (!goal) {
      goal = this.run(drvPath, check, wanted);
      this.goals.set(key, goal);
    }
    return goal;
  }

  /** Stop: release every build this request started (they are cancelled unless others want them). */
  release(): void {
    this.stopped = true;
    for (const h of this.handles) h.release();
    this.handles.clear();
  }

  private async run(drvPath: string, check: boolean, wanted: Wanted): Promise<BuildOutcome> {
    const { store } = this.options;
    const drv = this.loaded.get(drvPath) ?? (await readStoreDerivation(store, drvPath));
    const outputs = knownOutputPaths(drv);
    const names = wanted === 'all' ? [...drv.outputs.keys()] : wanted;
    const paths = names.map((n) => outputs.get(n));
    const valid = await store.queryValid(paths.filter((p) => p !== undefined));
    const allValid = paths.every((p) => p !== undefined && valid.has(p));
    if (allValid && !check) {
      const validOutputs = new Map([...outputs].filter(([, p]) => valid.has(p)));
      return { ...NOT_ATTEMPTED, status: BuildStatus.AlreadyValid, outputs: validOutputs };
    }
    if (!allValid && check) {
      return {
        ...NOT_ATTEMPTED,
        errorMsg: `some outputs of '${magenta(drvPath)}' are not valid, so checking is not possible`,
      };
    }
    const inputs = await Promise.all(
      [...drv.inputDrvs].map(([input, used]) => this.goal(input, false, [...used])),
    );
    const failed = inputs.filter(isFailure).length;
    if (failed > 0) {
      return {
        ...NOT_ATTEMPTED,
        status: BuildStatus.DependencyFailed,
        errorMsg: `${failed} dependencies of derivation '${magenta(drvPath)}' failed to build`,
      };
    }
    await this.turn(drvPath);
    if (this.stopped) return NOT_ATTEMPTED;
    // Goals of the same derivation for other outputs share its one build (Nix merges
    // wanted outputs into one goal), and the client sees it once.
    const key = `${check ? 'check' : 'normal'}:${drvPath}`;
    let build = this.builds.get(key);
    if (!build) {
      build = this.build(drvPath, check);
      this.builds.set(key, build);
    }
    const outcome = await build;
    if (isFailure(outcome) && !this.options.keepGoing) this.release();
    return outcome;
  }

  /** Waits until the derivations that became ready in this turn of the event loop are sorted. */
  private turn(drvPath: string): Promise<void> {
    return new Promise((go) => {
      this.ready.push({ rank: this.ranks.get(drvPath) ?? Number.MAX_SAFE_INTEGER, go });
      if (this.ready.length > 1) return;
      setImmediate(() => {
        const batch = this.ready.sort((a, b) => a.rank - b.rank);
        this.ready = [];
        for (const r of batch) r.go();
      });
    });
  }

  private async build(drvPath: string, check: boolean): Promise<BuildOutcome> {
    const { scheduler, requester, keepRunning, events } = this.options;
    const handle = scheduler.submit(drvPath, { requester, keepRunning: keepRunning ?? false, check });
    this.handles.add(handle);
    // The client sees the build (and its log) from when it runs, not while it is queued:
    // a queued derivation cancelled by an earlier failure never appears.
    let started = false;
    let unfollow = (): void => undefined;
    const following = handle.started.then(() => {
      started = true;
      events?.buildStarted?.(drvPath, check);
      const stop = handle.follow(
        (line) => events?.logLine?.(drvPath, line),
        (text) => events?.notice?.(drvPath, text),
      );
      unfollow = () => void stop();
    });
    try {
      const outcome = await handle.outcome;
      // Its outputs are temp roots of the session, until it ends (Nix's goals add
      // them too): a GC, on any replica, keeps a dependency until its dependents built.
      if (outcome.outputs.size > 0)
        await Promise.resolve(this.options.store.tempRoots.add(requester, outcome.outputs.values())).catch(
          () => undefined, // the session is gone (expired): nothing to keep for it
        );
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
