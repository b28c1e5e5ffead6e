/**
 * Property tests of the message codecs: encode → decode round-trips at several worker
 * and serve versions (values generated from each layout's `shape`), and decoders fed
 * random or mutated bytes only ever throw NixFormatError. Each property has a time
 * budget; the seed is printed so a failure can be replayed (FC_SEED=…).
 */
import fc from 'fast-check';
import { NixFormatError } from '../../nix/errors.js';
import { WireBuilder } from '../../nix/wire/encode.js';
import { DEFAULT_WIRE_LIMITS } from '../../nix/wire/limits.js';
import { WireReader } from '../../nix/wire/reader.js';
import type { Codec, Ctx, Shape } from '../../nix/protocol/codec.js';
import {
  encodeWorkerRequest,
  readWorkerRequest,
  WorkerReplies,
  WorkerRequests,
  type WorkerRequest,
} from '../../nix/protocol/worker-ops.js';
import {
  ServeReplies,
  ServeRequests,
  encodeServeRequest,
  readServeRequest,
  type ServeRequest,
} from '../../nix/protocol/serve-ops.js';
import { type StderrMessage, encodeStderrMessage, readStderrMessage } from '../../nix/protocol/stderr.js';
import { ServePathInfo } from '../../nix/protocol/types.js';
import {
  encodeFeatures,
  encodeServeClientHello,
  encodeServeServerHello,
  encodeWorkerClientMagic,
  encodeWorkerClientOptions,
  encodeWorkerClientVersion,
  encodeWorkerServerHello,
  encodeWorkerServerInfo,
  negotiateVersion,
  readFeatures,
  readServeClientHello,
  readServeServerHello,
  readWorkerClientMagic,
  readWorkerClientOptions,
  readWorkerClientVersion,
  readWorkerServerHello,
  readWorkerServerInfo,
} from '../../nix/protocol/handshake.js';
import { Op, type OpName, Stderr } from '../../nix/protocol/worker.js';
import { type ServeCommandName } from '../../nix/protocol/serve.js';
import { protocolVersion } from '../../nix/protocol/versions.js';
import { listSessions, loadStream } from '../support/fixtures.js';

const SEED = process.env['FC_SEED'] !== undefined ? Number(process.env['FC_SEED']) : Date.now() ^ 0x5eed;

console.log(`fast-check seed: ${SEED} (replay with FC_SEED=${SEED})`);
const params = (ms: number, numRuns = 40): fc.Parameters<unknown> => ({
  seed: SEED,
  numRuns,
  interruptAfterTimeLimit: ms,
});

const WORKER_MINORS = [21, 25, 34, 35, 37, 38];
const SERVE_MINORS = [5, 6, 7];
const ctxAt = (minor: number): Ctx => ({ minor, limits: DEFAULT_WIRE_LIMITS });

const text = fc.string({ unit: 'grapheme', maxLength: 12 });

/** Values for a layout at a version, generated from its shape. */
function arbitrary(shape: Shape, minor: number): fc.Arbitrary<unknown> {
  switch (shape.kind) {
    case 'u64':
      return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    case 'int':
      return fc.bigInt({ min: 0n, max: BigInt(shape.max) }).map(Number);
    case 'bool':
      return fc.boolean();
    case 'str':
      return text;
    case 'list':
      return fc.array(arbitrary(shape.of, minor), { maxLength: 3 });
    case 'map':
      return fc
        .uniqueArray(fc.tuple(arbitrary(shape.key, minor), arbitrary(shape.value, minor)), {
          selector: (t) => t[0],
          maxLength: 3,
        })
        .map((entries) => new Map(entries));
    case 'struct':
      return fc.record(Object.fromEntries(shape.fields.map(([k, s]) => [k, arbitrary(s, minor)])));
    case 'since':
      return minor >= shape.minor ? arbitrary(shape.of, minor) : fc.constant(shape.absent);
    case 'byVersion':
      return arbitrary(minor >= shape.minor ? shape.newer : shape.older, minor);
    case 'optional':
      return fc.option(arbitrary(shape.of, minor), { nil: null });
    case 'atMinor':
      return arbitrary(shape.of, shape.minor);
    case 'custom':
      if (shape.name === 'servePathInfos') {
        return fc.array(
          fc
            .tuple(
              text.filter((p) => p !== ''),
              arbitrary(ServePathInfo.shape, minor),
            )
            .map(([path, info]) => ({ path, ...(info as object) })),
          { maxLength: 3 },
        );
      }
      if (shape.name === 'serveBuildPathsReply') {
        return fc
          .tuple(fc.nat(20), text)
          .map(([status, errorMsg]) => ({ status, errorMsg: status === 0 ? '' : errorMsg }));
      }
      throw new Error(`no arbitrary for custom codec ${shape.name}`);
  }
}

/** Bytes → random chunks, so round-trips also cross chunk boundaries. */
function chunked(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

const cutsArb = fc.array(fc.nat(4096), { maxLength: 4 });

async function roundTrip(codec: Codec<unknown>, minor: number, name: string): Promise<void> {
  const c = ctxAt(minor);
  await fc
    .assert(
      fc.asyncProperty(arbitrary(codec.shape, minor), cutsArb, async (value, cuts) => {
        const b = new WireBuilder();
        codec.write(b, value, c);
        const bytes = b.finish();
        const r = new WireReader(chunked(bytes, cuts));
        const back = await codec.read(r, c);
        expect(back).toEqual(value);
        expect(await r.atEof()).toBe(true);
      }),
      params(300, 25),
    )
    .catch((err: unknown) => {
      throw new Error(`${name} at minor ${minor}: ${String(err)}`);
    });
}

describe('round-trips of every worker op (request with opcode, and reply)', () => {
  const ops = Object.keys(WorkerRequests) as OpName[];
  it.each(WORKER_MINORS)('at 1.%i', async (minor) => {
    for (const op of ops) {
      const c = ctxAt(minor);
      const req = WorkerRequests[op] as Codec<unknown>;
      await fc.assert(
        fc.asyncProperty(arbitrary(req.shape, minor), cutsArb, async (args, cuts) => {
          const message = { op, args } as WorkerRequest;
          const bytes = encodeWorkerRequest(message, c);
          expect(bytes.subarray(0, 8)).toEqual(new WireBuilder().u64(Op[op]).finish());
          const r = new WireReader(chunked(bytes, cuts));
          expect(await readWorkerRequest(r, c)).toEqual(message);
          expect(await r.atEof()).toBe(true);
        }),
        params(300, 25),
      );
      await roundTrip(WorkerReplies[op], minor, `reply ${op}`);
    }
  });
});

describe('round-trips of every serve command and reply', () => {
  const cmds = Object.keys(ServeRequests) as ServeCommandName[];
  it.each(SERVE_MINORS)('at 2.%i', async (minor) => {
    for (const cmd of cmds) {
      const c = ctxAt(minor);
      await fc.assert(
        fc.asyncProperty(arbitrary((ServeRequests[cmd] as Codec<unknown>).shape, minor), async (args) => {
          const message = { cmd, args } as ServeRequest;
          const r = new WireReader([encodeServeRequest(message, c)]);
          expect(await readServeRequest(r, c)).toEqual(message);
          expect(await r.atEof()).toBe(true);
        }),
        params(300, 25),
      );
      await roundTrip(ServeReplies[cmd], minor, `serve reply ${cmd}`);
    }
  });
});

function stderrArb(minor: number): fc.Arbitrary<StderrMessage> {
  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  const fields = fc.array(fc.oneof(u64, text), { maxLength: 4 });
  const error =
    minor >= 26
      ? fc.record({
          type: fc.constant('error' as const),
          level: fc.nat(7),
          name: text,
          message: text,
          traces: fc.array(text, { maxLength: 2 }),
          exitStatus: fc.constant(1),
        })
      : fc.record({
          type: fc.constant('error' as const),
          level: fc.constant(0),
          name: fc.constant('Error'),
          message: text,
          traces: fc.constant<string[]>([]),
          exitStatus: fc.nat(255),
        });
  return fc.oneof(
    fc.record({ type: fc.constant('next' as const), text }),
    fc.record({ type: fc.constant('read' as const), maxLen: fc.nat() }),
    fc.record({ type: fc.constant('write' as const), data: fc.uint8Array({ maxLength: 20 }) }),
    fc.constant({ type: 'last' as const }),
    error,
    fc.record({
      type: fc.constant('startActivity' as const),
      id: u64,
      level: fc.nat(7),
      activityType: fc.nat(113),
      text,
      fields,
      parent: u64,
    }),
    fc.record({ type: fc.constant('stopActivity' as const), id: u64 }),
    fc.record({ type: fc.constant('result' as const), id: u64, resultType: fc.nat(109), fields }),
  );
}

describe('round-trips of stderr messages', () => {
  it.each(WORKER_MINORS)('at 1.%i', async (minor) => {
    const c = ctxAt(minor);
    await fc.assert(
      fc.asyncProperty(stderrArb(minor), cutsArb, async (m, cuts) => {
        const r = new WireReader(chunked(encodeStderrMessage(m, c), cuts));
        expect(await readStderrMessage(r, c)).toEqual(m);
        expect(await r.atEof()).toBe(true);
      }),
      params(1000, 200),
    );
  });

  it('sends activities to clients < 1.20 as plain log lines', () => {
    const c = ctxAt(19);
    const start: StderrMessage = {
      type: 'startActivity',
      id: 1n,
      level: 3,
      activityType: 105,
      text: 'building x',
      fields: [],
      parent: 0n,
    };
    expect(encodeStderrMessage(start, c)).toEqual(
      encodeStderrMessage({ type: 'next', text: 'building x...' }, c),
    );
    expect(encodeStderrMessage({ type: 'stopActivity', id: 1n }, c)).toHaveLength(0);
  });
});

describe('handshakes', () => {
  it.each(WORKER_MINORS)('worker at 1.%i', async (minor) => {
    const v = protocolVersion(1, minor);
    const c2s = Buffer.concat([
      encodeWorkerClientMagic(),
      encodeWorkerClientVersion(v),
      ...(minor >= 38 ? [encodeFeatures(['a', 'b'])] : []),
      encodeWorkerClientOptions(minor, { cpuAffinity: minor >= 14 ? 3 : null, reserveSpace: false }),
    ]);
    const s2c = Buffer.concat([
      encodeWorkerServerHello(protocolVersion(1, 38)),
      ...(minor >= 38 ? [encodeFeatures([])] : []),
      encodeWorkerServerInfo(minor, { daemonVersion: '2.8.0', trusted: 1 }),
    ]);
    const cr = new WireReader([c2s]);
    const sr = new WireReader([s2c]);
    await readWorkerClientMagic(cr);
    const server = await readWorkerServerHello(sr);
    const client = await readWorkerClientVersion(cr);
    expect(negotiateVersion(client, server, 21)).toBe(v);
    if (minor >= 38) {
      expect(await readFeatures(cr)).toEqual(['a', 'b']);
      expect(await readFeatures(sr)).toEqual([]);
    }
    expect(await readWorkerClientOptions(cr, minor)).toEqual({ cpuAffinity: 3, reserveSpace: false });
    expect(await readWorkerServerInfo(sr, minor)).toEqual({
      daemonVersion: minor >= 33 ? '2.8.0' : null,
      trusted: minor >= 35 ? 1 : null,
    });
    expect(await cr.atEof()).toBe(true);
    expect(await sr.atEof()).toBe(true);
  });

  it('serve', async () => {
    expect(await readServeClientHello(new WireReader([encodeServeClientHello(0x207)]))).toBe(0x207);
    expect(await readServeServerHello(new WireReader([encodeServeServerHello(0x207)]))).toBe(0x207);
  });

  it('rejects a bad magic and unsupported versions', async () => {
    await expect(
      readWorkerClientMagic(new WireReader([encodeServeClientHello(0x207)])),
    ).rejects.toMatchObject({
      code: 'ERR_NIX_PROTO_BAD_MAGIC',
    });
    expect(() => negotiateVersion(0x114, 0x126, 21)).toThrow(NixFormatError);
    expect(() => negotiateVersion(0x207, 0x126, 21)).toThrow(NixFormatError);
  });
});

/** Only NixFormatError may escape a decoder fed arbitrary bytes. */
async function onlyFormatErrors(
  decode: (r: WireReader) => Promise<unknown>,
  bytes: Uint8Array,
): Promise<void> {
  try {
    await decode(new WireReader([bytes], { maxString: 1 << 16, maxListCount: 1 << 12 }));
  } catch (err) {
    if (!(err instanceof NixFormatError)) throw err;
  }
}

/** Real request streams (after the handshake) to mutate. */
function fixtureRequests(): { worker: Uint8Array[]; serve: Uint8Array[] } {
  const worker: Uint8Array[] = [];
  const serve: Uint8Array[] = [];
  for (const s of listSessions()) {
    const c2s = loadStream(s, 'c2s');
    if (c2s.length > 200_000) continue;
    if (s.transport === 'ssh') serve.push(c2s.subarray(16));
    else worker.push(c2s.subarray(32));
  }
  return { worker, serve };
}

describe('decoders given random or mutated bytes throw only NixFormatError', () => {
  const { worker, serve } = fixtureRequests();
  const opcodes = Object.values(Op);
  const mutated = (pool: Uint8Array[]): fc.Arbitrary<Uint8Array> =>
    fc
      .tuple(
        fc.constantFrom(...pool),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
        fc.nat(),
      )
      .map(([base, flips, cut]) => {
        const b = Uint8Array.from(base.subarray(0, Math.min(base.length, 4096)));
        for (const [at, v] of flips) b[at % b.length] = v;
        return b.subarray(0, cut % (b.length + 1));
      });
  const withOpcode = fc
    .tuple(fc.constantFrom(...opcodes), fc.uint8Array({ maxLength: 256 }))
    .map(([op, rest]) => Buffer.concat([new WireBuilder().u64(op).finish(), rest]));

  it.each([21, 25, 34, 38])('worker requests at 1.%i', async (minor) => {
    const c = ctxAt(minor);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 256 }), withOpcode, mutated(worker)), (bytes) =>
        onlyFormatErrors(async (r) => {
          while (!(await r.atEof())) await readWorkerRequest(r, c);
        }, bytes),
      ),
      params(1500, 2000),
    );
  });

  it('serve requests at 2.7', async () => {
    const c = ctxAt(7);
    const withCmd = fc
      .tuple(fc.integer({ min: 0, max: 10 }), fc.uint8Array({ maxLength: 256 }))
      .map(([cmd, rest]) => Buffer.concat([new WireBuilder().u64(cmd).finish(), rest]));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 256 }), withCmd, mutated(serve)), (bytes) =>
        onlyFormatErrors((r) => readServeRequest(r, c), bytes),
      ),
      params(1000, 1000),
    );
  });

  it('stderr messages at 1.34', async () => {
    const c = ctxAt(34);
    const codes = Object.values(Stderr);
    const withCode = fc
      .tuple(fc.constantFrom(...codes), fc.uint8Array({ maxLength: 128 }))
      .map(([code, rest]) => Buffer.concat([new WireBuilder().u64(code).finish(), rest]));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 128 }), withCode), (bytes) =>
        onlyFormatErrors((r) => readStderrMessage(r, c), bytes),
      ),
      params(1000, 1000),
    );
  });
});
