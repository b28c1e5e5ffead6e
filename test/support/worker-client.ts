/**
 * A small scripted worker-protocol client for in-process session tests: the gateway's
 * `runWorkerSession` runs on one end of a Duplex pair, this client on the other, and
 * every byte goes through the nix/protocol encoders and decoders. No ssh, no sockets.
 */
import { Duplex, PassThrough, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { AuthorizedKey, Permission } from '../../gateway/authorized-keys.js';
import type { ClientIdentity } from '../../gateway/ssh-server.js';
import { runWorkerSession, type WorkerSessionDeps } from '../../gateway/worker/session.js';
import type { Ctx } from '../../nix/protocol/codec.js';
import {
  encodeFeatures,
  encodeWorkerClientMagic,
  encodeWorkerClientOptions,
  encodeWorkerClientVersion,
  readFeatures,
  readWorkerServerHello,
  readWorkerServerInfo,
} from '../../nix/protocol/handshake.js';
import { readNarFromWire } from '../../nix/protocol/nar-stream.js';
import { readStderrMessage, type StderrMessage } from '../../nix/protocol/stderr.js';
import { minorOf, protocolVersion, Since } from '../../nix/protocol/versions.js';
import type { OpName } from '../../nix/protocol/worker.js';
import {
  encodeWorkerRequest,
  readWorkerReply,
  replyPayload,
  type WorkerReply,
  type WorkerRequest,
  type WorkerRequestArgs,
} from '../../nix/protocol/worker-ops.js';
import { hashOf } from '../../nix/hash.js';
import { narOfBytes } from '../../nix/nar/writer.js';
import { ValidPathInfo116, type ValidPathInfo } from '../../nix/protocol/types.js';
import { makeFixedOutputPath } from '../../nix/store-path.js';
import { encodeBytes, WireBuilder } from '../../nix/wire/encode.js';
import { encodeFramed } from '../../nix/wire/framed.js';
import { DEFAULT_WIRE_LIMITS } from '../../nix/wire/limits.js';
import { WireReader } from '../../nix/wire/reader.js';
import type { LocalStore } from '../../store/local-store.js';

/** Both ends of an in-process channel; `server` also has the `stderr` an ssh2 channel has. */
export interface ChannelPair {
  readonly server: Duplex & { stderr: PassThrough };
  /** What the client writes (c2s). */
  readonly toServer: PassThrough;
  /** What the server writes (s2c). */
  readonly fromServer: PassThrough;
}

export function channelPair(): ChannelPair {
  const toServer = new PassThrough();
  const fromServer = new PassThrough();
  const server = Duplex.from({ readable: toServer, writable: fromServer }) as Duplex & {
    stderr: PassThrough;
  };
  server.stderr = new PassThrough();
  return { server, toServer, fromServer };
}

export function identity(permissions: readonly Permission[], name = 'test-key'): ClientIdentity {
  const key = {
    algo: 'ssh-ed25519',
    blob: Buffer.from(name),
    comment: name,
    permissions: new Set<Permission>(permissions),
    fingerprint: `SHA256:${name}`,
    key: undefined as never,
    line: 1,
  } satisfies AuthorizedKey;
  return { user: 'nixyard', key, remoteAddress: '127.0.0.1:0' };
}

/** A pino logger whose JSON lines are kept in `lines` (to assert "a clear log line"). */
export function captureLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as never);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

export interface ClientOptions {
  readonly store: LocalStore;
  readonly permissions?: readonly Permission[];
  readonly who?: ClientIdentity;
  readonly deps?: Partial<WorkerSessionDeps>;
  /** Runs the server end some other way (e.g. the handlers `storeHandlers` builds). */
  readonly start?: (server: ChannelPair['server'], log: Logger) => Promise<void>;
}

export interface HandshakeResult {
  readonly serverVersion: number;
  readonly minor: number;
  readonly serverFeatures: string[] | null;
  readonly daemonVersion: string | null;
  readonly trusted: number | null;
  readonly startup: StderrMessage[];
}

export interface OpResult<K extends OpName> {
  readonly stderr: StderrMessage[];
  readonly error?: Extract<StderrMessage, { type: 'error' }>;
  readonly reply?: WorkerReply<K>;
  /** NarFromPath: the NAR bytes after the reply. */
  readonly nar?: Buffer;
}

export class WorkerClient {
  readonly pair = channelPair();
  readonly reader = new WireReader(this.pair.fromServer, DEFAULT_WIRE_LIMITS);
  readonly session: Promise<void>;
  /** Settles with the session's outcome (never rejects). */
  readonly outcome: Promise<{ ok: true } | { ok: false; err: unknown }>;
  readonly logLines: Record<string, unknown>[];
  ctx: Ctx = { minor: 38, limits: DEFAULT_WIRE_LIMITS };

  constructor(opts: ClientOptions) {
    const { log, lines } = captureLog();
    this.logLines = lines;
    const deps: WorkerSessionDeps = {
      store: opts.store,
      who: opts.who ?? identity(opts.permissions ?? ['read', 'write', 'build', 'admin']),
      log,
      maxNarSize: 1 << 30,
      trustedPublicKeys: [],
      sessionId: `s-${Math.random().toString(36).slice(2)}`,
      ...opts.deps,
    };
    this.session = opts.start ? opts.start(this.pair.server, log) : runWorkerSession(this.pair.server, deps);
    // Like ssh-server.ts `finish`: the channel ends when the session does.
    void this.session.finally(() => this.pair.fromServer.end()).catch(() => undefined);
    this.outcome = this.session.then(
      () => ({ ok: true as const }),
      (err: unknown) => ({ ok: false as const, err }),
    );
  }

  write(bytes: Uint8Array): void {
    this.pair.toServer.write(bytes);
  }

  /** Handshake at `1.minor`; `oneWrite` sends MAGIC_1 and the version together (2.23+). */
  async handshake(
    minor: number,
    o: { oneWrite?: boolean; features?: string[] } = {},
  ): Promise<HandshakeResult> {
    const version = protocolVersion(1, minor);
    if (o.oneWrite === true) {
      this.write(Buffer.concat([encodeWorkerClientMagic(), encodeWorkerClientVersion(version)]));
    } else this.write(encodeWorkerClientMagic());
    const serverVersion = await readWorkerServerHello(this.reader);
    if (o.oneWrite !== true) this.write(encodeWorkerClientVersion(version));
    const negotiated = minorOf(Math.min(version, serverVersion));
    this.ctx = { minor: negotiated, limits: DEFAULT_WIRE_LIMITS };
    let serverFeatures: string[] | null = null;
    if (negotiated >= Since.features) {
      this.write(encodeFeatures(o.features ?? []));
      serverFeatures = await readFeatures(this.reader);
    }
    this.write(encodeWorkerClientOptions(negotiated, { cpuAffinity: null, reserveSpace: false }));
    const info = await readWorkerServerInfo(this.reader, negotiated);
    const startup = await this.readStderr();
    return { serverVersion, minor: negotiated, serverFeatures, ...info, startup };
  }

  /** Stderr messages up to and including STDERR_LAST / STDERR_ERROR; answers STDERR_READ from `readData`. */
  async readStderr(readData?: { data: Uint8Array; at: number }): Promise<StderrMessage[]> {
    const out: StderrMessage[] = [];
    for (;;) {
      const m = await readStderrMessage(this.reader, this.ctx);
      out.push(m);
      if (m.type === 'read') {
        const d = readData ?? { data: new Uint8Array(0), at: 0 };
        const piece = d.data.subarray(d.at, d.at + m.maxLen);
        d.at += piece.length;
        this.write(encodeBytes(piece));
      }
      if (m.type === 'last' || m.type === 'error') return out;
    }
  }

  /**
   * Sends one op (with its payload: `framed` chunks are framed here, `raw` bytes are sent
   * as they are, `stderrRead` is served on STDERR_READ) and reads the outcome.
   */
  async op<K extends OpName>(
    op: K,
    args: WorkerRequestArgs<K>,
    payload: { framed?: Uint8Array[]; raw?: Uint8Array; stderrRead?: Uint8Array } = {},
  ): Promise<OpResult<K>> {
    this.write(encodeWorkerRequest({ op, args } as WorkerRequest, this.ctx));
    if (payload.framed) this.write(encodeFramed(payload.framed));
    if (payload.raw) this.write(payload.raw);
    const readData = payload.stderrRead ? { data: payload.stderrRead, at: 0 } : undefined;
    const stderr = await this.readStderr(readData);
    const last = stderr.at(-1);
    if (last?.type === 'error') return { stderr, error: last };
    const reply = await readWorkerReply(this.reader, op, this.ctx);
    if (replyPayload(op) !== 'nar') return { stderr, reply };
    const pieces: Buffer[] = [];
    for await (const c of readNarFromWire(this.reader)) pieces.push(Buffer.from(c));
    return { stderr, reply, nar: Buffer.concat(pieces) };
  }

  /** Closes the client's side and waits for the session to end. */
  async close(): Promise<void> {
    this.pair.toServer.end();
    await this.session;
  }

  /** The server's remaining output after the session ended (to check it closed cleanly). */
  async rest(): Promise<Buffer> {
    const pieces: Buffer[] = [];
    while (!(await this.reader.atEof())) pieces.push(Buffer.from(await this.reader.readChunk(1 << 20)));
    return Buffer.concat(pieces);
  }
}

/** An upload: a store path with its NAR and the ValidPathInfo fields a client sends. */
export interface Upload {
  readonly path: string;
  readonly nar: Buffer;
  readonly narHash: string;
  readonly narSize: number;
  readonly ca: string;
}

function narInfo(path: string, nar: Uint8Array, ca: string): Upload {
  const buf = Buffer.from(nar);
  return { path, nar: buf, narHash: hashOf('sha256', buf).toBase16(), narSize: buf.length, ca };
}

/** A flat fixed-output path (`nix store add-file`): content-addressed, needs no signature. */
export function caFile(name: string, contents: string): Upload {
  const hash = hashOf('sha256', contents);
  const path = makeFixedOutputPath(name, { method: 'flat', hash });
  return narInfo(path, narOfBytes(Buffer.from(contents)), `fixed:${hash.toTyped('base32')}`);
}

/** An input-addressed path (any hash part): needs a signature or an admin's --no-check-sigs. */
export function inputAddressed(name: string, contents: string): Upload {
  const hashPart = hashOf('sha256', `ia:${name}:${contents}`).toBase32().slice(0, 32);
  return narInfo(`/nix/store/${hashPart}-${name}`, narOfBytes(Buffer.from(contents)), '');
}

/** AddToStoreNar arguments for `u`. */
export function addToStoreNarArgs(
  u: Upload,
  o: { dontCheckSigs?: boolean; narHash?: string; narSize?: number; ca?: string } = {},
): WorkerRequestArgs<'AddToStoreNar'> {
  return {
    path: u.path,
    deriver: '',
    narHash: o.narHash ?? u.narHash,
    references: [],
    registrationTime: 0,
    narSize: o.narSize ?? u.narSize,
    ultimate: false,
    sigs: [],
    ca: o.ca ?? u.ca,
    repair: false,
    dontCheckSigs: o.dontCheckSigs ?? false,
  };
}

/** AddMultipleToStore's framed content: count, then ValidPathInfo@1.16 + NAR per entry. */
export function multiplePayload(
  entries: { upload: Upload; narHash?: string; narSize?: number; ca?: string }[],
): Buffer {
  const b = new WireBuilder();
  b.u64(entries.length);
  for (const e of entries) {
    const info: ValidPathInfo = {
      path: e.upload.path,
      deriver: '',
      narHash: e.narHash ?? e.upload.narHash,
      references: [],
      registrationTime: 0,
      narSize: e.narSize ?? e.upload.narSize,
      ultimate: false,
      sigs: [],
      ca: e.ca ?? e.upload.ca,
    };
    ValidPathInfo116.write(b, info, { minor: 16, limits: DEFAULT_WIRE_LIMITS });
    b.raw(e.upload.nar);
  }
  return Buffer.from(b.finish());
}
