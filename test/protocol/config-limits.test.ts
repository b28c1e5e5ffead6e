/**
 * The gateway's limits from its configuration (`--max-nar-size`, `--max-paths-per-request`,
 * `--max-sessions-per-key`), each through the code that applies it: the protocol
 * handlers built by `storeHandlers(config)`, and the SSH front door for sessions.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import ssh2 from 'ssh2';
import type { ServerChannel } from 'ssh2';
import { loadGatewayConfig } from '../../gateway/config.js';
import { startGateway } from '../../gateway/gateway.js';
import { storeHandlers } from '../../gateway/handlers.js';
import type { ProtocolHandlers } from '../../gateway/ssh-server.js';
import { LocalStore } from '../../store/local-store.js';
import {
  addToStoreNarArgs,
  caFile,
  identity,
  multiplePayload,
  WorkerClient,
} from '../support/worker-client.js';

let dir: string;
let store: LocalStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixyard-limits-'));
  store = await LocalStore.open({ dataDir: join(dir, 'data') });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A WorkerClient whose session is the one `storeHandlers` runs for `flags`. */
function clientWith(flags: string[]): WorkerClient {
  const config = loadGatewayConfig(['--data-dir', join(dir, 'data'), ...flags], {});
  const handlers = storeHandlers(store, config);
  return new WorkerClient({
    store,
    start: (server, log) =>
      handlers.worker(server as unknown as ServerChannel, identity(['read', 'write']), log),
  });
}

const hello = caFile('hello.txt', 'hello\n');

it('--max-nar-size: a bigger upload is refused naming the path, drained, session goes on', async () => {
  const c = clientWith(['--max-nar-size', String(hello.narSize - 1)]);
  await c.handshake(38);
  const r = await c.op('AddToStoreNar', addToStoreNarArgs(hello), { framed: [hello.nar] });
  expect(r.error?.message).toMatch(
    new RegExp(
      `NAR of '${hello.path}' is ${hello.narSize} bytes, more than this gateway accepts \\(${hello.narSize - 1}\\)`,
    ),
  );
  const m = await c.op(
    'AddMultipleToStore',
    { repair: false, dontCheckSigs: false },
    { framed: [multiplePayload([{ upload: hello }])] },
  );
  expect(m.error?.message).toMatch(/more than this gateway accepts/);
  expect(await store.isValid(hello.path)).toBe(false);
  expect((await c.op('IsValidPath', { path: hello.path })).reply).toBe(false);
  await c.close();

  const ok = clientWith(['--max-nar-size', String(hello.narSize)]);
  await ok.handshake(38);
  expect(
    (await ok.op('AddToStoreNar', addToStoreNarArgs(hello), { framed: [hello.nar] })).error,
  ).toBeUndefined();
  await ok.close();
});

it('--max-paths-per-request: a longer path list is refused before it is read', async () => {
  const paths = ['a', 'b', 'c'].map((n) => `/nix/store/${n.repeat(32)}-x`);
  const ok = clientWith(['--max-paths-per-request', '3']);
  await ok.handshake(38);
  expect((await ok.op('QueryValidPaths', { paths, substitute: false })).reply).toEqual([]);
  await ok.close();

  const c = clientWith(['--max-paths-per-request', '2']);
  await c.handshake(38);
  const r = await c.op('QueryValidPaths', { paths, substitute: false });
  expect(r.error?.message).toMatch(/length 3 exceeds the limit 2/);
  await c.session;
  expect(await c.rest()).toHaveLength(0);
});

it('--max-sessions-per-key: the session over the limit is refused, a freed slot is reused', async () => {
  const keys = ssh2.utils.generateKeyPairSync('ed25519');
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, `${keys.public}\n`);
  const config = loadGatewayConfig(
    [
      '--data-dir',
      join(dir, 'data'),
      '--listen',
      '127.0.0.1:0',
      '--authorized-keys',
      authorizedKeys,
      '--max-sessions-per-key',
      '2',
    ],
    {},
  );
  const release: (() => void)[] = [];
  const handlers: ProtocolHandlers = {
    worker: (channel) =>
      new Promise<void>((resolve) => {
        channel.write('open\n');
        release.push(resolve);
      }),
    serve: () => Promise.resolve(),
  };
  const gateway = await startGateway(config, { handlers, log: pino({ level: 'silent' }) });
  const client = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve).once('error', reject);
    client.connect({ host: '127.0.0.1', port: gateway.port, username: 'nixyard', privateKey: keys.private });
  });
  const exec = (): Promise<{ out: string; err: string; code: number | null }> =>
    new Promise((resolve, reject) => {
      client.exec('nix-daemon --stdio', (e, ch) => {
        if (e) return reject(e);
        let out = '';
        let err = '';
        let code: number | null = null;
        ch.on('data', (d: Buffer) => {
          out += d.toString();
          if (out === 'open\n') resolve({ out, err, code });
        });
        ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
        ch.on('exit', (c: number) => (code = c));
        ch.on('close', () => resolve({ out, err, code }));
      });
    });
  try {
    expect((await exec()).out).toBe('open\n');
    expect((await exec()).out).toBe('open\n');
    const third = await exec();
    expect(third.err).toMatch(/too many open Nixyard sessions for this key \(limit 2\)/);
    expect(third.code).toBe(1);
    release.shift()?.();
    // The slot frees once the server has ended that session, which under load can take a
    // moment: try again until it is taken (bounded), rather than after a fixed sleep.
    let fourth = await exec();
    for (let i = 0; i < 50 && fourth.out !== 'open\n'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      fourth = await exec();
    }
    expect(fourth.out).toBe('open\n');
  } finally {
    for (const r of release) r();
    client.end();
    await gateway.close();
  }
});
