/**
 * The scheduler interface: the gateway submits derivations, follows their logs, cancels
 * them and gets Nix's BuildResult. The local executor (child processes of this machine)
 * is the first implementation; the Kubernetes scheduler (NixBuild resources) the second.
 */
import type { BuildStatus } from '../../nix/protocol/worker.js';

export type BuildStatusCode = (typeof BuildStatus)[keyof typeof BuildStatus];

/** What one derivation's realisation ended with, as Nix's BuildResult says it. */
export interface BuildOutcome {
  readonly status: BuildStatusCode;
  /** Nix's message (with its colour escapes), '' on success. */
  readonly errorMsg: string;
  readonly timesBuilt: number;
  /** Unix seconds; 0 when nothing ran. */
  readonly startTime: number;
  readonly stopTime: number;
  /** Microseconds of CPU, when known (BuildResult ≥1.37). */
  readonly cpuUser?: bigint | undefined;
  readonly cpuSystem?: bigint | undefined;
  /** Output name → store path, for the outputs that are now valid. */
  readonly outputs: ReadonlyMap<string, string>;
  /** Output name → DrvOutput id (`sha256:<hashModulo>!<out>`), when the builder knew it. */
  readonly drvOutputIds?: ReadonlyMap<string, string>;
}

export interface BuildLogLine {
  readonly drvPath: string;
  readonly line: string;
}

/** A build in progress, shared by every session that asked for the same derivation. */
export interface BuildHandle {
  readonly drvPath: string;
  readonly outcome: Promise<BuildOutcome>;
  /**
   * Resolves when the build starts running (at once if it runs already); never when it
   * is cancelled while queued. Nix shows a build (its actBuild activity) only from then.
   */
  readonly started: Promise<void>;
  /**
   * The builder's log lines from now on (and those already buffered), in order, and the
   * runner's notices (`waiting for lock on …`) to `notice`. Returns an unsubscribe.
   */
  follow(listener: (line: string) => void, notice?: (text: string) => void): () => void;
  /** This requester no longer wants it; the build is cancelled when nobody does. */
  release(): void;
}

export interface SubmitOptions {
  /** Who asks: cancelling follows the interest of requesters. */
  readonly requester: string;
  /** Keep building after the requester leaves (the key's keep-builds-running setting). */
  readonly keepRunning?: boolean;
  /** Check mode: rebuild the (valid) outputs and compare, registering nothing. */
  readonly check?: boolean;
}

export interface Scheduler {
  /** Build `drvPath` (its inputs must be valid already) or join the build in progress. */
  submit(drvPath: string, options: SubmitOptions): BuildHandle;
  /** Stop taking work and cancel what runs. */
  close(): Promise<void>;
}

/** Runs one derivation to its end: what a local child process or a build pod does. */
export type Executor = (
  drvPath: string,
  context: {
    readonly signal: AbortSignal;
    /** A builder's log line, or (`notice`) a runner's notice such as `waiting for lock on …`. */
    readonly log: (line: string, notice?: boolean) => void;
    /** Check mode (see SubmitOptions). */
    readonly check: boolean;
  },
) => Promise<BuildOutcome>;
