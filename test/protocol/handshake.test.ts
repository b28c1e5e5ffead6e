/**
 * The worker handshake and the ops whose layout differs by version, at the client minor
 * versions real Nix releases speak (reference §0, §3, §7), written from the upstream
 * layout with the nix/protocol encoders: 1.21 (Nix 2.1–2.3), 1.32 (2.4–2.6), 1.34 (2.8),
 * 1.35 (2.18, Lix), 1.37 (2.20–2.23), 1.38 (2.24+).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { narOfBytes } from '../../nix/nar/writer.js';
import { BuildStatus, TrustedFlag } from '../../nix/protocol/worker.js';
import { encodeWorkerClientMagic, encodeWorkerClientVersion } from '../../nix/protocol/handshake.js';
import { readStderrMessage } from '../../nix/protocol/stderr.js';
import { readWorkerServerHello } from '../../nix/protocol/handshake.js';
import { DEFAULT_WIRE_LIMITS } from '../../nix/wire/limits.js';
import { WireBuilder } from '../../nix/wire/encode.js';
import { LocalStore } from '../../store/local-store.js';
import { addToStoreNarArgs, caFile, WorkerClient } from '../support/worker-client.js';

let dataDir: string;
let store: LocalStore;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'nixyard-hs-'));
  store = await LocalStore.open({ dataDir });
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const MINORS = [21, 32, 34, 35, 37, 38] as const;

describe.each(MINORS)('client 1.%i', (minor) => {
  it.each([
    ['admin', ['admin'] as const, TrustedFlag.Trusted],
    ['read,write,build', ['read', 'write', 'build'] as const, TrustedFlag.NotTrusted],
  ])('handshake with an %s key', async (_k, permissions, trusted) => {
    const c = new WorkerClient({ store, permissions });
    const h = await c.handshake(minor);
    expect(h.serverVersion).toBe(0x126);
    expect(h.minor).toBe(minor);
    expect(h.daemonVersion).toBe(minor >= 33 ? 'nixyard-0.1.0' : null);
    expect(h.trusted).toBe(minor >= 35 ? trusted : null);
    expect(h.serverFeatures).toEqual(minor >= 38 ? [] : null);
    expect(h.startup).toEqual([{ type: 'last' }]);
    await c.close();
    expect(await c.rest()).toHaveLength(0);
  });

  it('QueryPathInfo, QueryValidPaths, AddToStore, AddToStoreNar, BuildPathsWithResults, errors', async () => {
    const c = new WorkerClient({ store, permissions: ['read', 'write', 'build'] });
    await c.handshake(minor);
    const hello = caFile('hello.txt', 'hello\n');

    // AddToStoreNar: 1.21–1.22 pulls the NAR with STDERR_READ, ≥1.23 framed.
    const nar =
      minor >= 23
        ? await c.op('AddToStoreNar', addToStoreNarArgs(hello), { framed: [hello.nar] })
        : await c.op('AddToStoreNar', addToStoreNarArgs(hello), { stderrRead: hello.nar });
    expect(nar.error).toBeUndefined();
    expect(nar.stderr.some((m) => m.type === 'read')).toBe(minor < 23);
    expect(await store.isValid(hello.path)).toBe(true);

    // QueryValidPaths: the substitute flag exists from 1.27.
    const args =
      minor >= 27
        ? { paths: [hello.path, '/nix/store/00000000000000000000000000000000-x'], substitute: true }
        : { paths: [hello.path, '/nix/store/00000000000000000000000000000000-x'], substitute: false };
    expect((await c.op('QueryValidPaths', args)).reply).toEqual([hello.path]);

    // QueryPathInfo: valid flag + UnkeyedValidPathInfo with ultimate/sigs/ca.
    const qpi = await c.op('QueryPathInfo', { path: hello.path });
    expect(qpi.reply).toMatchObject({
      narHash: hello.narHash,
      narSize: hello.narSize,
      ca: hello.ca,
      sigs: [],
      references: [],
    });
    expect(
      (await c.op('QueryPathInfo', { path: '/nix/store/00000000000000000000000000000000-x' })).reply,
    ).toBeNull();

    // AddToStore: old form (<1.25, unframed NAR, reply = path) or new (framed, reply = ValidPathInfo).
    if (minor >= 25) {
      const r = await c.op(
        'AddToStore',
        { name: 'hello.txt', camStr: 'fixed:sha256', references: [], repair: false },
        { framed: [Buffer.from('hello\n')] },
      );
      expect(r.reply).toMatchObject({ path: hello.path, ca: hello.ca, narSize: hello.narSize });
    } else {
      const r = await c.op(
        'AddToStore',
        { name: 'hello.txt', fixed: true, recursive: false, hashAlgo: 'sha256' },
        { raw: narOfBytes(Buffer.from('hello\n')) },
      );
      expect(r.reply).toBe(hello.path);
    }

    // BuildPathsWithResults (≥1.34) on an opaque valid path: AlreadyValid, fields by version.
    const b = await c.op('BuildPathsWithResults', { paths: [hello.path], buildMode: 0 });
    if (minor >= 34) {
      expect(b.error).toBeUndefined();
      expect(b.reply).toEqual([
        {
          path: hello.path,
          result: {
            status: BuildStatus.AlreadyValid,
            errorMsg: '',
            timesBuilt: 0,
            isNonDeterministic: false,
            startTime: 0,
            stopTime: 0,
            cpuUser: null, // written as tag 0 at ≥1.37, absent before
            cpuSystem: null,
            builtOutputs: new Map(),
          },
        },
      ]);
    } else {
      expect(b.error?.message).toMatch(/invalid operation BuildPathsWithResults for protocol 1\.\d+/);
    }

    // STDERR_ERROR: <1.26 message + exit status, ≥1.26 structured Error.
    const e = await c.op('NarFromPath', { path: '/nix/store/00000000000000000000000000000000-x' });
    expect(e.error).toMatchObject({ type: 'error', exitStatus: 1, traces: [] });
    expect(e.error?.message).toContain('is not valid');
    // the session is still usable
    expect((await c.op('IsValidPath', { path: hello.path })).reply).toBe(true);
    await c.close();
    expect(await readdir(store.layout.stagingDir)).toEqual([]);
  });
});

it('a 2.23+ client sending MAGIC_1 and its version in one write', async () => {
  for (const minor of [37, 38]) {
    const c = new WorkerClient({ store });
    const h = await c.handshake(minor, { oneWrite: true });
    expect(h).toMatchObject({ minor, startup: [{ type: 'last' }] });
    expect((await c.op('QueryValidPaths', { paths: [], substitute: false })).reply).toEqual([]);
    await c.close();
  }
});

it('a 1.38 client offering features gets none back', async () => {
  const c = new WorkerClient({ store });
  const h = await c.handshake(38, { features: ['realisation-with-path-not-hash', 'disable-set-options'] });
  expect(h.serverFeatures).toEqual([]);
  await c.close();
});

it.each([20, 17, 10])('a client at 1.%i is refused with an old-format STDERR_ERROR', async (minor) => {
  const c = new WorkerClient({ store });
  c.write(encodeWorkerClientMagic());
  expect(await readWorkerServerHello(c.reader)).toBe(0x126);
  c.write(encodeWorkerClientVersion(0x100 | minor));
  // what such a client sends next: cpu affinity (≥1.14), reserveSpace (≥1.11)
  c.write(Buffer.alloc((minor >= 14 ? 8 : 0) + (minor >= 11 ? 8 : 0)));
  const m = await readStderrMessage(c.reader, { minor, limits: DEFAULT_WIRE_LIMITS });
  expect(m).toMatchObject({ type: 'error', exitStatus: 1 });
  expect(m.type === 'error' && m.message).toMatch(
    /cannot serve this client: unsupported protocol version 1\.\d+/,
  );
  await c.session;
  expect(await c.rest()).toHaveLength(0);
  expect(c.logLines.some((l) => l.msg === 'refused an unsupported client version')).toBe(true);
});

it.each([34, 37])('BuildResult bytes at 1.%i match the upstream layout', async (minor) => {
  const c = new WorkerClient({ store });
  await c.handshake(minor);
  const hello = caFile('hello.txt', 'hello\n');
  await c.op('AddToStoreNar', addToStoreNarArgs(hello), { framed: [hello.nar] });
  c.write(
    new WireBuilder()
      .u64(46) // wopBuildPathsWithResults
      .strings([hello.path])
      .u64(0) // bmNormal
      .finish(),
  );
  const expected = new WireBuilder()
    .u64(0x616c7473) // STDERR_LAST
    .u64(1)
    .string(hello.path)
    .u64(2) // AlreadyValid
    .string('')
    .u64(0) // timesBuilt
    .u64(0) // isNonDeterministic
    .u64(0) // startTime
    .u64(0); // stopTime
  if (minor >= 37) expected.u64(0).u64(0); // cpuUser, cpuSystem: absent
  expected.u64(0); // builtOutputs
  const want = Buffer.from(expected.finish());
  expect(Buffer.from(await c.reader.readExact(want.length))).toEqual(want);
  await c.close();
  expect(await c.rest()).toHaveLength(0);
});
