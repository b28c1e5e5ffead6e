/**
 * The library entry point: realise one derivation in a LocalStore, the way Nix 2.8's
 * `LocalDerivationGoal` does with `sandbox = true`. Steps: load and check the .drv,
 * return AlreadyValid if every output is valid, take the outputs' locks (and look again),
 * check the input closure, make the environment and the sandbox, run the builder, check
 * and register the outputs.
 * Failures are results (status + Nix's message), not exceptions; only broken
 * preconditions of the caller (no bwrap, unreadable store) throw.
 */
import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import { join } from 'node:path';
import {
  DerivationHasher,
  derivationType,
  encodeByteString,
  parseDerivation,
  type Derivation,
} from '../../nix/derivation/index.js';
import { isStorePath, outputPathName, parseStorePath } from '../../nix/store-path.js';
import { removeTree } from '../../store/fs-util.js';
import { BuildLogWriter } from '../../gateway/builds/build-log.js';
import type { LocalStore } from '../../store/local-store.js';
import {
  ANSI_BOLD,
  ANSI_NORMAL,
  BuildError,
  BuildErrorCode,
  hintfmt,
  plainMessage,
  yellow,
} from './errors.js';
import {
  buildEnvironment,
  DEFAULT_BUILD_DIR,
  outputPaths,
  stringsAttr,
  type PathInfoView,
  type StoreView,
} from './env.js';
import {
  applyChecks,
  canonicaliseOutput,
  checkFixedOutput,
  exists,
  hashPartMap,
  scanOutput,
  sortOutputs,
  structuredChecks,
  type Checks,
  type ScannedOutput,
} from './outputs.js';
import { BuildStatus, type BuildResult, type BuiltOutput } from './result.js';
import { runBuilder } from './run-builder.js';
import { seccompFilter } from './seccomp.js';
import { bwrapArgv, ETC_GROUP, ETC_HOSTS, etcPasswd, ptyArgv, stagePaths } from './sandbox.js';

export interface BuildSettings {
  /** NIX_BUILD_CORES; default: the number of CPUs. */
  readonly cores: number;
  /** Seconds, 0 = none (`timeout`). The derivation's own `timeout` attribute also applies. */
  readonly timeout: number;
  /** Seconds, 0 = none (`max-silent-time`); also the derivation's `maxSilent`. */
  readonly maxSilentTime: number;
  /** Keep the stage directory (build dir and outputs) of a failed build. */
  readonly keepFailed: boolean;
  /** `log-lines`: lines quoted in a failure message. */
  readonly logLines: number;
  /** This machine's system type. */
  readonly system: string;
  readonly bwrap: string;
  /** util-linux `script` for a pty; undefined = a pipe for stdout+stderr. */
  readonly script: string | undefined;
  /** `$TMPDIR` Nix would use on the host (for NIX_ATTRS_*_FILE, as Nix 2.8 leaks it). */
  readonly hostTmpDir: string;
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /** Forbid setuid/setgid with seccomp (x86-64). */
  readonly seccomp: boolean;
  /** Keep each build's log in `<data dir>/logs/<drv>.gz` (Nix's `keep-log`). */
  readonly keepLog: boolean;
}

export function defaultSettings(overrides: Partial<BuildSettings> = {}): BuildSettings {
  return {
    cores: availableParallelism(),
    timeout: 0,
    maxSilentTime: 0,
    keepFailed: false,
    logLines: 10,
    system: process.arch === 'arm64' ? 'aarch64-linux' : 'x86_64-linux',
    bwrap: '/usr/bin/bwrap',
    script: '/usr/bin/script',
    hostTmpDir: '/tmp',
    hostEnv: process.env,
    seccomp: true,
    keepLog: true,
    ...overrides,
  };
}

export interface BuildDerivationOptions {
  readonly store: LocalStore;
  readonly drvPath: string;
  /**
   * The derivation itself, when the client sent it rather than its .drv being in the
   * store (BuildDerivation: a BasicDerivation, all inputs as sources).
   */
  readonly derivation?: Derivation;
  readonly settings?: Partial<BuildSettings>;
  /** Each log line of the builder, as it happens. */
  readonly onLogLine?: (line: string) => void;
  /** `@nix {…}` structured messages (the JSON text). */
  readonly onStructured?: (json: string) => void;
  readonly signal?: AbortSignal;
}

export interface BuildOutcome extends BuildResult {
  /** Error code of a failure (see errors.ts). */
  readonly code: BuildErrorCode | undefined;
  /** A fixed-output hash mismatch (nix-build exits 102). */
  readonly hashMismatch: boolean;
  /** The kept stage directory (`--keep-failed`). */
  readonly keptDir: string | undefined;
}

const NOBODY = 65534;

const now = (): number => Math.floor(Date.now() / 1000);

/** An outcome in which no builder ran (or its run counts for nothing): `extra` fills in. */
export function unbuiltOutcome(
  status: BuildOutcome['status'],
  errorMsg: string,
  extra: Partial<BuildOutcome> = {},
): BuildOutcome {
  return {
    status,
    errorMsg,
    builtOutputs: [],
    startTime: 0,
    stopTime: 0,
    timesBuilt: 0,
    isNonDeterministic: false,
    code: undefined,
    hashMismatch: false,
    keptDir: undefined,
    ...extra,
  };
}

function failure(err: BuildError, extra: Partial<BuildOutcome> = {}): BuildOutcome {
  return unbuiltOutcome(err.status, err.nixMessage, {
    code: err.code,
    hashMismatch: err.code === BuildErrorCode.HASH_MISMATCH,
    ...extra,
  });
}

async function loadDrv(store: LocalStore, drvPath: string): Promise<Derivation> {
  const { name } = parseStorePath(drvPath, store.storeDir);
  if (!name.endsWith('.drv') || !(await store.isValid(drvPath))) {
    throw new BuildError(
      BuildErrorCode.INPUT_MISSING,
      BuildStatus.MiscFailure,
      hintfmt("cannot build '%s': it is not a valid derivation in the store", drvPath),
      { drvPath },
    );
  }
  try {
    return parseDerivation(await readFile(store.layout.contentPath(drvPath)), {
      name: name.slice(0, -'.drv'.length),
      storeDir: store.storeDir,
    });
  } catch (err) {
    throw new BuildError(
      BuildErrorCode.DRV_INVALID,
      BuildStatus.MiscFailure,
      hintfmt("cannot parse derivation '%s': %s", drvPath, (err as Error).message),
      { drvPath },
      { cause: err },
    );
  }
}

/** The closure of the inputs (`inputPaths`): input sources and the used outputs of inputDrvs. */
async function inputClosure(store: LocalStore, drv: Derivation, drvPath: string): Promise<Set<string>> {
  const roots = [...drv.inputSrcs];
  for (const [inputDrv, wanted] of drv.inputDrvs) {
    const dep = await loadDrv(store, inputDrv);
    const paths = outputPaths(dep);
    for (const o of wanted) {
      const p = paths.get(o);
      if (p === undefined) {
        throw new BuildError(
          BuildErrorCode.UNSUPPORTED,
          BuildStatus.MiscFailure,
          hintfmt("derivation '%s' uses output '%s' of '%s', whose path is not known", drvPath, o, inputDrv),
          { drvPath },
        );
      }
      roots.push(p);
    }
  }
  const valid = await store.queryValid(roots);
  const missing = roots.filter((p) => !valid.has(p)).sort();
  if (missing.length > 0) {
    throw new BuildError(
      BuildErrorCode.INPUT_MISSING,
      BuildStatus.MiscFailure,
      hintfmt(
        "cannot build '%s': its inputs are not valid in the store:%s",
        drvPath,
        missing.map((p) => `\n  ${p}`).join(''),
      ),
      { drvPath, missing: missing[0] },
    );
  }
  return store.queryClosure(roots);
}

/** Path infos of the input closure, plus outputs of .drvs in it (for exportReferencesGraph). */
async function storeView(store: LocalStore, inputs: ReadonlySet<string>): Promise<StoreView> {
  const infos = new Map<string, PathInfoView>();
  const drvOutputs = new Map<string, string[]>();
  const want = new Set(inputs);
  for (const p of inputs) {
    if (!p.endsWith('.drv')) continue;
    try {
      const outs = [...outputPaths(await loadDrv(store, p)).values()];
      const valid = await store.queryValid(outs);
      const validOuts = outs.filter((o) => valid.has(o));
      drvOutputs.set(p, validOuts);
      for (const q of await store.queryClosure(validOuts)) want.add(q);
    } catch {
      drvOutputs.set(p, []);
    }
  }
  for (const [p, info] of await store.queryPathInfos([...want])) {
    infos.set(p, {
      path: p,
      deriver: info.deriver,
      narHash: info.narHash.toTyped('base32'),
      narSize: info.narSize,
      references: info.references,
      ca: info.ca,
    });
  }
  return {
    info: (p) => {
      const i = infos.get(p);
      if (!i) throw new Error(`path '${p}' is not valid`);
      return i;
    },
    drvOutputs: (p) => drvOutputs.get(p) ?? [],
  };
}

function positiveAttr(drv: Derivation, name: string): number {
  const v = Number(drv.env.get(name) ?? '0');
  return Number.isFinite(v) && v > 0 ? v : 0;
}

function minNonZero(a: number, b: number): number {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return Math.min(a, b);
}

/** `builder for '<drv>' failed with exit code N;\nlast N log lines:\n> …` */
export function builderFailedMessage(drvPath: string, status: string, tail: readonly string[]): string {
  let msg = `builder for '${yellow(drvPath)}' ${status}`;
  if (tail.length > 0) {
    msg += `;\nlast ${tail.length} log lines:\n`;
    for (const line of tail) msg += `> ${line}\n`;
    msg += `For full logs, run '${ANSI_BOLD}nix log ${drvPath}${ANSI_NORMAL}'.`;
  }
  return plainMessage(msg);
}

const SIGNAL_NAMES: Record<string, string> = {
  SIGKILL: 'Killed',
  SIGTERM: 'Terminated',
  SIGSEGV: 'Segmentation fault',
};

export async function buildDerivation(opts: BuildDerivationOptions): Promise<BuildOutcome> {
  const { store, drvPath } = opts;
  const settings = defaultSettings(opts.settings);
  const storeDir = store.storeDir;
  let drv: Derivation;
  let outs: Map<string, string>;
  try {
    drv = opts.derivation ?? (await loadDrv(store, drvPath));
    const type = derivationType(drv);
    outs = outputPaths(drv);
    if (outs.size !== drv.outputs.size || type.kind === 'impure' || type.kind === 'floating') {
      throw new BuildError(
        BuildErrorCode.UNSUPPORTED,
        BuildStatus.MiscFailure,
        hintfmt("cannot build '%s': content-addressed and impure derivations are not supported", drvPath),
        { drvPath },
      );
    }
    const already = await alreadyValid(store, drv, outs);
    if (already) return already;
    if (drv.platform !== settings.system) {
      throw new BuildError(
        BuildErrorCode.PLATFORM_MISMATCH,
        BuildStatus.MiscFailure,
        hintfmt(
          "a '%s' with features {%s} is required to build '%s', but I am a '%s' with features {%s}",
          drv.platform,
          '',
          drvPath,
          settings.system,
          '',
        ),
        { drvPath, system: drv.platform },
      );
    }
  } catch (err) {
    if (err instanceof BuildError) return failure(err);
    throw err;
  }
  return lockedBuild(opts, settings, drv, outs, storeDir);
}

/**
 * The build proper, as Nix's goal does it once it holds its output path locks: the
 * builder holds the locks of every output (cluster-wide when the store coordinates
 * through Redis) until the outputs are registered, so two builders of one derivation,
 * on any replica or pod, build it once; the one that waited finds the outputs valid.
 * A build session keeps the input closure and the outputs as temp roots meanwhile, so
 * no garbage collector removes what the build reads or has just registered.
 */
async function lockedBuild(
  opts: BuildDerivationOptions,
  settings: BuildSettings,
  drv: Derivation,
  outs: ReadonlyMap<string, string>,
  storeDir: string,
): Promise<BuildOutcome> {
  const { store, drvPath } = opts;
  const session = await store.openSession(`build:${randomUUID()}`, {
    info: { drvPath, replica: `${hostname()}:${process.pid}` },
  });
  try {
    return await store.withPathLocks(
      [...outs.values()],
      async (signal) => {
        let inputs: Set<string>;
        try {
          const already = await alreadyValid(store, drv, outs);
          if (already) return already;
          inputs = await inputClosure(store, drv, drvPath);
          await store.tempRoots.add(session.sessionId, [drvPath, ...inputs, ...outs.values()]);
        } catch (err) {
          if (err instanceof BuildError) return failure(err);
          throw err;
        }
        return realise(opts, settings, drv, inputs, storeDir, signal);
      },
      {
        signal: opts.signal,
        // Nix's words when another goal holds an output lock.
        onWait: (path) => opts.onLogLine?.(`waiting for lock on '${path}'`),
      },
    );
  } catch (err) {
    // Cancelled while another builder held the outputs: nothing was started.
    if (opts.signal?.aborted !== true || err !== opts.signal.reason) throw err;
    return failure(
      new BuildError(
        BuildErrorCode.CANCELLED,
        BuildStatus.MiscFailure,
        hintfmt("building of '%s' was cancelled while waiting for the lock on its outputs", drvPath),
        { drvPath },
      ),
    );
  } finally {
    await session.close().catch(() => undefined);
  }
}

/** AlreadyValid with the outputs if every output is valid, else undefined. */
async function alreadyValid(
  store: LocalStore,
  drv: Derivation,
  outs: ReadonlyMap<string, string>,
): Promise<BuildOutcome | undefined> {
  const valid = await store.queryValid([...outs.values()]);
  if (![...outs.values()].every((p) => valid.has(p))) return undefined;
  return unbuiltOutcome(BuildStatus.AlreadyValid, '', {
    builtOutputs: await builtOutputsOf(store, drv, outs),
  });
}

async function builtOutputsOf(
  store: LocalStore,
  drv: Derivation,
  outs: ReadonlyMap<string, string>,
): Promise<BuiltOutput[]> {
  let hashes: ReadonlyMap<string, { toBase16(): string; algo: string }> | undefined;
  try {
    const hasher = new DerivationHasher(
      async (p) => parseDerivation(await readFile(store.layout.contentPath(p)), { storeDir: store.storeDir }),
      store.storeDir,
    );
    hashes = (await hasher.hashModulo(drv, true)).hashes;
  } catch {
    hashes = undefined;
  }
  return [...outs].map(([name, outPath]) => {
    const h = hashes?.get(name);
    return { id: h ? `${h.algo}:${h.toBase16()}!${name}` : `!${name}`, outputName: name, outPath };
  });
}

async function realise(
  opts: BuildDerivationOptions,
  settings: BuildSettings,
  drv: Derivation,
  inputs: Set<string>,
  storeDir: string,
  /** Aborted if the lock on the outputs was lost: then nothing may be registered. */
  locked: AbortSignal,
): Promise<BuildOutcome> {
  const { store, drvPath } = opts;
  const fixed = derivationType(drv).kind === 'fixed';
  const outs = outputPaths(drv);
  const stageDir = await store.layout.newStagingDir();
  const sp = stagePaths(stageDir);
  let keep = false;
  let startTime = 0;
  let stopTime = 0;
  const times = (): Partial<BuildOutcome> => ({ startTime, stopTime, timesBuilt: startTime > 0 ? 1 : 0 });
  try {
    const view = await storeView(store, inputs);
    const built = buildEnvironment(
      drv,
      drvPath,
      inputs,
      {
        cores: settings.cores,
        buildDirInSandbox: DEFAULT_BUILD_DIR,
        hostBuildDir: `${settings.hostTmpDir}/nix-build-${drv.name}.drv-0`,
        storeDir,
        hostEnv: settings.hostEnv,
      },
      view,
    );
    await mkdir(sp.store);
    await chmod(sp.store, 0o1775);
    await mkdir(sp.build, { mode: 0o700 });
    await mkdir(sp.etc);
    await writeFile(join(sp.etc, 'passwd'), etcPasswd(DEFAULT_BUILD_DIR));
    await writeFile(join(sp.etc, 'group'), ETC_GROUP);
    await writeFile(join(sp.etc, 'hosts'), ETC_HOSTS);
    for (const f of built.files) {
      const file = join(sp.build, f.name);
      await writeFile(file, encodeByteString(f.content, f.name), { mode: 0o644 });
      // Nix leaves graph files to root: outside our user namespace they show as nobody.
      if (!f.ownedByBuilder && process.getuid?.() === 0) await chown(file, NOBODY, NOBODY);
    }
    const filter = settings.seccomp ? seccompFilter() : undefined;
    const seccompFile = filter ? join(stageDir, 'seccomp.bpf') : undefined;
    if (filter && seccompFile) await writeFile(seccompFile, filter);
    const hostNetFiles: string[] = [];
    if (fixed)
      for (const f of ['/etc/resolv.conf', '/etc/services']) if (await exists(f)) hostNetFiles.push(f);
    const bwrap = bwrapArgv({
      bwrap: settings.bwrap,
      stageDir,
      contentDir: store.layout.contentDir,
      storeDir,
      buildDir: DEFAULT_BUILD_DIR,
      inputs: [...inputs],
      network: fixed,
      hostNetFiles,
      env: built.env,
      builder: drv.builder,
      args: drv.args,
      seccompFd: seccompFile !== undefined && settings.script !== undefined ? 3 : undefined,
    });
    const argv = settings.script !== undefined ? ptyArgv(settings.script, bwrap, seccompFile) : bwrap;
    const timeout = minNonZero(settings.timeout, positiveAttr(drv, 'timeout'));
    const maxSilentTime = minNonZero(settings.maxSilentTime, positiveAttr(drv, 'maxSilent'));
    startTime = now();
    // The stored log has the lines as the client sees them (`\r` applied) and the
    // structured `@nix` lines; it is written whatever the outcome, except on cancel.
    const logFile = settings.keepLog ? await BuildLogWriter.open(store.layout.dataDir, drvPath) : undefined;
    let run: Awaited<ReturnType<typeof runBuilder>>;
    try {
      run = await runBuilder({
        argv,
        timeout,
        maxSilentTime,
        signal: opts.signal,
        logLines: settings.logLines,
        sink: {
          onLine: (l) => {
            logFile?.line(l);
            opts.onLogLine?.(l);
          },
          onStructured: (j) => {
            logFile?.line(`@nix ${j}`);
            opts.onStructured?.(j);
          },
        },
      });
    } catch (err) {
      await logFile?.abort();
      throw err;
    }
    if (run.outcome.kind === 'cancelled') await logFile?.abort();
    else await logFile?.commit();
    stopTime = now();
    const o = run.outcome;
    const goalName = `building of '${drvPath}!${[...drv.outputs.keys()].join(',')}' from .drv file`;
    if (o.kind === 'cancelled') {
      throw new BuildError(
        BuildErrorCode.CANCELLED,
        BuildStatus.MiscFailure,
        hintfmt('%s was cancelled', goalName),
        { drvPath },
      );
    }
    if (o.kind === 'timedOut') {
      const secs = o.silence ? maxSilentTime : timeout;
      throw new BuildError(
        BuildErrorCode.TIMED_OUT,
        BuildStatus.TimedOut,
        o.silence
          ? hintfmt('%s timed out after %s seconds of silence', goalName, secs)
          : hintfmt('%s timed out after %s seconds', goalName, secs),
        { drvPath, seconds: secs },
      );
    }
    if (o.kind === 'signalled' || o.code !== 0) {
      const how =
        o.kind === 'signalled'
          ? `failed due to signal ${o.signal} (${SIGNAL_NAMES[o.signal] ?? o.signal})`
          : `failed with exit code ${o.code}`;
      throw new BuildError(
        BuildErrorCode.BUILDER_FAILED,
        fixed ? BuildStatus.TransientFailure : BuildStatus.PermanentFailure,
        builderFailedMessage(drvPath, how, run.tail),
        { drvPath, exitCode: o.kind === 'exited' ? o.code : undefined },
      );
    }
    const { infos, mismatch } = await processOutputs(
      store,
      drv,
      drvPath,
      inputs,
      outs,
      sp.store,
      built.structured,
      view,
    );
    const registered = await store.registerBuilt(infos, { locked: { signal: locked } });
    if (mismatch) throw mismatch;
    return {
      status: BuildStatus.Built,
      errorMsg: '',
      builtOutputs: await builtOutputsOf(
        store,
        drv,
        new Map([...outs].filter(([, p]) => registered.some((i) => i.path === p))),
      ),
      startTime,
      stopTime,
      timesBuilt: 1,
      isNonDeterministic: false,
      code: undefined,
      hashMismatch: false,
      keptDir: undefined,
    };
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    keep = settings.keepFailed && err.code !== BuildErrorCode.CANCELLED;
    return failure(err, { ...times(), keptDir: keep ? stageDir : undefined });
  } finally {
    if (!keep) await removeTree(stageDir);
  }
}

async function processOutputs(
  store: LocalStore,
  drv: Derivation,
  drvPath: string,
  inputs: ReadonlySet<string>,
  outs: ReadonlyMap<string, string>,
  stageStore: string,
  structured: ReturnType<typeof buildEnvironment>['structured'],
  view: StoreView,
): Promise<{ infos: (ScannedOutput & { deriver: string })[]; mismatch: BuildError | undefined }> {
  const storeDir = store.storeDir;
  const physical = (p: string): string => join(stageStore, p.slice(storeDir.length + 1));
  for (const [name, p] of outs) {
    if (!(await exists(physical(p)))) {
      throw new BuildError(
        BuildErrorCode.OUTPUT_MISSING,
        BuildStatus.OutputRejected,
        hintfmt(
          "builder for '%s' failed to produce output path for output '%s' at '%s'",
          drvPath,
          name,
          `${drvPath}.chroot${p}`,
        ),
        { drvPath, output: name, path: p },
      );
    }
  }
  const candidates = hashPartMap([...inputs, ...outs.values()], storeDir);
  const scanned: ScannedOutput[] = [];
  let mismatch: BuildError | undefined;
  for (const [name, p] of outs) {
    const phys = physical(p);
    await canonicaliseOutput(phys, true);
    const s = await scanOutput(phys, candidates);
    let path = p;
    let ca: string | undefined;
    const o = drv.outputs.get(name)!;
    if (o.kind === 'fixed') {
      if (o.method === 'text') {
        throw new BuildError(
          BuildErrorCode.UNSUPPORTED,
          BuildStatus.OutputRejected,
          hintfmt("cannot build '%s': text-hashed fixed outputs are not supported", drvPath),
          { drvPath },
        );
      }
      const r = await checkFixedOutput(
        { physical: phys, narHash: s.narHash, references: s.references, path: p },
        {
          drvPath,
          actualPath: `${drvPath}.chroot${p}`,
          method: o.method,
          wanted: o.hash,
          outputPathName: outputPathName(drv.name, name),
          storeDir,
        },
      );
      ca = r.ca;
      path = r.path;
      mismatch = r.mismatch;
    }
    scanned.push({ name, path, physical: phys, ...s, ca });
  }
  const sorted = sortOutputs(scanned);
  if (!mismatch) {
    const byName = new Map(scanned.map((s) => [s.name, s]));
    const infoOf = (p: string): { narSize: number; references: readonly string[] } => view.info(p);
    for (const s of scanned) {
      let checks: Checks | undefined;
      if (structured) checks = structuredChecks(structured, s.name, drvPath);
      else {
        checks = {
          ignoreSelfRefs: true,
          allowedReferences: stringsAttr(drv, undefined, 'allowedReferences', drvPath),
          allowedRequisites: stringsAttr(drv, undefined, 'allowedRequisites', drvPath),
          disallowedReferences: stringsAttr(drv, undefined, 'disallowedReferences', drvPath),
          disallowedRequisites: stringsAttr(drv, undefined, 'disallowedRequisites', drvPath),
        };
      }
      if (checks) applyChecks(s, checks, byName, infoOf, (x) => isStorePath(x, storeDir));
    }
  }
  return { infos: sorted.map((s) => ({ ...s, deriver: drvPath })), mismatch };
}
