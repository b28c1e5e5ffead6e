/**
 * Bad input at the protocol level: every case ends in a clear log line (and a Nix error
 * where the client is still there), never a crash, a hang or a registered path; staging
 * is empty afterwards, and a session whose stream is still in sync goes on.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { narOfBytes } from '../../nix/nar/writer.js';
import { encodeWorkerRequest } from '../../nix/protocol/worker-ops.js';
import { WireBuilder } from '../../nix/wire/encode.js';
import { LocalStore } from '../../store/local-store.js';
import {
  addToStoreNarArgs,
  caFile,
  inputAddressed,
  multiplePayload,
  WorkerClient,
} from '../support/worker-client.js';

let dataDir: string;
let store: LocalStore;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'nixyard-bad-'));
  store = await LocalStore.open({ dataDir });
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const hello = caFile('hello.txt', 'hello\n');
const other = caFile('other.txt', 'other\n');
const missing = '/nix/store/00000000000000000000000000000000-x';

async function nothingLeft(...paths: string[]): Promise<void> {
  for (const p of paths) expect(await store.isValid(p)).toBe(false);
  expect(await readdir(store.layout.stagingDir)).toEqual([]);
}

/** The session ended (no hang), without throwing, and logged `msg`. */
async function endedWith(c: WorkerClient, msg: RegExp): Promise<void> {
  expect(await c.outcome).toEqual({ ok: true });
  await c.rest();
  expect(c.logLines.map((l) => String(l.msg))).toEqual(expect.arrayContaining([expect.stringMatching(msg)]));
}

async function ready(
  minor = 38,
  permissions?: ('read' | 'write' | 'build' | 'admin')[],
): Promise<WorkerClient> {
  const c = new WorkerClient({ store, permissions });
  await c.handshake(minor);
  return c;
}

async function stillUsable(c: WorkerClient): Promise<void> {
  expect((await c.op('QueryValidPaths', { paths: [missing], substitute: false })).reply).toEqual([]);
}

it('wrong magic: the session ends with a log line', async () => {
  const c = new WorkerClient({ store });
  c.write(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n\0\0\0'));
  await endedWith(c, /handshake failed/);
  const line = c.logLines.find((l) => l.msg === 'handshake failed');
  expect(String(line?.err)).toMatch(/bad WORKER_MAGIC_1/);
});

it('unknown op number after the handshake: error, then the session closes', async () => {
  const c = await ready();
  c.write(new WireBuilder().u64(24).u64(0).finish()); // wopQueryFailedPaths, removed
  const [m] = await c.readStderr();
  expect(m).toMatchObject({ type: 'error' });
  expect(m?.type === 'error' && m.message).toMatch(/unknown worker op 24/);
  await endedWith(c, /cannot read the request; closing the session/);
});

it('stream truncated in the middle of a request', async () => {
  const c = await ready();
  const req = encodeWorkerRequest({ op: 'QueryPathInfo', args: { path: hello.path } }, c.ctx);
  c.write(req.subarray(0, req.length - 5));
  c.pair.toServer.end();
  await endedWith(c, /cannot read the request; closing the session/);
});

it('stream truncated in the middle of a framed upload: nothing registered, staging empty', async () => {
  const c = await ready();
  c.write(encodeWorkerRequest({ op: 'AddToStoreNar', args: addToStoreNarArgs(hello) }, c.ctx));
  c.write(new WireBuilder().u64(hello.narSize).raw(hello.nar.subarray(0, 40)).finish());
  c.pair.toServer.end();
  await endedWith(c, /op failed/);
  await nothingLeft(hello.path);
});

it('a frame longer than the limit: error without allocating, session closes', async () => {
  const c = await ready();
  c.write(encodeWorkerRequest({ op: 'AddToStoreNar', args: addToStoreNarArgs(hello) }, c.ctx));
  c.write(new WireBuilder().u64(2n ** 62n).finish());
  const stderr = await c.readStderr();
  const last = stderr.at(-1);
  expect(last?.type).toBe('error');
  expect(last?.type === 'error' && last.message).toMatch(/exceeds the limit/);
  await endedWith(c, /op failed/);
  await nothingLeft(hello.path);
});

it('a 2^62 string length in a request: error without allocating, session closes', async () => {
  const c = await ready();
  c.write(
    new WireBuilder()
      .u64(26)
      .u64(2n ** 62n)
      .finish(),
  );
  const [m] = await c.readStderr();
  expect(m?.type === 'error' && m.message).toMatch(/length 4611686018427387904 exceeds the limit/);
  await endedWith(c, /cannot read the request/);
});

describe.each([
  ['NAR hash mismatch', { narHash: other.narHash }, /hash/i],
  ['NAR size mismatch (declared larger)', { narSize: hello.narSize + 8 }, /size/i],
  ['NAR size mismatch (declared smaller)', { narSize: hello.narSize - 8 }, /size/i],
  ['content-address mismatch', { ca: other.ca }, /content address|ca/i],
])('%s', (_name, bad, pattern) => {
  it('in AddToStoreNar: error names the path, nothing registered, session goes on', async () => {
    const c = await ready();
    const r = await c.op('AddToStoreNar', addToStoreNarArgs(hello, bad), { framed: [hello.nar] });
    expect(r.error?.message).toMatch(pattern);
    expect(r.error?.message).toContain(hello.path);
    await nothingLeft(hello.path);
    await stillUsable(c);
    await c.close();
  });

  it('in AddMultipleToStore: error names the path, nothing registered, session goes on', async () => {
    const c = await ready();
    const payload = multiplePayload([{ upload: other }, { upload: hello, ...bad }]);
    const r = await c.op(
      'AddMultipleToStore',
      { repair: false, dontCheckSigs: false },
      { framed: [payload] },
    );
    expect(r.error?.message).toMatch(pattern);
    expect(r.error?.message).toContain(hello.path);
    await nothingLeft(hello.path);
    await stillUsable(c);
    await c.close();
  });
});

it('a client that vanishes mid-upload: session ends, staging cleaned, nothing registered', async () => {
  const c = await ready();
  c.write(encodeWorkerRequest({ op: 'AddToStoreNar', args: addToStoreNarArgs(hello) }, c.ctx));
  c.write(new WireBuilder().u64(hello.narSize).raw(hello.nar.subarray(0, 60)).finish());
  await new Promise((r) => setTimeout(r, 20));
  c.pair.server.destroy();
  expect(await c.outcome).toEqual({ ok: true });
  await nothingLeft(hello.path);
  expect(c.logLines.some((l) => /op failed/.test(String(l.msg)))).toBe(true);
});

it.each([
  ['AddPermRoot', { path: hello.path, gcRoot: '/tmp/x' }],
  ['RegisterDrvOutput', { realisation: '{}' }],
  ['ExportPath', { path: hello.path, sign: 0 }],
] as const)('unsupported op %s: an error the client prints, session continues', async (op, args) => {
  const c = await ready();
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- the table's union of ops
  const r = await c.op(op, args as never);
  expect(r.error?.message).toMatch(new RegExp(`does not support the '${op}' operation`));
  await stillUsable(c);
  await c.close();
});

describe('an op needing a permission the key lacks', () => {
  it('framed upload: error names the permission, payload drained, session continues', async () => {
    const c = await ready(38, ['read']);
    const r = await c.op('AddToStoreNar', addToStoreNarArgs(hello), { framed: [hello.nar] });
    expect(r.error?.message).toMatch(/lacks the 'write' permission/);
    await nothingLeft(hello.path);
    await stillUsable(c);
    await c.close();
  });

  it('unframed NAR (AddToStore at 1.21): drained, session continues', async () => {
    const c = await ready(21, ['read']);
    const r = await c.op(
      'AddToStore',
      { name: 'hello.txt', fixed: true, recursive: false, hashAlgo: 'sha256' },
      { raw: narOfBytes(Buffer.from('hello\n')) },
    );
    expect(r.error?.message).toMatch(/lacks the 'write' permission/);
    await stillUsable(c);
    await c.close();
    await nothingLeft(hello.path);
  });

  it('STDERR_READ upload (AddToStoreNar at 1.22): refused before any data is asked for', async () => {
    const c = await ready(22, ['read']);
    const r = await c.op('AddToStoreNar', addToStoreNarArgs(hello), { stderrRead: hello.nar });
    expect(r.stderr.some((m) => m.type === 'read')).toBe(false);
    expect(r.error?.message).toMatch(/lacks the 'write' permission/);
    await stillUsable(c);
    await c.close();
  });

  it('admin-only op (CollectGarbage)', async () => {
    const c = await ready(38, ['read', 'write', 'build']);
    const r = await c.op('CollectGarbage', {
      action: 2,
      pathsToDelete: [],
      ignoreLiveness: false,
      maxFreed: 2n ** 64n - 1n,
      obsolete1: 0n,
      obsolete2: 0n,
      obsolete3: 0n,
    });
    expect(r.error?.message).toMatch(/lacks the 'admin' permission/);
    await stillUsable(c);
    await c.close();
  });

  it('--no-check-sigs from a non-admin key does not skip the signature check', async () => {
    const ia = inputAddressed('unsigned', 'x\n');
    const c = await ready(38, ['read', 'write']);
    const r = await c.op('AddToStoreNar', addToStoreNarArgs(ia, { dontCheckSigs: true }), {
      framed: [ia.nar],
    });
    expect(r.error?.message).toMatch(/lacks a valid signature/);
    await nothingLeft(ia.path);
    await stillUsable(c);
    await c.close();
  });
});

it('one bad session never disturbs a concurrent good one', async () => {
  const bad = await ready();
  const good = await ready();
  // the bad one starts an upload and stalls half-way …
  bad.write(encodeWorkerRequest({ op: 'AddToStoreNar', args: addToStoreNarArgs(hello) }, bad.ctx));
  bad.write(new WireBuilder().u64(hello.narSize).raw(hello.nar.subarray(0, 50)).finish());
  // … while the good one uploads the same path and another
  const r1 = await good.op('AddToStoreNar', addToStoreNarArgs(hello), { framed: [hello.nar] });
  const r2 = await good.op(
    'AddMultipleToStore',
    { repair: false, dontCheckSigs: false },
    { framed: [multiplePayload([{ upload: other }])] },
  );
  expect(r1.error).toBeUndefined();
  expect(r2.error).toBeUndefined();
  bad.pair.server.destroy();
  expect(await bad.outcome).toEqual({ ok: true });
  expect(
    (await good.op('QueryValidPaths', { paths: [hello.path, other.path], substitute: false })).reply,
  ).toEqual([hello.path, other.path]);
  await good.close();
  expect(await readdir(store.layout.stagingDir)).toEqual([]);
});

it('garbage instead of MAGIC_1 from a 2.23-style client in one write', async () => {
  const c = new WorkerClient({ store });
  c.write(Buffer.alloc(16, 0xff));
  await endedWith(c, /handshake failed/);
});
