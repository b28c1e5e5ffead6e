import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { hashOf, parseHash } from '../../nix/hash.js';
import { narOfBytes } from '../../nix/nar/writer.js';
import { storeCommand } from '../../cli/commands/store.js';
import { StoreErrorCode } from '../../store/errors.js';
import { LocalStore } from '../../store/local-store.js';
import { MemoryPathIndex } from '../../store/memory-index.js';
import { fingerprint } from '../../store/path-info.js';
import {
  countValidSignatures,
  parsePublicKey,
  parseSecretKey,
  signPathInfo,
  verifyDetached,
} from '../../store/signatures.js';
import type { NarClaim } from '../../store/staging.js';
import {
  chunked,
  collect,
  nixPathInfo,
  removeAll,
  stagingEntries,
  tempDir,
  addTreeWithNix,
} from './support.js';

let work: string;
let nixRoot: string;
let treePath: string;
let treeNar: Buffer;
let treeClaim: NarClaim;

beforeAll(async () => {
  work = await tempDir();
  ({ nixRoot, path: treePath, nar: treeNar, claim: treeClaim } = await addTreeWithNix(work));
});

afterAll(async () => {
  await removeAll(work);
});

let count = 0;
const newDataDir = (): string => join(work, `data-${count++}`);

/** A store with the tree, a leaf, and a path referring to both (with a deriver). */
async function populated(
  dataDir = newDataDir(),
): Promise<{ store: LocalStore; leaf: string; top: string; drv: string }> {
  const store = await LocalStore.open({ dataDir });
  await store.importNar(treeClaim, chunked(treeNar));
  const leaf = (await store.addTextToStore('leaf', 'leaf text')).path;
  const drv = (await store.addTextToStore('top.drv', 'Derive(...)', [leaf])).path;
  const topNar = narOfBytes(Buffer.from(`refers to ${leaf} and ${treePath}`));
  const top = '/nix/store/dczwm8rvskykby24x4nb8xkczxcrbzh9-top';
  await store.importNar(
    {
      path: top,
      narHash: hashOf('sha256', topNar),
      narSize: topNar.length,
      references: [leaf, treePath],
      deriver: drv,
    },
    chunked(topNar),
  );
  return { store, leaf, top, drv };
}

async function answers(store: LocalStore, paths: string[]): Promise<unknown> {
  return {
    all: await store.queryAll(),
    valid: [...(await store.queryValid(paths))].sort(),
    infos: await Promise.all(paths.map((p) => store.queryPathInfo(p))),
    referrers: await Promise.all(paths.map((p) => store.queryReferrers(p))),
  };
}

describe('queries', () => {
  test('referrers, derivers, hash parts, closure', async () => {
    const { store, leaf, top, drv } = await populated();
    expect(await store.queryReferrers(leaf)).toEqual([drv, top].sort());
    expect(await store.queryValidDerivers(top)).toEqual([drv]);
    expect(await store.queryValidDerivers(leaf)).toEqual([]);
    expect(await store.queryPathFromHashPart('dczwm8rvskykby24x4nb8xkczxcrbzh9')).toBe(top);
    expect(await store.queryPathFromHashPart('00000000000000000000000000000000')).toBeUndefined();
    expect(await store.queryPathFromHashPart('bad')).toBeUndefined();
    expect(await store.queryClosure([top])).toEqual(new Set([top, leaf, treePath]));
    await expect(store.narFromPath('/nix/store/00000000000000000000000000000000-x')).rejects.toMatchObject({
      code: StoreErrorCode.NOT_FOUND,
      message: "path '/nix/store/00000000000000000000000000000000-x' is not valid",
    });
  });
});

describe('reindex and reopening', () => {
  test('reindex after losing the index gives the same answers', async () => {
    const { store, leaf, top, drv } = await populated();
    const paths = [leaf, top, drv, treePath, '/nix/store/00000000000000000000000000000000-x'];
    const before = await answers(store, paths);
    await store.index.clear();
    expect(await store.queryAll()).toEqual([]);
    const report = await store.reindex();
    expect(report).toEqual({ indexed: 4, dropped: 0, problems: [] });
    expect(await answers(store, paths)).toEqual(before);
    // A fresh process (new in-process index) sees the same store.
    const reopened = await LocalStore.open({ dataDir: store.layout.dataDir, index: new MemoryPathIndex() });
    expect(await answers(reopened, paths)).toEqual(before);
    expect(await collect(await reopened.narFromPath(treePath))).toEqual(treeNar);
  });

  test('reindex drops entries without a record', async () => {
    const { store, top } = await populated();
    const info = (await store.queryPathInfo(top))!;
    await store.index.put({
      ...info,
      path: '/nix/store/00000000000000000000000000000000-ghost',
      references: [],
    });
    expect(await store.reindex()).toMatchObject({ indexed: 4, dropped: 1 });
  });

  test('opening removes leftover staging', async () => {
    const dataDir = newDataDir();
    const store = await LocalStore.open({ dataDir });
    await mkdir(join(store.layout.stagingDir, 'leftover', 'deep'), { recursive: true });
    await writeFile(join(store.layout.stagingDir, 'leftover', 'deep', 'f'), 'x');
    await chmod(join(store.layout.stagingDir, 'leftover', 'deep'), 0o555);
    const again = await LocalStore.open({ dataDir });
    expect(await stagingEntries(again)).toEqual([]);
  });
});

describe('verify', () => {
  test('a clean store has no problems', async () => {
    const { store } = await populated();
    expect(await store.verify({ checkContents: true })).toEqual({ checked: 4, problems: [] });
  });

  test('a tampered file is found only with checkContents', async () => {
    const { store } = await populated();
    const file = join(store.layout.contentPath(treePath), 'hello.txt');
    await chmod(file, 0o644);
    await writeFile(file, 'hello w0rld\n'); // same size
    expect((await store.verify()).problems).toEqual([]);
    const { problems } = await store.verify({ checkContents: true });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ kind: 'hash-mismatch', path: treePath });
    expect(problems[0]!.message).toMatch(
      new RegExp(`^path '${treePath}' was modified! expected hash 'sha256:`),
    );
  });

  test('missing content, unregistered content, corrupt record, index drift', async () => {
    const { store, leaf } = await populated();
    await rm(store.layout.contentPath(leaf));
    const stray = '/nix/store/11111111111111111111111111111111-stray';
    await writeFile(store.layout.contentPath(stray), 'junk');
    const bogus = '/nix/store/22222222222222222222222222222222-bogus';
    await writeFile(store.layout.recordPath(bogus), '{"version":1');
    await store.index.delete(treePath);
    const kinds = (await store.verify()).problems.map((p) => `${p.kind} ${p.path}`).sort();
    expect(kinds).toEqual(
      [
        `missing-content ${leaf}`,
        `unregistered-content ${stray}`,
        `corrupt-record ${bogus}`,
        `index-missing ${treePath}`,
      ].sort(),
    );
  });

  test('nixyard store verify / reindex', async () => {
    const { store } = await populated();
    const run = async (...argv: string[]): Promise<{ code: number; out: string }> => {
      const stdout = new PassThrough();
      const chunks: Buffer[] = [];
      stdout.on('data', (c: Buffer) => chunks.push(c));
      const code = await storeCommand.run(argv, {
        stdin: new PassThrough(),
        stdout,
        stderr: new PassThrough(),
      });
      return { code, out: Buffer.concat(chunks).toString() };
    };
    const dir = store.layout.dataDir;
    expect(await run('verify', '--check-contents', '--data-dir', dir)).toEqual({
      code: 0,
      out: 'checked 4 paths, contents checked: 0 problem(s)\n',
    });
    expect(await run('reindex', '--data-dir', dir)).toEqual({
      code: 0,
      out: 'indexed 4 paths, dropped 0 stale entries\n',
    });
    const file = join(store.layout.contentPath(treePath), 'big.bin');
    await chmod(file, 0o644);
    await writeFile(file, 'shorter');
    const bad = await run('verify', '--check-contents', '--data-dir', dir);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`hash-mismatch: path '${treePath}' was modified!`);
    await expect(run('frobnicate', '--data-dir', dir)).rejects.toThrow("expected 'verify' or 'reindex'");
    await expect(run('verify', '--data-dir', join(work, 'nope'))).rejects.toThrow('does not exist');
  });
});

describe('signatures', () => {
  test('the protocol reference test vector (nix-2.8 misc-ops/16-sign-ssh-ng)', () => {
    const fp = fingerprint({
      path: '/nix/store/p2dpm3720a1xh7b74zr4k25bw4y9nbrg-dep-a',
      narHash: parseHash('sha256:0ah454nikf1r2f5477bhyssak4w0zmcz6gcx9hcsi96axk4kcngd'),
      narSize: 120,
      references: [],
    });
    expect(fp).toBe(
      '1;/nix/store/p2dpm3720a1xh7b74zr4k25bw4y9nbrg-dep-a;sha256:0ah454nikf1r2f5477bhyssak4w0zmcz6gcx9hcsi96axk4kcngd;120;',
    );
    const key = parsePublicKey('test-key-1:NU8dBpmN699Q525uLWDtZ8ZC0IsTgFEJo8QYa3c5DX8=');
    const sig =
      'test-key-1:3JLmlnzfrVWvBzeDQ1GRvhArXAjhBEGzNWYc5EjfDAzrR4fV3+2DLVTaoMkz3CSQ047ABa5HRHOj1QlYSrWBCQ==';
    expect(verifyDetached(fp, sig, [key])).toBe(true);
    expect(verifyDetached(fp.replace(';120;', ';121;'), sig, [key])).toBe(false);
    expect(verifyDetached(fp, sig.replace('test-key-1', 'other-key'), [key])).toBe(false);
    expect(verifyDetached(fp, 'test-key-1:AAAA', [key])).toBe(false);
    let thrown: unknown;
    try {
      parsePublicKey('test-key-1:AAAA');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: StoreErrorCode.KEY_INVALID });
  });

  test('our signatures equal `nix store sign` with a key from nix-store --generate-binary-cache-key', async () => {
    const sk = join(work, 'sk');
    const pk = join(work, 'pk');
    execFileSync('nix-store', ['--store', nixRoot, '--generate-binary-cache-key', 'nixyard-test-1', sk, pk]);
    execFileSync('nix', [
      '--extra-experimental-features',
      'nix-command',
      'store',
      'sign',
      '--store',
      nixRoot,
      '--key-file',
      sk,
      treePath,
    ]);
    const nixSigs = (nixPathInfo(nixRoot, treePath) as unknown as { signatures: string[] }).signatures;
    const store = await LocalStore.open({ dataDir: newDataDir() });
    const info = await store.importNar(treeClaim, chunked(treeNar));
    const secret = parseSecretKey(await readFile(sk, 'utf8'));
    const ours = signPathInfo(info, secret);
    expect(nixSigs).toContain(ours);
    const publicKey = parsePublicKey(await readFile(pk, 'utf8'));
    expect(countValidSignatures(info, [publicKey])).toBe(0);

    const signed = await store.addSignatures(treePath, [ours, ours]);
    expect(signed.sigs).toEqual([ours]);
    expect(countValidSignatures(signed, [publicKey])).toBe(1);
    const record = JSON.parse(await readFile(store.layout.recordPath(treePath), 'utf8')) as {
      signatures: string[];
    };
    expect(record.signatures).toEqual([ours]);
    expect((await store.queryPathInfo(treePath))?.sigs).toEqual([ours]);
    await expect(
      store.addSignatures('/nix/store/00000000000000000000000000000000-x', [ours]),
    ).rejects.toMatchObject({
      code: StoreErrorCode.NOT_FOUND,
    });
  });
});

describe('deletePath and temp roots', () => {
  test('refused while referred to or rooted; then removed completely', async () => {
    const { store, leaf, top, drv } = await populated();
    await expect(store.deletePath(leaf)).rejects.toMatchObject({
      code: StoreErrorCode.PATH_IN_USE,
      message: `cannot delete path '${leaf}' because it is in use by '${drv}'`,
    });
    await store.tempRoots.add('session-1', [top]);
    await expect(store.deletePath(top)).rejects.toMatchObject({ code: StoreErrorCode.PATH_IN_USE });
    await store.tempRoots.release('session-1');
    await store.deletePath(top);
    await store.deletePath(drv);
    await store.deletePath(leaf);
    await store.deletePath(treePath);
    expect(await store.queryAll()).toEqual([]);
    expect(await readdir(store.layout.contentDir)).toEqual([]);
    expect(await readdir(store.layout.metaDir)).toEqual([]);
    expect(await stagingEntries(store)).toEqual([]);
    await expect(store.deletePath(top)).rejects.toMatchObject({ code: StoreErrorCode.NOT_FOUND });
    // And it can come back.
    await store.importNar(treeClaim, chunked(treeNar));
    expect(await store.verify({ checkContents: true })).toEqual({ checked: 1, problems: [] });
  });
});
