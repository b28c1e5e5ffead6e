/**
 * One serve-protocol session (`nix-store --serve [--write]`, legacy `ssh://`, reference
 * §8). There is no error channel: a failure is written to the channel's stderr, where
 * the client shows it, and the session ends (the client sees EOF), as Nix's own
 * `nix-store --serve` does. Build failures are reported in-band.
 */
import type { Logger } from 'pino';
import type { ServerChannel } from 'ssh2';
import { parseHash } from '../../nix/hash.js';
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
import type { LocalStore } from '../../store/local-store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { PublicKey } from '../../store/signatures.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { NixMessages } from '../nix-messages.js';
import { closureWithOutputs } from '../worker/derivations.js';
import { requirePermission, SERVE_COMMAND_PERMISSION } from '../permissions.js';
import type { ClientIdentity } from '../ssh-server.js';

export interface ServeSessionDeps {
  readonly store: LocalStore;
  readonly metrics?: GatewayMetrics;
  readonly who: ClientIdentity;
  readonly log: Logger;
  readonly write: boolean;
  readonly maxNarSize: number;
  readonly trustedPublicKeys: readonly PublicKey[];
  readonly sessionId: string;
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
    store.tempRoots.release(deps.sessionId);
  }

  async function run(request: ServeRequest): Promise<void> {
    switch (request.cmd) {
      case 'QueryValidPaths': {
        const { lock, paths } = request.args;
        const valid = await store.queryValid(paths);
        const answer = paths.filter((p) => valid.has(p));
        if (lock && deps.write) store.tempRoots.add(deps.sessionId, answer);
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
        await store.importNar(
          {
            path: a.path,
            deriver: a.deriver === '' ? undefined : a.deriver,
            narHash: parseHash(a.narHash, 'sha256'),
            narSize: a.narSize,
            references: a.references,
            sigs: a.sigs,
            ca: a.ca === '' ? undefined : a.ca,
          },
          readNarFromWire(reader, { expectedSize: a.narSize }),
        );
        return reply('AddToStoreNar', 1);
      }
      case 'BuildDerivation':
        return reply('BuildDerivation', {
          status: BuildStatus.MiscFailure,
          errorMsg: NixMessages.buildsNotYet(request.args.drvPath),
          timesBuilt: 0,
          isNonDeterministic: false,
          startTime: 0,
          stopTime: 0,
          builtOutputs: new Map(),
        });
      case 'BuildPaths': {
        const missing = (await store.queryValid(request.args.paths)).size !== request.args.paths.length;
        return reply(
          'BuildPaths',
          missing
            ? {
                status: BuildStatus.MiscFailure,
                errorMsg: NixMessages.buildsNotYet(request.args.paths[0] ?? ''),
              }
            : { status: 0, errorMsg: '' },
        );
      }
      case 'ImportPaths':
      case 'ExportPaths':
        throw new GatewayError(
          GatewayErrorCode.UNSUPPORTED_OPERATION,
          `Nixyard does not support the serve command '${request.cmd}'`,
        );
    }
  }
}
