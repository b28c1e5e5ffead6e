/**
 * The Kubernetes scheduler: each derivation becomes a NixBuild object (named after its
 * .drv, k8s/names.ts) that the operator turns into a Job. The gateway talks to the
 * operator only through that object:
 *
 * - submit: create the NixBuild with this session in `spec.requesters`; a create that
 *   answers 409 joins it (the session is added to the set). A NixBuild left over from an
 *   earlier, finished build is reused when it succeeded and its outputs are valid, and
 *   replaced when it failed (Nix builds a failed derivation again when asked again).
 * - progress: one watch on the namespace's NixBuilds (relisting after a 410, a dropped
 *   or failed watch, and every minute in case a watch went silent) feeds every build in
 *   progress; `status.podName` says which pod's log to follow.
 * - logs: client-node's `Log` with follow, per pod, counting the lines already relayed
 *   so that a reconnect (a dropped stream, the pod's container not started yet) relays
 *   every line once and in order. The runner's own header (`building '…'...`) and
 *   trailer (its `error: …` block, the output paths on stdout) are not the builder's
 *   log: the local executor never shows them, so they are left out here too.
 * - result: `status.phase` Succeeded/Failed → Nix's BuildResult, as the local executor
 *   gives it; the outputs (registered on the shared volume by the pod) are refreshed in
 *   this gateway's index.
 * - release: the session leaves `spec.requesters`; with the set empty (and nobody asking
 *   to keep it running) the operator cancels the build.
 */
import * as k8s from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { relative } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { checkBuildName, nixBuildName } from '../../k8s/names.js';
import { drvOutputIds } from '../../nix/derivation/hash-modulo.js';
import type { Derivation } from '../../nix/derivation/types.js';
import { BuildStatus } from '../../nix/protocol/worker.js';
import type { LocalStore } from '../../store/local-store.js';
import { readDerivationOf, readStoreDerivation } from '../worker/derivations.js';
import { BuildOutput, NoticeDetector } from './build-output.js';
import { DerivationFiles, type DerivationFile } from './derivation-files.js';
import { prepareCheck, type CheckSandbox } from './check-build.js';
import { cancelledOutcome } from './local-scheduler.js';
import { knownOutputPaths } from './realise.js';
import { BuildService, type BuildSettings } from './service.js';
import type { BuildHandle, BuildOutcome, BuildStatusCode, Scheduler, SubmitOptions } from './types.js';

export const GROUP = 'nixyard.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'nixbuilds';
/** The build pod's container (the operator's job-builder names it so). */
export const BUILD_CONTAINER = 'build';
const FIELD_MANAGER = 'nixyard-gateway';

/** Lines kept for requesters who join a build late (as the local scheduler). */
/** Full relist of the NixBuilds even when the watch seems alive (a half-open connection). */
const RELIST_INTERVAL_MS = 60_000;
const ABANDONED_CHECK_MS = 60_000;
/** How long the result waits for the final pod's log to be read to its end. */
const LOG_DRAIN_MS = 10_000;

type Phase = 'Pending' | 'Scheduled' | 'Building' | 'Succeeded' | 'Failed' | 'Cancelled';

/** The parts of a NixBuild the gateway reads (crds/nixbuilds.nixyard.dev.yaml). */
export interface NixBuildObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec: {
    drvPath: string;
    system: string;
    requiredSystemFeatures?: string[];
    timeoutSeconds?: number;
    maxSilentTimeSeconds?: number;
    requesters?: string[];
    keepRunning?: boolean;
    derivationFile?: string;
    check?: { dataDir: string };
  };
  status?: {
    phase?: Phase;
    podName?: string;
    nodeName?: string;
    startTime?: string;
    completionTime?: string;
    outputs?: { name: string; path: string }[];
    reason?: string;
    message?: string;
    exitCode?: number;
    attempts?: number;
  };
}

export interface KubernetesSchedulerOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly namespace: string;
  readonly store: LocalStore;
  /** spec.timeoutSeconds / spec.maxSilentTimeSeconds of every NixBuild (0: none). */
  readonly timeout?: number;
  readonly maxSilentTime?: number;
  readonly log?: Logger;
  /** Derivations sent whole (BuildDerivation): their pods read them from these files. */
  readonly derivationFiles?: DerivationFiles;
  /**
   * How often to take dead sessions (of a gateway that crashed) off NixBuilds' requesters,
   * so that builds only they wanted are cancelled. 0: never. Default: a minute.
   */
  readonly abandonedCheckMs?: number;
}

/** A NixBuild's requesters are sessions; which of them are alive (store/coordination.ts). */
type SessionLiveness = (sessionIds: readonly string[]) => Promise<Set<string>>;

function statusCode(e: unknown): number | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  if ('code' in e && typeof e.code === 'number') return e.code;
  if ('statusCode' in e && typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when `p` settled within `ms`; the timer does not outlive it. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

function seconds(t: string | undefined): number {
  const ms = t ? Date.parse(t) : NaN;
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : 0;
}

/** Nix's BuildResult status for a Failed NixBuild's reason (operator/failure.ts). */
export function statusOfReason(reason: string | undefined): BuildStatusCode {
  switch (reason) {
    case 'BuildFailed':
      return BuildStatus.PermanentFailure;
    case 'TimedOut':
      return BuildStatus.TimedOut;
    case 'HashMismatch':
      return BuildStatus.OutputRejected;
    case 'NotDeterministic':
      return BuildStatus.NotDeterministic;
    default:
      // The runner's other failures (exit 1), and the cluster's (retries exhausted, no pool).
      return BuildStatus.MiscFailure;
  }
}

/** A NixBuild's requested attributes, from the derivation. */
interface DrvFacts {
  readonly system: string;
  readonly features: string[];
}

function drvFacts(drv: Derivation): DrvFacts {
  let features = (drv.env.get('requiredSystemFeatures') ?? '').split(/\s+/).filter((f) => f !== '');
  const json = drv.env.get('__json');
  if (json !== undefined) {
    try {
      const attrs = JSON.parse(json) as { requiredSystemFeatures?: unknown };
      if (Array.isArray(attrs.requiredSystemFeatures))
        features = attrs.requiredSystemFeatures.filter((f): f is string => typeof f === 'string');
    } catch {
      // The runner reports a malformed __json; the NixBuild need not.
    }
  }
  return { system: drv.platform, features: [...new Set(features)] };
}

// ---------------------------------------------------------------------------- log lines

const STORE_PATH_LINE = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$/;

/**
 * Turns a build pod's log into the builder's log lines: drops build-drv's first line
 * (`building '<drv>'...`), and holds back what may be its trailer (an `error: ` block,
 * `note: keeping build directory`, output paths) until a builder line follows it; what is
 * held back when the container ends is the trailer, and dropped. The runner's notices
 * before the builder starts (`waiting for lock on …`) are passed on as notices.
 */
export class PodLogFilter {
  private seen = 0;
  private held: string[] = [];
  private heldError = false;
  private readonly notices = new NoticeDetector();

  constructor(
    private readonly drvPath: string,
    private readonly emit: (line: string, notice: boolean) => void,
  ) {}

  push(line: string): void {
    const first = this.seen++ === 0;
    if (first && line === `building '${this.drvPath}'...`) return;
    if (this.notices.isNotice(line)) {
      this.emit(line, true);
      return;
    }
    const trailer =
      line.startsWith('error: ') ||
      (this.heldError && line.startsWith('       ')) ||
      line.startsWith('note: keeping build directory') ||
      STORE_PATH_LINE.test(line);
    if (trailer) {
      if (line.startsWith('error: ')) this.heldError = true;
      this.held.push(line);
      return;
    }
    this.flushHeld();
    this.emit(line, false);
  }

  private flushHeld(): void {
    for (const l of this.held) this.emit(l, false);
    this.held = [];
    this.heldError = false;
  }

  /** The container ended: what is held back is build-drv's trailer. */
  end(): void {
    this.held = [];
    this.heldError = false;
  }
}

/** One pod's log, followed to its end; `delivered` survives reconnects. */
class PodLogFollower {
  private delivered = 0;
  private stopped = false;
  private current: AbortController | undefined;
  private endCurrent: (() => void) | undefined;
  readonly done: Promise<void>;
  private readonly filter: PodLogFilter;

  constructor(
    private readonly scheduler: KubernetesScheduler,
    readonly pod: string,
    drvPath: string,
    emit: (line: string, notice: boolean) => void,
  ) {
    this.filter = new PodLogFilter(drvPath, emit);
    this.done = this.run();
  }

  stop(): void {
    this.stopped = true;
    this.current?.abort();
    this.endCurrent?.();
  }

  private async run(): Promise<void> {
    let delay = 100;
    while (!this.stopped) {
      let ended: boolean;
      try {
        ended = await this.readOnce();
      } catch (e) {
        // 404: the pod is gone (its Job was deleted or collected).
        if (statusCode(e) === 404) break;
        // 400: the container has not started yet (or never will); anything else: again.
        if (this.stopped || (await this.scheduler.containerEnded(this.pod))) break;
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
        continue;
      }
      if (ended || this.stopped) break;
      delay = 100;
    }
    this.filter.end();
  }

  /**
   * Reads the pod's log once (following), relaying the lines not relayed yet. True when
   * the container has ended and every line was read; false to reconnect (the stream was
   * dropped, or went silent while the container ended).
   */
  private async readOnce(): Promise<boolean> {
    let index = 0;
    let partial = '';
    let lastData = Date.now();
    let finished!: () => void;
    const streamEnd = new Promise<void>((r) => (finished = r));
    this.endCurrent = finished;
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        lastData = Date.now();
        const parts = (partial + chunk.toString('utf8')).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          if (index++ < this.delivered) continue;
          this.delivered++;
          this.filter.push(line);
        }
        cb();
      },
      final: (cb) => {
        finished();
        cb();
      },
    });
    sink.on('close', finished);
    let silentEnd = false;
    // A stream that errors or hangs is not ended by client-node (it pipes the body): when
    // nothing came for a while and the container has ended, read the log afresh.
    const watchdog = setInterval(() => {
      if (Date.now() - lastData < 2000) return;
      void this.scheduler.containerEnded(this.pod).then((ended) => {
        if (!ended) return;
        silentEnd = true;
        this.current?.abort();
        finished();
      });
    }, 1000);
    try {
      this.current = await this.scheduler.logClient.log(
        this.scheduler.namespace,
        this.pod,
        BUILD_CONTAINER,
        sink,
        { follow: true },
      );
      if (this.stopped) this.current.abort();
      await streamEnd;
    } finally {
      clearInterval(watchdog);
    }
    if (this.stopped || silentEnd) return this.stopped;
    // The stream ended: the container did, or the connection dropped (then reconnect).
    if (!(await this.scheduler.containerEnded(this.pod))) return false;
    // A last line without a newline, read once the container ended: it is whole.
    if (partial !== '' && index >= this.delivered) {
      this.delivered++;
      this.filter.push(partial);
    }
    return true;
  }
}

// ---------------------------------------------------------------------------- builds

interface Entry {
  readonly name: string;
  readonly drvPath: string;
  /** Set when the derivation was sent whole: its .drv need not be in the store. */
  readonly derivationFile: DerivationFile | undefined;
  /** Check mode: the pod rebuilds in `sandbox`, a scratch store on the volume. */
  readonly check: boolean;
  sandbox: CheckSandbox | undefined;
  readonly outcome: Promise<BuildOutcome>;
  readonly resolve: (o: BuildOutcome) => void;
  readonly started: Promise<void>;
  readonly start: () => void;
  readonly output: BuildOutput;
  /** Requester → handles held (spec.requesters is the set of the keys). */
  readonly requesters: Map<string, number>;
  keepRunning: boolean;
  /** The object this build follows, once created or joined. */
  uid: string | undefined;
  /** Created or joined before this time (ms): a relist that misses it means it was deleted. */
  knownSince: number | undefined;
  readonly followers: Map<string, PodLogFollower>;
  done: boolean;
  finishing: boolean;
  /** spec.requesters updates of this build, one at a time and in order. */
  specQueue: Promise<void>;
  /** Every requester this gateway put on the build (to take back the ones that left). */
  readonly everRequested: Set<string>;
}

export class KubernetesScheduler implements Scheduler {
  readonly namespace: string;
  readonly logClient: k8s.Log;
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly watcher: k8s.Watch;
  private readonly entries = new Map<string, Entry>();
  /** The last spec update of each NixBuild, while one is pending. */
  private readonly tails = new Map<string, Promise<void>>();
  private watchAbort: AbortController | undefined;
  private watching = false;
  private closed = false;
  private relistTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private readonly abandonedTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: KubernetesSchedulerOptions) {
    this.namespace = options.namespace;
    this.custom = options.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
    this.core = options.kubeConfig.makeApiClient(k8s.CoreV1Api);
    this.logClient = new k8s.Log(options.kubeConfig);
    this.watcher = new k8s.Watch(options.kubeConfig);
    const every = options.abandonedCheckMs ?? ABANDONED_CHECK_MS;
    if (every > 0) {
      const live: SessionLiveness = (ids) => options.store.coordination.liveSessions(ids);
      this.abandonedTimer = setInterval(() => {
        this.dropDeadRequesters(live).catch((e: unknown) =>
          options.log?.warn({ error: describeError(e) }, 'cannot look for abandoned NixBuilds'),
        );
      }, every);
      this.abandonedTimer.unref();
    }
  }

  /**
   * Takes requesters whose sessions are no longer registered anywhere (their gateway died
   * without leaving) off unfinished NixBuilds; the operator cancels a build nobody wants.
   * Every replica may do it: each change is a replace at the resourceVersion read.
   */
  async dropDeadRequesters(live: SessionLiveness): Promise<number> {
    const list = (await this.custom.listNamespacedCustomObject(this.api)) as { items: NixBuildObject[] };
    let changed = 0;
    for (const nb of list.items) {
      const phase = nb.status?.phase;
      const requesters = nb.spec.requesters ?? [];
      if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled' || requesters.length === 0)
        continue;
      const alive = await live(requesters);
      if (alive.size === requesters.length) continue;
      try {
        await this.custom.replaceNamespacedCustomObject({
          ...this.api,
          name: nb.metadata.name,
          body: { ...nb, spec: { ...nb.spec, requesters: requesters.filter((r) => alive.has(r)) } },
          fieldManager: FIELD_MANAGER,
        });
        changed++;
        this.options.log?.info(
          { nixbuild: nb.metadata.name, dropped: requesters.filter((r) => !alive.has(r)) },
          'dropped the requesters of sessions that are gone',
        );
      } catch (e) {
        // Changed or deleted meanwhile: the next round sees it again.
        if (statusCode(e) !== 409 && statusCode(e) !== 404) throw e;
      }
    }
    return changed;
  }

  submit(drvPath: string, options: SubmitOptions): BuildHandle {
    let name: string;
    try {
      // A check is its own NixBuild: it rebuilds in a scratch store, so nobody joins it.
      name = options.check ? checkBuildName(drvPath, randomBytes(4).toString('hex')) : nixBuildName(drvPath);
    } catch (e) {
      const outcome = Promise.resolve(cancelledOutcome((e as Error).message));
      return {
        drvPath,
        outcome,
        started: new Promise<void>(() => undefined),
        follow: () => () => undefined,
        release: () => undefined,
      };
    }
    let entry = this.entries.get(name);
    const fresh = entry === undefined;
    if (!entry) {
      entry = this.newEntry(name, drvPath, options.check === true);
      this.entries.set(name, entry);
    }
    const n = entry.requesters.get(options.requester) ?? 0;
    entry.requesters.set(options.requester, n + 1);
    entry.everRequested.add(options.requester);
    const keep = options.keepRunning === true && !entry.keepRunning;
    if (options.keepRunning) entry.keepRunning = true;
    const e = entry;
    if (fresh) {
      this.ensureWatch();
      this.enqueue(e, () => this.createOrJoin(e));
    } else if (n === 0 || keep) {
      this.enqueue(e, () => this.updateSpec(e));
    }
    return this.handle(e, options.requester);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.relistTimer) clearTimeout(this.relistTimer);
    if (this.abandonedTimer) clearInterval(this.abandonedTimer);
    this.watchAbort?.abort();
    this.wake?.();
    // This gateway's sessions leave every build; those nobody else wants are cancelled.
    const all = [...this.entries.values()];
    for (const e of all) {
      e.requesters.clear();
      this.enqueue(e, () => this.updateSpec(e));
      this.finish(e, cancelledOutcome('the gateway is shutting down'));
    }
    await within(Promise.allSettled(all.map((e) => e.specQueue)), 5000);
  }

  private newEntry(name: string, drvPath: string, check: boolean): Entry {
    let resolve!: (o: BuildOutcome) => void;
    const outcome = new Promise<BuildOutcome>((r) => (resolve = r));
    let start!: () => void;
    const started = new Promise<void>((r) => (start = r));
    return {
      name,
      drvPath,
      derivationFile: this.options.derivationFiles?.of(drvPath),
      check,
      sandbox: undefined,
      outcome,
      resolve,
      started,
      start,
      output: new BuildOutput(),
      requesters: new Map(),
      keepRunning: false,
      uid: undefined,
      knownSince: undefined,
      followers: new Map(),
      done: false,
      finishing: false,
      // After the spec updates of an earlier build of the same derivation (a session
      // that left it must not take back what a new request of the same session adds).
      specQueue: this.tails.get(name) ?? Promise.resolve(),
      everRequested: new Set(),
    };
  }

  private handle(entry: Entry, requester: string): BuildHandle {
    let released = false;
    return {
      drvPath: entry.drvPath,
      outcome: entry.outcome,
      started: entry.started,
      follow: (listener, notice) => entry.output.follow(listener, notice),
      release: () => {
        if (released) return;
        released = true;
        const n = (entry.requesters.get(requester) ?? 1) - 1;
        if (n > 0) {
          entry.requesters.set(requester, n);
          return;
        }
        entry.requesters.delete(requester);
        if (!entry.done) this.enqueue(entry, () => this.updateSpec(entry));
        if (entry.requesters.size === 0 && !entry.done) {
          // Nobody here wants it any more: stop following (the operator cancels it when
          // no other gateway's session does either, and keepRunning is not set).
          this.finish(entry, cancelledOutcome('nobody wants this build any more'));
        }
      },
    };
  }

  private enqueue(entry: Entry, op: () => Promise<unknown>): void {
    const tail = entry.specQueue.then(op).then(
      () => undefined,
      (e: unknown) => {
        this.options.log?.warn({ nixbuild: entry.name, error: String(e) }, 'NixBuild update failed');
        if (!entry.done)
          this.finish(
            entry,
            cancelledOutcome(`cannot schedule '${entry.drvPath}' on Kubernetes: ${describeError(e)}`),
          );
      },
    );
    entry.specQueue = tail;
    this.tails.set(entry.name, tail);
    void tail.then(() => {
      if (this.tails.get(entry.name) === tail) this.tails.delete(entry.name);
    });
  }

  // ------------------------------------------------------------ NixBuild objects

  private get api() {
    return { group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL };
  }

  private async getNixBuild(name: string): Promise<NixBuildObject | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...this.api, name })) as NixBuildObject;
    } catch (e) {
      if (statusCode(e) === 404) return undefined;
      throw e;
    }
  }

  private async createOrJoin(entry: Entry): Promise<void> {
    const { store } = this.options;
    const facts = drvFacts(await readDerivationOf(store, entry.drvPath, entry.derivationFile?.path));
    const relativeToVolume = (p: string) => relative(store.layout.dataDir, p);
    if (entry.check && !entry.sandbox && !entry.done)
      entry.sandbox = await prepareCheck(store, entry.drvPath, entry.derivationFile?.path);
    const sandbox = entry.sandbox;
    for (let tries = 0; tries < 5 && !entry.done; tries++) {
      const requesters = [...entry.requesters.keys()].sort();
      const body: NixBuildObject = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'NixBuild',
        metadata: {
          name: entry.name,
          labels: { 'app.kubernetes.io/name': 'nixyard', 'app.kubernetes.io/created-by': FIELD_MANAGER },
        },
        spec: {
          drvPath: entry.drvPath,
          system: facts.system,
          ...(facts.features.length ? { requiredSystemFeatures: facts.features } : {}),
          ...(this.options.timeout ? { timeoutSeconds: this.options.timeout } : {}),
          ...(this.options.maxSilentTime ? { maxSilentTimeSeconds: this.options.maxSilentTime } : {}),
          requesters,
          keepRunning: entry.keepRunning,
          ...(sandbox
            ? {
                derivationFile: relativeToVolume(sandbox.derivationFile),
                check: { dataDir: relativeToVolume(sandbox.dataDir) },
              }
            : entry.derivationFile
              ? { derivationFile: entry.derivationFile.relative }
              : {}),
        },
      };
      try {
        const since = Date.now();
        const created = (await this.custom.createNamespacedCustomObject({
          ...this.api,
          body,
          fieldManager: FIELD_MANAGER,
        })) as NixBuildObject;
        this.adopt(entry, created, since);
        return;
      } catch (e) {
        if (statusCode(e) !== 409) throw e;
      }
      // It exists: join it, unless it is what an earlier build left behind.
      const since = Date.now();
      const existing = await this.getNixBuild(entry.name);
      if (!existing) continue;
      const phase = existing.status?.phase;
      if (phase === 'Succeeded' && (await this.outputsValid(entry, existing))) {
        this.adopt(entry, existing, since);
        return;
      }
      if (phase === 'Succeeded' || phase === 'Failed') {
        await this.custom
          .deleteNamespacedCustomObject({
            ...this.api,
            name: entry.name,
            body: { preconditions: { uid: existing.metadata.uid } },
          })
          .catch((err: unknown) => {
            if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
          });
        await this.waitGone(entry.name, existing.metadata.uid);
        continue;
      }
      const joined = await this.updateSpec(entry);
      if (joined) {
        this.adopt(entry, joined, since);
        return;
      }
    }
    if (!entry.done) throw new Error(`NixBuild ${entry.name} could not be created or joined`);
  }

  private async waitGone(name: string, uid: string | undefined): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const nb = await this.getNixBuild(name);
      if (!nb || nb.metadata.uid !== uid) return;
      await sleep(50);
    }
  }

  private async outputsValid(entry: Entry, nb: NixBuildObject): Promise<boolean> {
    const paths = [
      ...(nb.status?.outputs ?? []).map((o) => o.path),
      ...[...(await this.outputMap(entry)).values()],
    ].filter((p) => p !== '');
    if (paths.length === 0) return false;
    await this.options.store.refresh(paths);
    for (const p of paths) if (!(await this.options.store.isValid(p))) return false;
    return true;
  }

  /**
   * The DrvOutput ids of a derivation sent whole (BuildDerivation's result names its
   * outputs by them; for a .drv in the store the session computes them itself).
   */
  private async outputIds(entry: Entry): Promise<{ drvOutputIds?: Map<string, string> }> {
    if (!entry.derivationFile) return {};
    const { store } = this.options;
    try {
      const drv = await readDerivationOf(store, entry.drvPath, entry.derivationFile?.path);
      return { drvOutputIds: await drvOutputIds(drv, (p) => readStoreDerivation(store, p), store.storeDir) };
    } catch (e) {
      this.options.log?.warn({ drvPath: entry.drvPath, error: String(e) }, 'cannot compute the output ids');
      return {};
    }
  }

  private async outputMap(entry: Entry): Promise<Map<string, string>> {
    try {
      return knownOutputPaths(
        await readDerivationOf(this.options.store, entry.drvPath, entry.derivationFile?.path),
      );
    } catch {
      return new Map();
    }
  }

  /**
   * Makes spec.requesters hold exactly this gateway's requesters of the build (plus those
   * of other gateways), and keepRunning when one asked for it: read, change, replace with
   * the resourceVersion read (a conflict: again).
   */
  private async updateSpec(entry: Entry): Promise<NixBuildObject | undefined> {
    for (let tries = 0; tries < 20; tries++) {
      const nb = await this.getNixBuild(entry.name);
      if (!nb || (entry.uid !== undefined && nb.metadata.uid !== entry.uid)) return undefined;
      const mine = new Set(entry.requesters.keys());
      const known = entry.everRequested;
      const others = (nb.spec.requesters ?? []).filter((r) => !known.has(r) || mine.has(r));
      const requesters = [...new Set([...others, ...mine])].sort();
      const keepRunning = nb.spec.keepRunning === true || entry.keepRunning;
      const same =
        requesters.join('\n') === [...(nb.spec.requesters ?? [])].sort().join('\n') &&
        keepRunning === (nb.spec.keepRunning === true) &&
        nb.spec.requesters !== undefined;
      if (same) return nb;
      try {
        return (await this.custom.replaceNamespacedCustomObject({
          ...this.api,
          name: entry.name,
          body: { ...nb, spec: { ...nb.spec, requesters, keepRunning } },
          fieldManager: FIELD_MANAGER,
        })) as NixBuildObject;
      } catch (e) {
        if (statusCode(e) === 404) return undefined;
        if (statusCode(e) !== 409) throw e;
      }
    }
    throw new Error(`NixBuild ${entry.name}: too many conflicting updates of spec.requesters`);
  }

  private adopt(entry: Entry, nb: NixBuildObject, since: number): void {
    entry.uid = nb.metadata.uid;
    entry.knownSince = since;
    this.observe(entry, nb);
  }

  // ------------------------------------------------------------ watching

  private ensureWatch(): void {
    if (this.watching || this.closed) return;
    this.watching = true;
    void this.watchLoop().finally(() => (this.watching = false));
  }

  private async watchLoop(): Promise<void> {
    let delay = 200;
    while (!this.closed) {
      let resourceVersion: string;
      const listedAt = Date.now();
      try {
        const list = (await this.custom.listNamespacedCustomObject(this.api)) as {
          items: NixBuildObject[];
          metadata?: { resourceVersion?: string };
        };
        resourceVersion = list.metadata?.resourceVersion ?? '';
        const byName = new Map(list.items.map((nb) => [nb.metadata.name, nb]));
        for (const entry of [...this.entries.values()]) {
          const nb = byName.get(entry.name);
          if (nb) this.dispatch(nb);
          else if (entry.knownSince !== undefined && entry.knownSince < listedAt) this.deleted(entry.name);
        }
        delay = 200;
      } catch (e) {
        this.options.log?.warn({ error: String(e) }, 'cannot list NixBuilds; retrying');
        await this.pause(delay);
        delay = Math.min(delay * 2, 10_000);
        continue;
      }
      await this.watchFrom(resourceVersion);
      if (!this.closed) await this.pause(Math.min(delay, 1000));
    }
  }

  /** Watches from `resourceVersion` until the watch ends, fails, says 410 or the relist timer fires. */
  private async watchFrom(resourceVersion: string): Promise<void> {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${PLURAL}`;
    await new Promise<void>((resolve) => {
      let over = false;
      const end = (): void => {
        if (over) return;
        over = true;
        if (this.relistTimer) clearTimeout(this.relistTimer);
        this.watchAbort?.abort();
        resolve();
      };
      this.wake = end;
      this.relistTimer = setTimeout(end, RELIST_INTERVAL_MS);
      this.watcher
        .watch(
          path,
          { resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: unknown) => {
            if (type === 'ERROR') {
              end(); // 410 Gone (or another error): relist
              return;
            }
            const nb = obj as NixBuildObject;
            if (!nb?.metadata?.name) return;
            if (type === 'DELETED') {
              const entry = this.entries.get(nb.metadata.name);
              if (entry && (entry.uid === undefined || entry.uid === nb.metadata.uid))
                this.deleted(entry.name);
              return;
            }
            if (type === 'ADDED' || type === 'MODIFIED') this.dispatch(nb);
          },
          () => end(),
        )
        .then((ac) => {
          this.watchAbort = ac;
          if (over) ac.abort();
        })
        .catch(() => end());
    });
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private dispatch(nb: NixBuildObject): void {
    const entry = this.entries.get(nb.metadata.name);
    if (!entry || entry.uid === undefined || entry.uid !== nb.metadata.uid) return;
    this.observe(entry, nb);
  }

  private deleted(name: string): void {
    const entry = this.entries.get(name);
    if (!entry || entry.done || entry.finishing) return;
    this.finish(entry, cancelledOutcome(`the NixBuild ${name} of '${entry.drvPath}' was deleted`));
  }

  // ------------------------------------------------------------ progress and result

  private observe(entry: Entry, nb: NixBuildObject): void {
    if (entry.done || entry.finishing) return;
    const st = nb.status ?? {};
    const phase = st.phase;
    if (st.podName && (phase === 'Building' || phase === 'Succeeded' || phase === 'Failed'))
      this.followPod(entry, st.podName);
    if (phase === 'Building' || ((phase === 'Succeeded' || phase === 'Failed') && st.podName)) entry.start();
    if (phase === 'Succeeded' || phase === 'Failed') {
      entry.finishing = true;
      void this.complete(entry, nb).then(
        (outcome) => this.finish(entry, outcome),
        (e: unknown) => this.finish(entry, cancelledOutcome(describeError(e))),
      );
    }
    // Cancelled while this gateway still wants it: another gateway's sessions left in
    // between; our requesters are on it again, and the operator starts a new attempt.
    if (phase === 'Cancelled' && entry.requesters.size > 0 && !nb.spec.requesters?.length)
      this.enqueue(entry, () => this.updateSpec(entry));
  }

  private followPod(entry: Entry, pod: string): void {
    if (entry.followers.has(pod)) return;
    entry.followers.set(
      pod,
      new PodLogFollower(this, pod, entry.drvPath, (line, notice) => {
        if (!entry.done) entry.output.push(line, notice);
      }),
    );
  }

  /** True when the pod's build container has terminated (or the pod is gone). */
  async containerEnded(pod: string): Promise<boolean> {
    try {
      const p = await this.core.readNamespacedPod({ name: pod, namespace: this.namespace });
      const c = p.status?.containerStatuses?.find((s) => s.name === BUILD_CONTAINER);
      return c?.state?.terminated !== undefined || ['Succeeded', 'Failed'].includes(p.status?.phase ?? '');
    } catch (e) {
      return statusCode(e) === 404;
    }
  }

  private async complete(entry: Entry, nb: NixBuildObject): Promise<BuildOutcome> {
    const st = nb.status ?? {};
    // Every line of the final pod first: Nix shows the log before the result.
    const final = st.podName ? entry.followers.get(st.podName) : undefined;
    if (final) {
      const drained = await within(final.done, LOG_DRAIN_MS);
      if (!drained) final.stop();
    }
    const times = {
      timesBuilt: st.podName ? 1 : 0,
      startTime: seconds(st.startTime),
      stopTime: seconds(st.completionTime),
    };
    if (st.phase === 'Failed') {
      return {
        status: statusOfReason(st.reason),
        errorMsg: st.message ?? `build of '${entry.drvPath}' failed`,
        ...times,
        outputs: new Map(),
      };
    }
    const outputs = new Map<string, string>();
    for (const o of st.outputs ?? []) outputs.set(o.name, o.path);
    if (entry.sandbox) {
      // Registered in the scratch store only: compared there with the valid outputs.
      for (const [name, path] of await this.outputMap(entry)) if (!outputs.has(name)) outputs.set(name, path);
      return entry.sandbox.judge({ status: BuildStatus.Built, errorMsg: '', ...times, outputs });
    }
    for (const [name, path] of await this.outputMap(entry))
      if (path !== '' && !outputs.has(name)) outputs.set(name, path);
    // The pod registered them on the shared volume; our index learns of them here.
    await this.options.store.refresh([...outputs.values()]);
    const valid = new Map<string, string>();
    for (const [name, path] of outputs) if (await this.options.store.isValid(path)) valid.set(name, path);
    if (valid.size === 0)
      return {
        status: BuildStatus.MiscFailure,
        errorMsg: `the NixBuild ${entry.name} succeeded, but no output of '${entry.drvPath}' is valid in the store`,
        ...times,
        outputs: valid,
      };
    return {
      status: BuildStatus.Built,
      errorMsg: '',
      ...times,
      outputs: valid,
      ...(await this.outputIds(entry)),
    };
  }

  private finish(entry: Entry, outcome: BuildOutcome): void {
    if (entry.done) return;
    entry.done = true;
    if (this.entries.get(entry.name) === entry) this.entries.delete(entry.name);
    for (const f of entry.followers.values()) f.stop();
    entry.output.close();
    entry.resolve(outcome);
    if (entry.check) this.endCheck(entry);
  }

  /** A check's NixBuild and scratch store serve nobody once judged (or cancelled). */
  private endCheck(entry: Entry): void {
    this.enqueue(entry, async () => {
      if (entry.uid === undefined) return;
      await this.custom
        .deleteNamespacedCustomObject({
          ...this.api,
          name: entry.name,
          propagationPolicy: 'Background',
          body: { preconditions: { uid: entry.uid } },
        })
        .catch((e: unknown) => {
          if (statusCode(e) !== 404) throw e;
        });
    });
    void entry.specQueue.then(() => entry.sandbox?.dispose());
  }
}

function describeError(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'body' in e && typeof e.body === 'string') {
    try {
      const s = JSON.parse(e.body) as { message?: string };
      if (s.message) return s.message;
    } catch {
      // not a Status
    }
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * Cluster mode: each derivation becomes a NixBuild in `namespace`, built by the
 * operator's Job on the node pool for its system, in the same store volume. (Its own
 * module, so the embedded default never loads the Kubernetes client.)
 */
export function kubernetesBuilds(
  store: LocalStore,
  settings: Pick<BuildSettings, 'timeout' | 'maxSilentTime'>,
  cluster: {
    readonly kubeConfig: k8s.KubeConfig;
    readonly namespace: string;
    readonly log?: Logger;
    readonly abandonedCheckMs?: number;
  },
): BuildService {
  const derivationFiles = new DerivationFiles(store.layout.dataDir);
  const scheduler = new KubernetesScheduler({
    store,
    kubeConfig: cluster.kubeConfig,
    namespace: cluster.namespace,
    timeout: settings.timeout,
    maxSilentTime: settings.maxSilentTime,
    derivationFiles,
    ...(cluster.log ? { log: cluster.log } : {}),
    ...(cluster.abandonedCheckMs !== undefined ? { abandonedCheckMs: cluster.abandonedCheckMs } : {}),
  });
  return BuildService.withScheduler(store, scheduler, derivationFiles);
}
