/**
 * `nixyard nar pack|unpack|ls`, in-process through the dispatcher with in-memory stdio
 * and compared with the real Nix; plus one run of the built binary (if `dist/` exists)
 * to cover real stdout, and a check that packing respects back-pressure.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { dumpPath } from '../../nix/nar/index.js';
import { makeRandomTree } from '../support/random-tree.js';
import { nixNarLs, nixStoreDump, runNix } from '../support/nix-cli.js';
import { createRng, testSeed } from '../support/rng.js';
import { runCli } from '../support/run-cli.js';

const seed = testSeed();
let work: string;
let tree: string;
let nar: Buffer;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nar-cli-'));
  tree = join(work, 'tree');
  await makeRandomTree(tree, createRng(seed), { root: 'directory', maxNodes: 40 });
  nar = await nixStoreDump(tree);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

test(`pack writes the bytes of nix-store --dump (TEST_SEED=${seed})`, async () => {
  const { code, stdout, stderr } = await runCli(['nar', 'pack', tree]);
  expect(stderr.toString()).toBe('');
  expect(code).toBe(0);
  expect(stdout.equals(nar)).toBe(true);
});

test('unpack restores the tree and prints the narHash nix-hash computes', async () => {
  const dest = join(work, 'unpacked');
  const { code, stdout } = await runCli(['nar', 'unpack', dest], nar);
  expect(code).toBe(0);
  expect((await nixStoreDump(dest)).equals(nar)).toBe(true);
  const hash = (await runNix('nix-hash', ['--type', 'sha256', '--base32', tree])).stdout.toString().trim();
  expect(stdout.toString()).toBe(`narHash: sha256:${hash}\nnarSize: ${nar.length}\n`);
});

test('unpack rejects an invalid NAR, exits 1 and leaves nothing', async () => {
  const dest = join(work, 'bad');
  const { code, stderr } = await runCli(['nar', 'unpack', dest], nar.subarray(0, nar.length - 8));
  expect(code).toBe(1);
  expect(stderr.toString()).toContain('ERR_NIX_NAR_TRUNCATED');
  await expect(lstat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
  const again = await runCli(['nar', 'unpack', dest], Buffer.concat([nar, Buffer.from('x')]));
  expect(again.stderr.toString()).toContain('ERR_NIX_NAR_TRAILING_DATA');
});

test('ls prints what nix nar ls -lR prints, and names only with --short', async () => {
  const narFile = join(work, 'tree.nar');
  await writeFile(narFile, nar);
  const { code, stdout } = await runCli(['nar', 'ls'], nar);
  expect(code).toBe(0);
  expect(stdout.equals(await nixNarLs(narFile))).toBe(true);
  const short = await runCli(['nar', 'ls', '--short'], nar);
  const expected = (await runNix('nix', ['nar', 'ls', '-R', narFile, '/'])).stdout;
  expect(short.stdout.equals(expected)).toBe(true);
});

test('usage errors and --help', async () => {
  expect((await runCli(['nar', '--help'])).code).toBe(0);
  expect((await runCli(['nar', 'pack', '--help'])).stdout.toString()).toContain('nixyard nar pack PATH');
  expect((await runCli(['nar'])).code).toBe(2);
  expect((await runCli(['nar', 'frobnicate'])).code).toBe(2);
  expect((await runCli(['nar', 'pack'])).code).toBe(2);
  expect((await runCli(['nar', 'unpack', 'a', 'b'])).code).toBe(2);
  expect((await runCli(['nar', 'pack', join(work, 'missing')])).code).toBe(1);
});

test('pack of a FIFO fails with NAR_UNSUPPORTED_FILE_TYPE', async () => {
  const fifoDir = join(work, 'fifo');
  await mkdir(fifoDir);
  await runNix('mkfifo', [join(fifoDir, 'p')]);
  const { code, stderr } = await runCli(['nar', 'pack', fifoDir]);
  expect(code).toBe(1);
  expect(stderr.toString()).toContain('ERR_NIX_NAR_UNSUPPORTED_FILE_TYPE');
});

test('packing is pulled by the consumer: a stalled stdout stops the reading', async () => {
  const big = join(work, 'big');
  await mkdir(big);
  await writeFile(join(big, 'f'), Buffer.alloc(8 * 1024 * 1024, 1));
  await chmod(join(big, 'f'), 0o755);
  await symlink('f', join(big, 'l'));
  let pulled = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of dumpPath(big)) {
      pulled += chunk.length;
      yield chunk;
    }
  }
  let release: (() => void) | undefined;
  let received = 0;
  const stalled = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, callback) {
      received += chunk.length;
      if (received > 256 * 1024 && release === undefined) release = callback;
      else callback();
    },
  });
  const done = pipeline(Readable.from(counted(), { objectMode: false }), stalled);
  await new Promise((r) => setTimeout(r, 300));
  expect(pulled).toBeLessThan(1024 * 1024); // of 8 MiB
  release!();
  await done;
  expect(received).toBeGreaterThan(8 * 1024 * 1024);
});

const main = join(process.cwd(), 'dist', 'cli', 'main.js');
(existsSync(main) ? test : test.skip)('the built binary packs to real stdout', async () => {
  const out = await new Promise<Buffer>((resolve, reject) => {
    execFile(
      process.execPath,
      [main, 'nar', 'pack', tree],
      { encoding: 'buffer', maxBuffer: 1 << 30 },
      (e: Error | null, o: Buffer) => (e ? reject(e) : resolve(o)),
    );
  });
  expect(out.equals(nar)).toBe(true);
});

test.each(['file', 'symlink', 'empty directory'])(
  'ls of a NAR whose root is a %s matches nix',
  async (kind) => {
    const root = join(work, `root-${kind.replace(' ', '-')}`);
    if (kind === 'file') {
      await writeFile(root, 'abc');
      await chmod(root, 0o755);
    } else if (kind === 'symlink') {
      await symlink('/nowhere', root);
    } else {
      await mkdir(root);
    }
    const rootNar = await nixStoreDump(root);
    const narFile = `${root}.nar`;
    await writeFile(narFile, rootNar);
    const { stdout } = await runCli(['nar', 'ls'], rootNar);
    expect(stdout.toString('latin1')).toBe((await nixNarLs(narFile)).toString('latin1'));
  },
);
