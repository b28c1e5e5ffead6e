/**
 * Hashes and store paths of random trees, compared with what the real Nix 2.8 computes
 * for the same files: `nix hash path|file`, `nix-store --add`, `nix-store --add-fixed
 * [--recursive]`. Nix adds into a throwaway chroot store, so /nix/store is untouched.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HashAlgo } from '../../nix/hash.js';
import { hashFile, hashPath } from '../../nix/path-hash.js';
import { makeFixedOutputPath } from '../../nix/store-path.js';
import { runNix } from '../support/nix-cli.js';
import { makeRandomTree } from '../support/random-tree.js';
import { createRng, testSeed } from '../support/rng.js';

const TREES = 200;
const FILES = 40;

let work: string;
let chrootStore: string;
const trees: string[] = [];
const files: string[] = [];

function lines(out: Buffer): string[] {
  return out.toString().trim().split('\n');
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nixyard-ingest-'));
  chrootStore = join(work, 'chroot-store');
  const rng = createRng(testSeed());
  for (let i = 0; i < TREES; i++) {
    const p = join(work, `tree-${i}`);
    await makeRandomTree(p, rng, { maxBytes: 300 * 1024, maxNodes: 30 });
    trees.push(p);
  }
  for (let i = 0; i < FILES; i++) {
    const p = join(work, `file-${i}.txt`);
    await writeFile(p, rng.bytes(rng.pick([0, 1, 7, 8, 9, 4096, 70000])));
    files.push(p);
  }
}, 120_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe(`${TREES} random trees (seed ${testSeed()})`, () => {
  test.each<HashAlgo>(['sha256', 'sha1', 'sha512', 'md5'])('nix hash path --type %s', async (algo) => {
    const expected = lines(
      (await runNix('nix', ['hash', 'path', '--type', algo, '--base32', ...trees])).stdout,
    );
    const ours = await Promise.all(trees.map(async (t) => (await hashPath(t, algo)).hash.toBase32()));
    expect(ours).toEqual(expected);
  });

  test('nix-store --add', async () => {
    const expected = lines((await runNix('nix-store', ['--store', chrootStore, '--add', ...trees])).stdout);
    const ours = await Promise.all(
      trees.map(async (t, i) =>
        makeFixedOutputPath(`tree-${i}`, { method: 'recursive', hash: (await hashPath(t)).hash }),
      ),
    );
    expect(ours).toEqual(expected);
  });

  test.each<HashAlgo>(['sha1', 'sha512'])('nix-store --add-fixed --recursive %s', async (algo) => {
    const some = trees.slice(0, 50);
    const expected = lines(
      (await runNix('nix-store', ['--store', chrootStore, '--add-fixed', '--recursive', algo, ...some]))
        .stdout,
    );
    const ours = await Promise.all(
      some.map(async (t, i) =>
        makeFixedOutputPath(`tree-${i}`, { method: 'recursive', hash: (await hashPath(t, algo)).hash }),
      ),
    );
    expect(ours).toEqual(expected);
  });
});

describe(`${FILES} random files, flat`, () => {
  test.each<HashAlgo>(['sha256', 'sha1', 'sha512', 'md5'])('nix hash file --type %s', async (algo) => {
    const expected = lines((await runNix('nix', ['hash', 'file', '--type', algo, '--sri', ...files])).stdout);
    const ours = await Promise.all(files.map(async (f) => (await hashFile(f, algo)).hash.toSri()));
    expect(ours).toEqual(expected);
  });

  test.each<HashAlgo>(['sha256', 'sha1', 'sha512'])('nix-store --add-fixed %s', async (algo) => {
    const expected = lines(
      (await runNix('nix-store', ['--store', chrootStore, '--add-fixed', algo, ...files])).stdout,
    );
    const ours = await Promise.all(
      files.map(async (f, i) =>
        makeFixedOutputPath(`file-${i}.txt`, { method: 'flat', hash: (await hashFile(f, algo)).hash }),
      ),
    );
    expect(ours).toEqual(expected);
  });
});
