/**
 * One serve-protocol session (`nix-store --serve [--write]`, legacy `ssh://`, reference
 * §8). There is no error channel: a failure is written to the channel's stderr, where
 * the client shows it, and the session ends (the client sees EOF), as Nix's own
 * `nix-store --serve` does. Build failures are reported in-band.
 *
 * Builds (BuildDerivation, BuildPaths) go to the gateway's BuildService; their log lines
 * are written raw to the channel's stderr as they come (the client's build hook forwards
 * them to the user), and the result is the serve BuildResult.
 */
import type { Logger } from 'pino';
import type { ServerChannel } from 'ssh2';
import type { Ctx } from '../../nix/protocol/codec.js';
import {
  encodeServeServerHello,
  negotiateVersion,
  readServeClientHello,
} from '../../nix/protocol/handshake.js';
import { readNarFromWire } from '../../nix/protocol/nar-stream.js';
import {
  encodeServeReply,
  readServeRequest,
  type ServeRequest,
  type ServeReply,
} from '../../nix/protocol/serve-ops.js';
import type { ServeCommandName } from '../../nix/protocol/serve.js';
import { minorOf, protocolVersion, SERVE_PROTOCOL } from '../../nix/protocol/versions.js';
import { BuildStatus } from '../../nix/protocol/worker.js';
import { wireLimits } from '../../nix/wire/limits.js';
import { WireReader } from '../../nix/wire/reader.js';
import { WireWriter } from '../../nix/wire/writer.js';
import type { SessionHandle } from '../../store/coordination.js';
import type { LocalStore } from '../../store/local-store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { PublicKey } from '../../store/signatures.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { NixMessages } from '../nix-messages.js';
import { toClaim } from '../path-infos.js';
import { closureWithOutputs } from '../worker/derivations.js';
import { openStoreSession } from '../worker/session.js';
import { requirePermission, SERVE_COMMAND_PERMISSION } from '../permissions.js';
import type { ClientIdentity } from '../ssh-server.js';
import type { BuildService } from '../builds/service.js';
import type { Realisation, RealiseEvents } from '../builds/realise.js';
import { realisationsOfBasic, rootBasicDerivation, rootBuildTargets } from '../builds/request-roots.js';
import type { BuildOutcome } from '../builds/types.js';
import { parseDerivedPath } from '../derived-path.js';

export interface ServeSessionDeps {
  readonly store: LocalStore;
  readonly metrics?: GatewayMetrics;
  readonly who: ClientIdentity;
  readonly log: Logger;
  readonly write: boolean;
  readonly maxNarSize: number;
  readonly trustedPublicKeys: readonly PublicKey[];
  readonly sessionId: string;
  /** Where builds run; without it, builds are refused (a store-only gateway). */
  readonly builds?: BuildService | undefined;
}

/** Nix 2.8 `nix-store --serve` reports failures without the log tail (the log went to stderr). */
function withoutLogTail(msg: string): string {
  return msg.replace(/;\nlast \d+ log lines:\n[\s\S]*$/, '');
}

function succeeded(o: BuildOutcome): boolean {
  return o.status === BuildStatus.Built || o.status === BuildStatus.AlreadyValid;
}

/** `nix-store --serve` BuildPaths status: the exit status nix-build would have (`Worker::exitStatus`). */
function exitStatusOf(o: BuildOutcome): number {
  if (o.status === BuildStatus.PermanentFailure) return 100;
  if (o.status === BuildStatus.TimedOut) return 101;
  if (o.status === BuildStatus.OutputRejected && o.errorMsg.includes('hash mismatch')) return 102;
  return 1;
}

const WRITE_COMMANDS: ReadonlySet<ServeCommandName> = new Set([
  'ImportPaths',
  'AddToStoreNar',
  'BuildPaths',
  'BuildDerivation',
]);

export async function runServeSession(channel: ServerChannel, deps: ServeSessionDeps): Promise<void> {
  const limits = wireLimits();
  const reader = new WireReader(channel, limits);
  const writer = new WireWriter(channel);
  const { store, log } = deps;
  const serverVersion = protocolVersion(SERVE_PROTOCOL.major, SERVE_PROTOCOL.maxMinor);

  const clientVersion = await readServeClientHello(reader);
  await writer.write(encodeServeServerHello(serverVersion));
  negotiateVersion(clientVersion, serverVersion, SERVE_PROTOCOL.minMinor);
  const ctx: Ctx = { minor: minorOf(Math.min(clientVersion, serverVersion)), limits };
  log.info({ minor: ctx.minor, write: deps.write }, 'serve handshake done');
  let registration: SessionHandle;
  try {
    registration = await openStoreSession(store, deps.sessionId, 'serve', deps.who, log);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.warn({ err: message }, 'cannot register the session');
    channel.stderr.write(`error: Nixyard cannot open a session: ${message}\n`);
    throw err;
  }

  const reply = <K extends ServeCommandName>(cmd: K, value: ServeReply<K>): Promise<void> =>
    writer.write(encodeServeReply(cmd, value, ctx));

  let current: { cmd: ServeCommandName; started: number } | undefined;
  try {
    while (!(await reader.atEof())) {
      const request = await readServeRequest(reader, ctx);
      const started = Date.now();
      current = { cmd: request.cmd, started };
      requirePermission(
        deps.who.key.permissions,
        SERVE_COMMAND_PERMISSION[request.cmd],
        `the '${request.cmd}' command`,
      );
      if (WRITE_COMMANDS.has(request.cmd) && !deps.write) {
        throw new GatewayError(
          GatewayErrorCode.PERMISSION_DENIED,
          `'${request.cmd}' needs 'nix-store --serve --write'`,
        );
      }
      await run(request);
      log.info({ op: request.cmd, ms: Date.now() - started }, 'op done');
      deps.metrics?.opDone('serve', request.cmd, true, (Date.now() - started) / 1000);
      current = undefined;
    }
  } catch (err) {
    if (current) deps.metrics?.opDone('serve', current.cmd, false, (Date.now() - current.started) / 1000);
    const message = err instanceof Error ? err.message : String(err);
    log.info({ err: message }, 'serve session failed');
    channel.stderr.write(`error: ${message}\n`);
    throw err;
  } finally {
    await registration.close().catch((err: unknown) => {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'cannot unregister the session');
    });
  }

  /** Log lines of this session's builds, raw on the channel's stderr as Nix's serve does. */
  function logToStderr(): RealiseEvents {
    const write = (_drvPath: string, text: string): void => {
      if (!channel.stderr.destroyed) channel.stderr.write(`${text}\n`);
    };
    return { logLine: write, notice: write };
  }

  async function buildDerivation(
    args: Extract<ServeRequest, { cmd: 'BuildDerivation' }>['args'],
  ): Promise<ServeReply<'BuildDerivation'>> {
    const { drvPath, drv } = args;
    if (!deps.builds) {
      return {
        status: BuildStatus.MiscFailure,
        errorMsg: NixMessages.buildsNotYet(drvPath),
        timesBuilt: 0,
        isNonDeterministic: false,
        startTime: 0,
        stopTime: 0,
        builtOutputs: new Map(),
      };
    }
    const fixedOnly = drv.outputs.every((o) => o.hash !== '');
    if (!fixedOnly && !deps.who.key.permissions.has('admin')) {
      // As the worker's BuildDerivation: a BasicDerivation names its own output paths.
      throw new GatewayError(
        GatewayErrorCode.PERMISSION_DENIED,
        `Nixyard: BuildDerivation of the input-addressed '${drvPath}' needs the 'admin' permission`,
        { drvPath },
      );
    }
    const builds = deps.builds;
    await rootBasicDerivation(store, deps.sessionId, drv);
    const outcome = await withRealisation(builds, (r) => builds.buildBasic(drvPath, drv, r));
    const builtOutputs = succeeded(outcome) ? realisationsOfBasic(store, outcome) : new Map<string, string>();
    return {
      status: outcome.status,
      errorMsg: withoutLogTail(outcome.errorMsg),
      timesBuilt: outcome.timesBuilt,
      isNonDeterministic: false,
      startTime: outcome.startTime,
      stopTime: outcome.stopTime,
      builtOutputs,
    };
  }

  /** BuildPaths: StorePathWithOutputs strings; a bare `.drv` means all of its outputs. */
  async function buildPaths(paths: readonly string[]): Promise<ServeReply<'BuildPaths'>> {
    const targets = paths.map((text) => {
      const t = parseDerivedPath(text);
      return t.kind === 'opaque' && t.path.endsWith('.drv')
        ? { kind: 'built' as const, drvPath: t.path, outputs: 'all' as const }
        : t;
    });
    const opaque = targets.flatMap((t) => (t.kind === 'opaque' ? [t.path] : []));
    const valid = await store.queryValid(opaque);
    const invalid = opaque.find((p) => !valid.has(p));
    if (invalid !== undefined) return { status: 1, errorMsg: NixMessages.noSubstituter(invalid) };
    const drvs = [...new Set(targets.flatMap((t) => (t.kind === 'built' ? [t.drvPath] : [])))];
    if (drvs.length === 0) return { status: 0, errorMsg: '' };
    if (!deps.builds) return { status: 1, errorMsg: NixMessages.buildsNotYet(drvs[0] ?? '') };
    await rootBuildTargets(store, deps.sessionId, drvs, opaque);
    const outcomes = await withRealisation(deps.builds, (r) => Promise.all(drvs.map((d) => r.derivation(d))));
    const failed = outcomes.flatMap((o, i) => (succeeded(o) ? [] : [{ o, drv: drvs[i]! }]));
    const first = failed[0];
    if (first === undefined) return { status: 0, errorMsg: '' };
    const errorMsg =
      failed.length === 1
        ? withoutLogTail(first.o.errorMsg)
        : `build of ${failed.map((f) => `'${f.drv}'`).join(', ')} failed`;
    return { status: Math.max(...failed.map((f) => exitStatusOf(f.o))), errorMsg };
  }

  /** A Realisation whose builds are released (cancelled if nobody else wants them) when the client leaves. */
  async function withRealisation<T>(builds: BuildService, work: (r: Realisation) => Promise<T>): Promise<T> {
    const realisation = builds.realisation({
      requester: deps.sessionId,
      keepGoing: false,
      events: logToStderr(),
    });
    const onClose = (): void => realisation.release();
    channel.once('close', onClose);
    try {
      return await work(realisation);
    } finally {
      channel.off('close', onClose);
    }
  }

  async function run(request: ServeRequest): Promise<void> {
    switch (request.cmd) {
      case 'QueryValidPaths': {
        const { lock, paths } = request.args;
        const valid = await store.queryValid(paths);
        const answer = paths.filter((p) => valid.has(p));
        if (lock && deps.write) await store.tempRoots.add(deps.sessionId, answer);
        return reply('QueryValidPaths', answer);
      }
      case 'QueryPathInfos': {
        const infos = await store.queryPathInfos(request.args.paths);
        const entries = request.args.paths.flatMap((p) => {
          const info = infos.get(p);
          if (!info) return [];
          return [
            {
              path: p,
              deriver: info.deriver ?? '',
              references: [...info.references],
              downloadSize: info.narSize,
              narSize: info.narSize,
              narHash: info.narHash.toTyped('base32'),
              ca: info.ca ?? '',
              sigs: [...info.sigs],
            },
          ];
        });
        return reply('QueryPathInfos', entries);
      }
      case 'DumpStorePath': {
        const { path } = request.args;
        if (!(await store.isValid(path))) {
          throw new GatewayError(GatewayErrorCode.UNSUPPORTED_OPERATION, NixMessages.notValid(path), {
            path,
          });
        }
        for await (const chunk of await store.narFromPath(path)) await writer.write(chunk);
        return;
      }
      case 'QueryClosure': {
        const { includeOutputs, paths } = request.args;
        const closure = includeOutputs
          ? await closureWithOutputs(store, paths)
          : await store.queryClosure(paths);
        return reply('QueryClosure', [...closure].sort());
      }
      case 'AddToStoreNar': {
        const a = request.args;
        if (a.narSize > deps.maxNarSize) {
          throw new GatewayError(
            GatewayErrorCode.UNSUPPORTED_OPERATION,
            `NAR of '${a.path}' is larger than this gateway accepts`,
          );
        }
        // Like nix-store --serve: signatures are not checked on this path (NoCheckSigs).
        await store.importNar(toClaim(a), readNarFromWire(reader, { expectedSize: a.narSize }), {
          sessionId: deps.sessionId,
        });
        return reply('AddToStoreNar', 1);
      }
      case 'BuildDerivation':
        return reply('BuildDerivation', await buildDerivation(request.args));
      case 'BuildPaths':
        return reply('BuildPaths', await buildPaths(request.args.paths));
      case 'ImportPaths':
      case 'ExportPaths':
        throw new GatewayError(
          GatewayErrorCode.UNSUPPORTED_OPERATION,
          `Nixyard does not support the serve command '${request.cmd}'`,
        );
    }
  }
}
