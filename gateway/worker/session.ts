/**
 * One worker-protocol session (`nix-daemon --stdio` over ssh-ng): the handshake, then
 * ops until the client closes its side. Each op: read the request, check the key's
 * permission, do the work (stderr messages may flow), then STDERR_LAST + reply, or
 * STDERR_ERROR. An error inside an op leaves the session usable, as in Nix's daemon; an
 * error while reading a request or an unframed payload desynchronises the stream, so
 * the session sends the error and closes.
 */
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { isNixFormatError } from '../../nix/errors.js';
import type { Ctx } from '../../nix/protocol/codec.js';
import {
  encodeFeatures,
  encodeWorkerServerHello,
  encodeWorkerServerInfo,
  negotiateVersion,
  readFeatures,
  readWorkerClientMagic,
  readWorkerClientOptions,
  readWorkerClientVersion,
} from '../../nix/protocol/handshake.js';
import { encodeStderrMessage } from '../../nix/protocol/stderr.js';
import { minorOf, OpSince, protocolVersion, Since, WORKER_PROTOCOL } from '../../nix/protocol/versions.js';
import { TrustedFlag, type OpName } from '../../nix/protocol/worker.js';
import {
  encodeWorkerReply,
  readWorkerRequest,
  replyPayload,
  requestPayload,
  type WorkerRequest,
} from '../../nix/protocol/worker-ops.js';
import { readFramed } from '../../nix/wire/framed.js';
import { wireLimits, type WireLimits } from '../../nix/wire/limits.js';
import { WireReader } from '../../nix/wire/reader.js';
import { WireWriter } from '../../nix/wire/writer.js';
import { skipNarFromWire } from '../../nix/protocol/nar-stream.js';
import type { SessionHandle, SessionInfo } from '../../store/coordination.js';
import type { LocalStore } from '../../store/local-store.js';
import type { GatewayMetrics } from '../metrics.js';
import type { BuildService } from '../builds/service.js';
import { isStoreError } from '../../store/errors.js';
import { GatewayError, GatewayErrorCode } from '../errors.js';
import { requirePermission, WORKER_OP_PERMISSION } from '../permissions.js';
import type { ClientIdentity } from '../ssh-server.js';
import { ClientLog } from './client-log.js';
import { WORKER_OPS, type OpEnv, type Payload } from './ops.js';
import type { PublicKey } from '../../store/signatures.js';

export const NIXYARD_DAEMON_VERSION = 'nixyard-0.1.0';

export interface WorkerSessionDeps {
  readonly store: LocalStore;
  readonly metrics?: GatewayMetrics;
  readonly builds?: BuildService;
  readonly who: ClientIdentity;
  readonly log: Logger;
  readonly limits?: Partial<WireLimits>;
  readonly maxNarSize: number;
  readonly trustedPublicKeys: readonly PublicKey[];
  readonly sessionId: string;
}

/** Errors that leave the byte stream in sync: the session can go on after reporting them. */
function isOpError(err: unknown): boolean {
  return (
    isStoreError(err) ||
    err instanceof GatewayError ||
    (isNixFormatError(err) && !err.code.startsWith('ERR_NIX_WIRE'))
  );
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** What a session's registration says about it (visible to operators in Redis). */
export function sessionInfo(protocol: 'worker' | 'serve', who: ClientIdentity): SessionInfo {
  return {
    replica: `${hostname()}:${process.pid}`,
    protocol,
    key: who.key.fingerprint,
    comment: who.key.comment ?? '',
  };
}

/**
 * Registers the session with the store's coordination (in Redis when replicas share the
 * store: its temp roots then count on every replica until it ends or stops renewing).
 */
export function openStoreSession(
  store: LocalStore,
  sessionId: string,
  protocol: 'worker' | 'serve',
  who: ClientIdentity,
  log: Logger,
): Promise<SessionHandle> {
  return store.openSession(sessionId, {
    info: sessionInfo(protocol, who),
    onExpired: () =>
      log.warn(
        { sessionId },
        'the session registration expired (Redis unreachable?); its temp roots are gone',
      ),
  });
}

export async function runWorkerSession(channel: Duplex, deps: WorkerSessionDeps): Promise<void> {
  const limits = wireLimits(deps.limits);
  const reader = new WireReader(channel, limits);
  const writer = new WireWriter(channel);
  let ctx: Ctx = { minor: WORKER_PROTOCOL.maxMinor, limits };
  const clientLog = new ClientLog(writer, () => ctx);
  const { log } = deps;

  // Handshake. Send our hello as soon as MAGIC_1 is in: 2.23+ clients send their
  // version in the same write, older ones wait for ours.
  const serverVersion = protocolVersion(WORKER_PROTOCOL.major, WORKER_PROTOCOL.maxMinor);
  let clientVersion: number;
  let trusted: number;
  try {
    await readWorkerClientMagic(reader);
    await writer.write(encodeWorkerServerHello(serverVersion));
    clientVersion = await readWorkerClientVersion(reader);
    const minor = minorOf(Math.min(clientVersion, serverVersion));
    ctx = { minor, limits };
    if (minor >= Since.features) {
      await readFeatures(reader);
      await writer.write(encodeFeatures([])); // we offer none: every feature is optional
    }
    await readWorkerClientOptions(reader, minor);
    trusted = deps.who.key.permissions.has('admin') ? TrustedFlag.Trusted : TrustedFlag.NotTrusted;
    await writer.write(encodeWorkerServerInfo(minor, { daemonVersion: NIXYARD_DAEMON_VERSION, trusted }));
  } catch (err) {
    // Not a Nix client, or one that went away: nothing on the wire can reach it.
    log.warn({ err: messageOf(err), code: (err as { code?: string }).code }, 'handshake failed');
    return;
  }
  try {
    negotiateVersion(clientVersion, serverVersion, WORKER_PROTOCOL.minMinor);
  } catch (err) {
    // Refused in the startup messages, where the client prints it.
    log.info({ clientVersion }, 'refused an unsupported client version');
    await sendError(`Nixyard cannot serve this client: ${messageOf(err)}`).catch(() => undefined);
    return;
  }
  let registration: SessionHandle;
  try {
    registration = await openStoreSession(deps.store, deps.sessionId, 'worker', deps.who, log);
  } catch (err) {
    log.warn({ err: messageOf(err), code: (err as { code?: string }).code }, 'cannot register the session');
    await sendError(`Nixyard cannot open a session: ${messageOf(err)}`).catch(() => undefined);
    return;
  }
  await writer.write(encodeStderrMessage({ type: 'last' }, ctx));
  log.info(
    { clientMinor: minorOf(clientVersion), minor: ctx.minor, trusted: trusted === TrustedFlag.Trusted },
    'worker handshake done',
  );

  // The client is gone when its channel closes or it ends its input (nix-daemon sees a
  // hang-up on stdin: a killed `nix` makes its ssh send EOF and linger until output
  // arrives, which a silent build never sends): builds only it wanted are cancelled.
  const closed = new AbortController();
  channel.once('close', () => closed.abort());
  const onReadable = (): void => {
    if (inputEnded(channel)) closed.abort();
  };
  channel.on('readable', onReadable);
  closed.signal.addEventListener('abort', () => channel.off('readable', onReadable), { once: true });
  const env: OpEnv = {
    store: deps.store,
    reader,
    writer,
    log: clientLog,
    ctx: () => ctx,
    who: deps.who,
    sessionId: deps.sessionId,
    maxNarSize: deps.maxNarSize,
    trustedPublicKeys: deps.trustedPublicKeys,
    options: new Map(),
    builds: deps.builds,
    closed: closed.signal,
  };

  try {
    while (!(await reader.atEof())) {
      let request: WorkerRequest;
      try {
        request = await readWorkerRequest(reader, ctx);
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'cannot read the request; closing the session');
        await sendError(`Nixyard could not read the request: ${messageOf(err)}`).catch(() => undefined);
        return;
      }
      const keepGoing = await runOp(request);
      if (!keepGoing) return;
    }
  } finally {
    await registration.close().catch((err: unknown) => {
      log.warn({ err: messageOf(err) }, 'cannot unregister the session; it expires by itself');
    });
  }

  function sendError(message: string): Promise<void> {
    return writer.write(
      encodeStderrMessage(
        { type: 'error', level: 0, name: 'Error', message, traces: [], exitStatus: 1 },
        ctx,
      ),
    );
  }

  /** Runs one op; false when the session must end. */
  async function runOp(request: WorkerRequest): Promise<boolean> {
    const started = process.hrtime.bigint();
    const op: OpName = request.op;
    const payload = openPayload(op);
    const olog = log.child({ op });
    try {
      const since = (OpSince as Partial<Record<OpName, number>>)[op];
      if (since !== undefined && ctx.minor < since) {
        throw new GatewayError(
          GatewayErrorCode.UNSUPPORTED_OPERATION,
          `invalid operation ${op} for protocol 1.${ctx.minor}`,
        );
      }
      requirePermission(deps.who.key.permissions, WORKER_OP_PERMISSION[op], `the '${op}' operation`);
      const handler = WORKER_OPS[op];
      if (!handler) {
        throw new GatewayError(
          GatewayErrorCode.UNSUPPORTED_OPERATION,
          `Nixyard does not support the '${op}' operation`,
          {
            op,
          },
        );
      }
      const result = await handler(request.args as never, env, payload);
      await finishPayload(payload);
      const last = encodeStderrMessage({ type: 'last' }, ctx);
      if (replyPayload(op) === 'nar') {
        await writer.write(last);
        for await (const chunk of result as AsyncIterable<Uint8Array>) await writer.write(chunk);
      } else {
        // One write, so STDERR_LAST and the reply travel in one SSH packet.
        await writer.write(Buffer.concat([last, encodeWorkerReply(op, result as never, ctx)]));
      }
      olog.info({ ms: msSince(started) }, 'op done');
      deps.metrics?.opDone('worker', op, true, msSince(started) / 1000);
      return true;
    } catch (err) {
      const inSync =
        isOpError(err) &&
        (await finishPayload(payload).then(
          () => true,
          () => false,
        ));
      olog.info(
        { ms: msSince(started), err: messageOf(err), code: (err as { code?: string }).code },
        'op failed',
      );
      deps.metrics?.opDone('worker', op, false, msSince(started) / 1000);
      // Wire errors (the client went away, sent a bad frame) are the client's; only
      // errors of our own code deserve the error level and a stack.
      if (!isOpError(err) && !isNixFormatError(err)) olog.error({ err }, 'unexpected error in op');
      await sendError(messageOf(err)).catch(() => undefined);
      return inSync;
    }
  }

  function openPayload(op: OpName): Payload {
    switch (requestPayload(op, ctx.minor)) {
      case 'framed':
        return { kind: 'framed', source: readFramed(reader, limits) };
      case 'nar':
        return { kind: 'nar' };
      case 'stderr-read':
        return { kind: 'stderr-read' };
      default:
        return { kind: 'none' };
    }
  }

  /** Brings the stream to the end of the op's payload, whatever the handler read of it. */
  async function finishPayload(payload: Payload): Promise<void> {
    if (payload.kind === 'framed') {
      await payload.source.drain();
    } else if (payload.kind === 'nar' && !payload.consumed) {
      payload.consumed = true;
      await skipNarFromWire(reader);
    }
  }
}

function msSince(start: bigint): number {
  return Number((process.hrtime.bigint() - start) / 1000n) / 1000;
}

/**
 * Whether the client has ended its side (EOF received), even if the session has not read
 * that far: the stream's own flag, as no public property says it before 'end' is emitted,
 * and 'end' waits for a read that a session busy with an op does not do.
 */
function inputEnded(stream: Duplex): boolean {
  return (stream as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}
