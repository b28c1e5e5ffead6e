/**
 * Decodes every recorded Nix 2.8 session (both directions, message level) with 0 bytes
 * left over, and checks the op sequence against SUMMARY.txt. Each direction is fed to
 * the reader in the chunks the recorder saw (chunks.tsv), so real read boundaries are
 * exercised.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WireReader } from '../../nix/wire/reader.js';
import {
  leftover,
  readServeHandshake,
  readStderrUntilEnd,
  readWorkerHandshake,
} from '../support/recorded-handshake.js';
import { readFramed } from '../../nix/wire/framed.js';
import { DEFAULT_WIRE_LIMITS } from '../../nix/wire/limits.js';
import type { Ctx } from '../../nix/protocol/codec.js';
import type { StderrMessage } from '../../nix/protocol/stderr.js';
import type { WorkerServerInfo } from '../../nix/protocol/handshake.js';
import {
  type WorkerRequest,
  readWorkerReply,
  readWorkerRequest,
  replyPayload,
  requestPayload,
} from '../../nix/protocol/worker-ops.js';
import {
  type ServeRequest,
  readServeReply,
  readServeRequest,
  serveReplyPayload,
  serveRequestPayload,
} from '../../nix/protocol/serve-ops.js';
import { readNarFromWire, skipNarFromWire } from '../../nix/protocol/nar-stream.js';
import { ValidPathInfo116 } from '../../nix/protocol/types.js';
import {
  encodeExportEnd,
  encodeExportEntryEnd,
  encodeExportEntryStart,
  readExportEntry,
} from '../../nix/protocol/export.js';
import { Op } from '../../nix/protocol/worker.js';
import { ServeCommand } from '../../nix/protocol/serve.js';
import { type FixtureSession, listSessions, loadStream, loadSummary } from '../support/fixtures.js';

/** The stream split as the recorder read it. */
function chunksOf(session: FixtureSession, dir: 'c2s' | 's2c'): Uint8Array[] {
  const data = loadStream(session, dir);
  const tag = dir === 'c2s' ? 'C' : 'S';
  const out: Uint8Array[] = [];
  for (const line of readFileSync(join(session.dir, 'chunks.tsv'), 'utf8').split('\n')) {
    const cols = line.split('\t');
    if (cols[2] !== tag) continue;
    const off = Number(cols[3]);
    out.push(data.subarray(off, off + Number(cols[4])));
  }
  const total = out.reduce((n, c) => n + c.length, 0);
  expect(total).toBe(data.length);
  return out;
}

interface Exchange {
  request: WorkerRequest | ServeRequest;
  payload?: { kind: string; bytes: number; entries?: number };
  stderr: StderrMessage[];
  reply?: unknown;
  replyNarSize?: number;
}

interface Decoded {
  version: number;
  server?: WorkerServerInfo;
  startup: StderrMessage[];
  exchanges: Exchange[];
  c2sLeft: number;
  s2cLeft: number;
}

/** Consumes the payload that follows a worker request on c2s. */
async function readWorkerPayload(
  c2s: WireReader,
  req: WorkerRequest,
  ctx: Ctx,
): Promise<Exchange['payload']> {
  const kind = requestPayload(req.op, ctx.minor);
  if (kind === 'none') return undefined;
  if (kind !== 'framed') throw new Error(`payload ${kind} not expected at 1.${ctx.minor}`);
  const framed = readFramed(c2s);
  const inner = new WireReader(framed);
  let entries: number | undefined;
  if (req.op === 'AddMultipleToStore') {
    const count = await inner.readInt();
    for (let i = 0; i < count; i++) {
      const info = await ValidPathInfo116.read(inner, ctx);
      const size = await skipNarFromWire(inner);
      expect(size).toBe(info.narSize);
    }
    entries = count;
  } else if (req.op === 'AddToStoreNar') {
    const size = await skipNarFromWire(inner);
    expect(size).toBe(req.args.narSize);
  } else if (req.op === 'AddToStore' && 'camStr' in req.args && req.args.camStr.startsWith('fixed:r:')) {
    await skipNarFromWire(inner);
  } else {
    await framed.drain();
  }
  expect(await inner.atEof()).toBe(true);
  expect(framed.done).toBe(true);
  return { kind, bytes: framed.payloadBytes, entries };
}

async function decodeWorker(session: FixtureSession): Promise<Decoded> {
  const c2s = new WireReader(chunksOf(session, 'c2s'));
  const s2c = new WireReader(chunksOf(session, 's2c'));
  const { version, ctx, server, startup } = await readWorkerHandshake(c2s, s2c);
  const exchanges: Exchange[] = [];
  while (!(await c2s.atEof())) {
    const request = await readWorkerRequest(c2s, ctx);
    const ex: Exchange = { request, stderr: [] };
    exchanges.push(ex);
    ex.payload = await readWorkerPayload(c2s, request, ctx);
    if (await s2c.atEof()) continue; // the session ended early (after an error)
    ex.stderr = await readStderrUntilEnd(s2c, ctx);
    if (ex.stderr.at(-1)?.type !== 'last') continue;
    ex.reply = await readWorkerReply(s2c, request.op, ctx);
    if (replyPayload(request.op) === 'nar') ex.replyNarSize = await skipNarFromWire(s2c);
  }
  return { version, server, startup, exchanges, c2sLeft: await leftover(c2s), s2cLeft: await leftover(s2c) };
}

async function decodeServe(session: FixtureSession): Promise<Decoded> {
  const c2s = new WireReader(chunksOf(session, 'c2s'));
  const s2c = new WireReader(chunksOf(session, 's2c'));
  const { version, ctx } = await readServeHandshake(c2s, s2c);
  const exchanges: Exchange[] = [];
  while (!(await c2s.atEof())) {
    const request = await readServeRequest(c2s, ctx);
    const ex: Exchange = { request, stderr: [] };
    exchanges.push(ex);
    const kind = serveRequestPayload(request.cmd);
    if (kind === 'nar' && request.cmd === 'AddToStoreNar') {
      const bytes = await skipNarFromWire(c2s, { expectedSize: request.args.narSize });
      ex.payload = { kind, bytes };
    } else if (kind !== 'none') {
      throw new Error(`payload ${kind} not expected`);
    }
    if (await s2c.atEof()) continue;
    ex.reply = await readServeReply(s2c, request.cmd, ctx);
    if (serveReplyPayload(request.cmd) === 'nar') ex.replyNarSize = await skipNarFromWire(s2c);
  }
  return { version, startup: [], exchanges, c2sLeft: await leftover(c2s), s2cLeft: await leftover(s2c) };
}

const sessions = listSessions();
const summary = loadSummary();
const decodedById = new Map<string, Decoded>();

async function decoded(session: FixtureSession): Promise<Decoded> {
  let d = decodedById.get(session.id);
  if (d === undefined) {
    d = session.transport === 'ssh' ? await decodeServe(session) : await decodeWorker(session);
    decodedById.set(session.id, d);
  }
  return d;
}

function byId(id: string): FixtureSession {
  const s = sessions.find((x) => x.id === id);
  if (s === undefined) throw new Error(`no fixture session ${id}`);
  return s;
}

describe('recorded Nix 2.8 sessions', () => {
  it('finds every session listed in SUMMARY.txt', () => {
    expect(sessions.length).toBeGreaterThanOrEqual(70);
    expect(sessions.map((s) => s.id).sort()).toEqual([...summary.keys()].sort());
  });

  it.each(sessions.map((s) => [s.id, s] as const))('%s decodes completely', async (_id, session) => {
    const d = await decoded(session);
    expect(d.c2sLeft).toBe(0);
    expect(d.s2cLeft).toBe(0);
    expect(d.version).toBe(session.transport === 'ssh' ? 0x207 : 0x122);

    const expected = summary.get(session.id);
    expect(expected).toBeDefined();
    const ops = d.exchanges.map((e) =>
      'op' in e.request
        ? { name: e.request.op, code: Op[e.request.op] }
        : { name: e.request.cmd, code: ServeCommand[e.request.cmd] },
    );
    expect(ops).toEqual(expected?.ops);
    const sawError = d.exchanges.some((e) => e.stderr.some((m) => m.type === 'error'));
    expect(sawError).toBe(expected?.stderrError);
    if (session.transport !== 'ssh') expect(d.startup).toEqual([{ type: 'last' }]);
  });
});

describe('decoded values match decoded.txt', () => {
  it('store-ping: daemon version 2.8.0, no trusted flag at 1.34', async () => {
    const d = await decoded(byId('store-ping/01-ping-ssh-ng'));
    expect(d.server).toEqual({ daemonVersion: '2.8.0', trusted: null });
    expect(d.exchanges).toEqual([]);
  });

  it('misc-ops/12: AddToStore fixed:r:sha256 and its ValidPathInfo reply', async () => {
    const d = await decoded(byId('misc-ops/12-add-path-ssh-ng'));
    const ex = d.exchanges[0];
    expect(ex?.request).toEqual({
      op: 'AddToStore',
      args: { name: 'file.txt', camStr: 'fixed:r:sha256', references: [], repair: false },
    });
    expect(ex?.payload).toEqual({ kind: 'framed', bytes: 136, entries: undefined });
    expect(ex?.reply).toEqual({
      path: '/nix/store/acby209j93nknjrv1qj6lz4qd8n7j76s-file.txt',
      deriver: '',
      narHash: '2803458022f0a1cd073b6791cf8516281c64697cdce51dcf4121528337e49c4f',
      references: [],
      registrationTime: 1795625105,
      narSize: 136,
      ultimate: false,
      sigs: [],
      ca: 'fixed:r:sha256:0kwwwhvq6li1877ivrfwgiln87182s2wz4b77c3wv8gh4a04a0r8',
    });
  });

  it('copy-to/01: structured STDERR_ERROR about the missing signature', async () => {
    const d = await decoded(byId('copy-to/01-copy-to-sigs-required-ssh-ng'));
    const err = d.exchanges[1]?.stderr.at(-1);
    expect(err).toMatchObject({ type: 'error', level: 0, name: 'Error', traces: [] });
    expect(err?.type === 'error' && err.message).toBe(
      "cannot add path '\u001b[35;1m/nix/store/kyzx1azq9qniymki9z4br0vrrf0w1s51-dep-a\u001b[0m' because it lacks a valid signature",
    );
  });

  it('build-dag/01: BuildPathsWithResults reply with a realisation', async () => {
    const d = await decoded(byId('build-dag/01-build-ssh-ng'));
    const ex = d.exchanges[2];
    expect(ex?.request).toMatchObject({ op: 'BuildPathsWithResults' });
    const reply = ex?.reply as {
      path: string;
      result: { status: number; builtOutputs: Map<string, string> };
    }[];
    expect(reply).toHaveLength(1);
    expect(reply[0]?.path).toMatch(/-top\.drv!out$/);
    expect(reply[0]?.result.status).toBe(0);
    const [id, json] = [...(reply[0]?.result.builtOutputs ?? new Map<string, string>())][0] ?? [];
    expect(id).toMatch(/^sha256:8ec59f0d[0-9a-f]{56}!out$/);
    expect(JSON.parse(json ?? '{}')).toMatchObject({ id, signatures: [] });
    // build logs travel as resBuildLogLine results inside actBuild activities
    expect(ex?.stderr.some((m) => m.type === 'startActivity' && m.activityType === 105)).toBe(true);
    expect(ex?.stderr.some((m) => m.type === 'result' && m.resultType === 101)).toBe(true);
  });

  it('legacy-ssh-builder/01: serve AddToStoreNar with its raw NAR, BuildDerivation', async () => {
    const d = await decoded(byId('legacy-ssh-builder/01-nix-build-builders-ssh-ssh'));
    const add = d.exchanges[1];
    expect(add?.request).toMatchObject({
      cmd: 'AddToStoreNar',
      args: { path: '/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox', narSize: 1982736 },
    });
    expect(add?.payload?.bytes).toBe(1982736);
    expect(add?.reply).toBe(1);
    const build = d.exchanges[2];
    expect(build?.request).toMatchObject({
      cmd: 'BuildDerivation',
      args: {
        drvPath: '/nix/store/hy490m02f98xcq3h6z3w55mxllmj06lf-dep-a.drv',
        options: { maxSilentTime: 0, buildTimeout: 0, enforceDeterminism: true, keepFailed: false },
      },
    });
    expect(build?.reply).toMatchObject({ status: 0, timesBuilt: 1 });
  });

  it('unix-socket-daemon/01: SetOptions with the overrides map', async () => {
    const d = await decoded(byId('unix-socket-daemon/01-ping-unix'));
    const req = d.exchanges[0]?.request;
    expect(
      req !== undefined && 'op' in req && req.op === 'SetOptions' && [...req.args.overrides.keys()],
    ).toContain('substituters');
  });

  it('misc-ops/10: NarFromPath reply is a raw NAR after STDERR_LAST', async () => {
    const d = await decoded(byId('misc-ops/10-store-ls-ssh-ng'));
    const ex = d.exchanges[1];
    expect(ex?.request).toMatchObject({ op: 'NarFromPath' });
    expect(ex?.replyNarSize).toBeGreaterThan(0);
  });
});

describe('readNarFromWire', () => {
  it('yields the NAR bytes exactly and leaves the following bytes unread', async () => {
    const d = loadStream(byId('misc-ops/12-add-path-ssh-ng'), 'c2s');
    // the AddToStore framed payload is one frame of 136 bytes starting after the request
    const start = d.indexOf(Buffer.from('nix-archive-1')) - 8;
    const nar = d.subarray(start, start + 136);
    const tail = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    for (let cut = 1; cut < nar.length; cut += 7) {
      const r = new WireReader([nar.subarray(0, cut), Buffer.concat([nar.subarray(cut), tail])]);
      const pieces: Uint8Array[] = [];
      const it = readNarFromWire(r, { maxChunk: 16 });
      let res = await it.next();
      while (res.done !== true) {
        pieces.push(Buffer.from(res.value));
        res = await it.next();
      }
      expect(res.value.size).toBe(136);
      expect(Buffer.concat(pieces)).toEqual(nar);
      expect(r.offset).toBe(136);
      expect(await r.readU64()).toBe(0x0807060504030201n);
      expect(await r.atEof()).toBe(true);
    }
  });
});

describe('export format', () => {
  it('reads entries whose NAR comes before the metadata, at every split', async () => {
    const d = loadStream(byId('misc-ops/12-add-path-ssh-ng'), 'c2s');
    const start = d.indexOf(Buffer.from('nix-archive-1')) - 8;
    const nar = d.subarray(start, start + 136);
    const ctx: Ctx = { minor: 7, limits: DEFAULT_WIRE_LIMITS };
    const entry = {
      path: '/nix/store/acby209j93nknjrv1qj6lz4qd8n7j76s-file.txt',
      references: ['/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x'],
      deriver: '',
      signature: null,
    };
    const stream = Buffer.concat([
      encodeExportEntryStart(),
      nar,
      encodeExportEntryEnd(entry, ctx),
      encodeExportEntryStart(),
      nar,
      encodeExportEntryEnd({ ...entry, signature: 'sig' }, ctx),
      encodeExportEnd(),
    ]);
    for (let cut = 0; cut <= stream.length; cut += 3) {
      const r = new WireReader([stream.subarray(0, cut), stream.subarray(cut)]);
      const got: Buffer[] = [];
      const first = await readExportEntry(r, ctx, (c) => void got.push(Buffer.from(c)));
      expect(first).toEqual({ ...entry, narSize: 136 });
      expect(Buffer.concat(got)).toEqual(nar);
      expect(await readExportEntry(r, ctx)).toEqual({ ...entry, signature: 'sig', narSize: 136 });
      expect(await readExportEntry(r, ctx)).toBeNull();
      expect(await r.atEof()).toBe(true);
    }
  });
});
