/**
 * Replays a recorded Nix 2.8 session against our gateway in-process: the recorded client
 * bytes (c2s, in the recorder's read chunks) go into `runWorkerSession` /
 * `runServeSession`, and both the recorded daemon stream and ours are decoded with the
 * nix/protocol codecs into the same message-level shape, ready to be compared.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerChannel } from 'ssh2';
import type { Permission } from '../../gateway/authorized-keys.js';
import { runServeSession } from '../../gateway/serve/session.js';
import { runWorkerSession } from '../../gateway/worker/session.js';
import type { Ctx } from '../../nix/protocol/codec.js';
import { readNarFromWire } from '../../nix/protocol/nar-stream.js';
import {
  readServeReply,
  readServeRequest,
  serveReplyPayload,
  serveRequestPayload,
  type ServeRequest,
} from '../../nix/protocol/serve-ops.js';
import type { StderrMessage } from '../../nix/protocol/stderr.js';
import type { WorkerServerInfo } from '../../nix/protocol/handshake.js';
import { ValidPathInfo116, type ValidPathInfo } from '../../nix/protocol/types.js';
import {
  readWorkerReply,
  readWorkerRequest,
  replyPayload,
  requestPayload,
  type WorkerRequest,
} from '../../nix/protocol/worker-ops.js';
import { readFramed } from '../../nix/wire/framed.js';
import { WireReader } from '../../nix/wire/reader.js';
import {
  leftover,
  readServeHandshake,
  readStderrUntilEnd,
  readWorkerHandshake,
} from './recorded-handshake.js';
import type { LocalStore } from '../../store/local-store.js';
import { type FixtureSession, loadStream } from './fixtures.js';
import { captureLog, channelPair, identity } from './worker-client.js';

/** One direction of a recorded session, split as the recorder read it (chunks.tsv). */
export function recordedChunks(session: FixtureSession, dir: 'c2s' | 's2c'): Buffer[] {
  const data = loadStream(session, dir);
  const tag = dir === 'c2s' ? 'C' : 'S';
  const out: Buffer[] = [];
  for (const line of readFileSync(join(session.dir, 'chunks.tsv'), 'utf8').split('\n')) {
    const cols = line.split('\t');
    if (cols[2] !== tag) continue;
    const off = Number(cols[3]);
    out.push(data.subarray(off, off + Number(cols[4])));
  }
  return out;
}

export interface Exchange {
  readonly request: WorkerRequest | ServeRequest;
  /** Worker uploads: the entries of AddMultipleToStore / the NAR of AddToStoreNar. */
  readonly uploads: { info?: ValidPathInfo; nar: Buffer }[];
  stderr: StderrMessage[];
  reply?: unknown;
  /** sha256 (hex) and size of an in-band reply NAR. */
  replyNar?: { sha256: string; size: number };
}

export interface Decoded {
  readonly version: number;
  readonly server?: WorkerServerInfo;
  readonly startup: StderrMessage[];
  readonly exchanges: Exchange[];
  readonly c2sLeft: number;
  readonly s2cLeft: number;
}

async function collectNar(r: WireReader, expectedSize?: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const c of readNarFromWire(r, { expectedSize })) pieces.push(Buffer.from(c));
  return Buffer.concat(pieces);
}

async function readUploads(c2s: WireReader, req: WorkerRequest, ctx: Ctx): Promise<Exchange['uploads']> {
  const kind = requestPayload(req.op, ctx.minor);
  if (kind === 'none') return [];
  if (kind !== 'framed') throw new Error(`payload ${kind} not expected at 1.${ctx.minor}`);
  const framed = readFramed(c2s);
  const inner = new WireReader(framed);
  const out: Exchange['uploads'] = [];
  if (req.op === 'AddMultipleToStore') {
    const count = await inner.readInt();
    for (let i = 0; i < count; i++) {
      const info = await ValidPathInfo116.read(inner, ctx);
      out.push({ info, nar: await collectNar(inner, info.narSize) });
    }
  } else if (req.op === 'AddToStoreNar') {
    out.push({ nar: await collectNar(inner, req.args.narSize) });
  }
  await framed.drain();
  return out;
}

/** Decodes a worker session (client bytes + server bytes) at message level. */
export async function decodeWorker(c2sChunks: Uint8Array[], s2cChunks: Uint8Array[]): Promise<Decoded> {
  const c2s = new WireReader(c2sChunks);
  const s2c = new WireReader(s2cChunks);
  const { version, ctx, server, startup } = await readWorkerHandshake(c2s, s2c);
  const exchanges: Exchange[] = [];
  while (!(await c2s.atEof())) {
    const request = await readWorkerRequest(c2s, ctx);
    const ex: Exchange = { request, uploads: await readUploads(c2s, request, ctx), stderr: [] };
    exchanges.push(ex);
    if (await s2c.atEof()) continue; // the session ended early
    ex.stderr = await readStderrUntilEnd(s2c, ctx);
    if (ex.stderr.at(-1)?.type !== 'last') continue;
    ex.reply = await readWorkerReply(s2c, request.op, ctx);
    if (replyPayload(request.op) === 'nar') {
      const nar = await collectNar(s2c);
      ex.replyNar = { sha256: createHash('sha256').update(nar).digest('hex'), size: nar.length };
    }
  }
  return { version, server, startup, exchanges, c2sLeft: await leftover(c2s), s2cLeft: await leftover(s2c) };
}

/** Decodes a serve session at message level. */
export async function decodeServe(c2sChunks: Uint8Array[], s2cChunks: Uint8Array[]): Promise<Decoded> {
  const c2s = new WireReader(c2sChunks);
  const s2c = new WireReader(s2cChunks);
  const { version, ctx } = await readServeHandshake(c2s, s2c);
  const exchanges: Exchange[] = [];
  while (!(await c2s.atEof())) {
    const request = await readServeRequest(c2s, ctx);
    const uploads: Exchange['uploads'] = [];
    if (serveRequestPayload(request.cmd) === 'nar' && request.cmd === 'AddToStoreNar') {
      uploads.push({ nar: await collectNar(c2s, request.args.narSize) });
    }
    const ex: Exchange = { request, uploads, stderr: [] };
    exchanges.push(ex);
    if (await s2c.atEof()) continue;
    ex.reply = await readServeReply(s2c, request.cmd, ctx);
    if (serveReplyPayload(request.cmd) === 'nar') {
      const nar = await collectNar(s2c);
      ex.replyNar = { sha256: createHash('sha256').update(nar).digest('hex'), size: nar.length };
    }
  }
  return { version, startup: [], exchanges, c2sLeft: await leftover(c2s), s2cLeft: await leftover(s2c) };
}

export interface ReplayResult {
  readonly recorded: Decoded;
  readonly ours: Decoded;
  /** The raw server output and its channel stderr (serve). */
  readonly s2c: Buffer;
  readonly stderrText: string;
  readonly logLines: Record<string, unknown>[];
  readonly sessionError?: unknown;
}

export interface ReplayOptions {
  readonly store: LocalStore;
  /** The key's permissions, given the decoded recorded session (default: all). */
  readonly permissions?: (recorded: Decoded) => readonly Permission[];
  /** Feed c2s in one write instead of the recorded chunks. */
  readonly allAtOnce?: boolean;
}

/** Runs the recorded client bytes of `session` through our session and decodes both sides. */
export async function replaySession(session: FixtureSession, o: ReplayOptions): Promise<ReplayResult> {
  const c2s = recordedChunks(session, 'c2s');
  const decode = session.transport === 'ssh' ? decodeServe : decodeWorker;
  const recorded = await decode(c2s, recordedChunks(session, 's2c'));
  const pair = channelPair();
  const { log, lines } = captureLog();
  const permissions = o.permissions?.(recorded) ?? ['read', 'write', 'build', 'admin'];
  const who = identity(permissions, session.id);
  const common = {
    store: o.store,
    who,
    log,
    maxNarSize: 1 << 30,
    trustedPublicKeys: [],
    sessionId: session.id,
  };
  const out: Buffer[] = [];
  const errText: Buffer[] = [];
  pair.fromServer.on('data', (c: Buffer) => out.push(c));
  pair.server.stderr.on('data', (c: Buffer) => errText.push(c));
  const running =
    session.transport === 'ssh'
      ? runServeSession(pair.server as unknown as ServerChannel, { ...common, write: true })
      : runWorkerSession(pair.server, common);
  if (o.allAtOnce === true) pair.toServer.write(Buffer.concat(c2s));
  else for (const c of c2s) pair.toServer.write(c);
  pair.toServer.end();
  let sessionError: unknown;
  await running.catch((err: unknown) => {
    sessionError = err;
  });
  const s2c = Buffer.concat(out);
  const ours = await decode(c2s, [s2c]);
  return {
    recorded,
    ours,
    s2c,
    stderrText: Buffer.concat(errText).toString('utf8'),
    logLines: lines,
    sessionError,
  };
}

/**
 * The comparable view of a decoded exchange: what must differ is dropped or zeroed
 * (registrationTime, `ultimate`, activities with their ids and timing, GC progress lines,
 * "hard linking" notes).
 */
export function comparable(d: Decoded): unknown[] {
  return d.exchanges.map((ex) => ({
    request: ex.request,
    stderr: ex.stderr.filter(keepStderr),
    reply: normalise(ex.reply),
    replyNar: ex.replyNar,
  }));
}

function keepStderr(m: StderrMessage): boolean {
  if (m.type === 'startActivity' || m.type === 'stopActivity' || m.type === 'result') return false;
  if (
    m.type === 'next' &&
    /^(finding garbage collector roots|deleting garbage|deleting unused links|note: currently hard linking saves|\d+ store paths deleted)/.test(
      m.text,
    )
  ) {
    return false;
  }
  return true;
}

function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, normalise(x)]));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'registrationTime') out[k] = 0;
      else if (k === 'ultimate') out[k] = false;
      else out[k] = normalise(x);
    }
    return out;
  }
  return v;
}
