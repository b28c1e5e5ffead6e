import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { copyFile, lstat, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashOf, parseHash } from '../../nix/hash.js';
import { dumpPath, narOfBytes } from '../../nix/nar/writer.js';
import { makeTextPath } from '../../nix/store-path.js';
import { parseContentAddress } from '../../nix/content-address.js';
import { HashModulo } from '../../store/hash-modulo.js';
import { StoreErrorCode, isStoreError, type StoreError } from '../../store/errors.js';
import { LocalStore } from '../../store/local-store.js';
import type { NarClaim } from '../../store/staging.js';
import {
  chunked,
  collect,
  counted,
  nixDump,
  nixPathInfo,
  nixStore,
  removeAll,
  stagingEntries,
  tempDir,
  addTreeWithNix,
} from './support.js';

let work: string;
let nixRoot: string;
let tree: string;
let treeNar: Buffer;
let treeClaim: NarClaim;

beforeAll(async () => {
  work = await tempDir();
  ({ nixRoot, nar: treeNar, claim: treeClaim } = await addTreeWithNix(work));
  tree = join(work, 'tree');
});

afterAll(async () => {
  await removeAll(work);
});

let storeCount = 0;
async function freshStore(): Promise<LocalStore> {
  return LocalStore.open({ dataDir: join(work, `data-${storeCount++}`), now: () => 1700000000 });
}

/** Asserts an import failed with `code` and left nothing behind. */
async function expectRejected(
  store: LocalStore,
  promise: Promise<unknown>,
  code: StoreError['code'],
  path?: string,
): Promise<StoreError> {
  const err = await promise.then(
    () => {
      throw new Error('import succeeded');
    },
    (e: unknown) => e,
  );
  if (!isStoreError(err)) throw err;
  expect(err.code).toBe(code);
  expect(await stagingEntries(store)).toEqual([]);
  expect(await readdir(store.layout.metaDir)).toEqual([]);
  if (path !== undefined) expect(await store.isValid(path)).toBe(false);
  return err;
}

describe('importNar', () => {
  test('imports a real NAR: record, index, identical NAR back, canonical content', async () => {
    const store = await freshStore();
    const info = await store.importNar(treeClaim, chunked(treeNar, 1000));
    expect(info.path).toBe(treeClaim.path);
    expect(info.narHash.toSri()).toBe(treeClaim.narHash);
    expect(info.registrationTime).toBe(1700000000);

    const record = JSON.parse(await readFile(store.layout.recordPath(info.path), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(record).toMatchObject({
      path: treeClaim.path,
      narHash: parseHash(treeClaim.narHash as string).toTyped(),
      narSize: treeNar.length,
      references: [],
      ca: treeClaim.ca,
      deriver: null,
    });
    expect(await store.queryValid([info.path, '/nix/store/00000000000000000000000000000000-x'])).toEqual(
      new Set([info.path]),
    );
    expect((await store.queryPathInfo(info.path))?.narSize).toBe(treeNar.length);
    expect(await collect(await store.narFromPath(info.path))).toEqual(treeNar);
    expect(await stagingEntries(store)).toEqual([]);

    // Canonical: 0444/0555, mtime 1, also for the root and symlinks.
    const content = store.layout.contentPath(info.path);
    const modes: Record<string, number> = {};
    for (const rel of ['', 'hello.txt', 'sub', 'sub/run.sh', 'sub/empty', 'big.bin']) {
      const st = await lstat(join(content, rel));
      modes[rel] = st.mode & 0o7777;
      expect(st.mtimeMs).toBe(1000);
    }
    expect(modes).toEqual({
      '': 0o555,
      'hello.txt': 0o444,
      sub: 0o555,
      'sub/run.sh': 0o555,
      'sub/empty': 0o555,
      'big.bin': 0o444,
    });
    expect((await lstat(join(content, 'sub/link'))).mtimeMs).toBe(1000);
  });

  test('our dumpPath and nix-store --dump agree, and an input-addressed path is accepted', async () => {
    expect(await collect(dumpPath(tree))).toEqual(treeNar);
    const store = await freshStore();
    const path = '/nix/store/2a5mnyc1lvfa1ws0qsb8d0xv2srgp6in-some-output';
    const info = await store.importNar(
      {
        path,
        narHash: hashOf('sha256', treeNar),
        narSize: treeNar.length,
        references: [],
        deriver: '/nix/store/bsp8nbk7szz3adz2zi929m3a3z0ivkwy-dep-a.drv',
      },
      chunked(treeNar),
    );
    expect(info.ca).toBeUndefined();
    expect(info.deriver).toBe('/nix/store/bsp8nbk7szz3adz2zi929m3a3z0ivkwy-dep-a.drv');
    expect(await collect(await store.narFromPath(path))).toEqual(treeNar);
  });

  test('a symlink root and an executable file root, fed in 1- and 7-byte chunks', async () => {
    const store = await freshStore();
    const link = join(work, 'a-link');
    await symlink('/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox/bin/sh', link);
    const exe = join(tree, 'sub', 'run.sh');
    for (const [fsPath, name, size] of [
      [link, 'a-link', 1],
      [exe, 'run.sh', 7],
    ] as const) {
      const nar = nixDump(fsPath);
      const path = `/nix/store/${'3'.repeat(32)}-${name}`;
      await store.importNar(
        { path, narHash: hashOf('sha256', nar), narSize: nar.length, references: [] },
        chunked(nar, size),
      );
      expect(await collect(await store.narFromPath(path))).toEqual(nar);
      const st = await lstat(store.layout.contentPath(path));
      expect(st.mtimeMs).toBe(1000);
      if (name === 'run.sh') expect(st.mode & 0o7777).toBe(0o555);
    }
    expect(await store.verify({ checkContents: true })).toEqual({ checked: 2, problems: [] });
  });

  test('hash mismatch: Nix-like message, nothing registered, source drained', async () => {
    const store = await freshStore();
    const wrong = hashOf('sha256', 'not the nar');
    const { source, taken } = counted(treeNar);
    const err = await expectRejected(
      store,
      store.importNar({ ...treeClaim, narHash: wrong }, source),
      StoreErrorCode.NAR_HASH_MISMATCH,
      treeClaim.path,
    );
    const got = parseHash(treeClaim.narHash as string).toTyped();
    expect(err.message).toBe(
      `hash mismatch importing path '${treeClaim.path}'; specified: ${wrong.toTyped()}; got: ${got}`,
    );
    expect(taken()).toBe(treeNar.length);
    expect(err.context).toMatchObject({ consumed: treeNar.length, drained: true });
    await expect(readdir(store.layout.contentDir)).resolves.toEqual([]);
  });

  test('size mismatch', async () => {
    const store = await freshStore();
    const err = await expectRejected(
      store,
      store.importNar({ ...treeClaim, narSize: treeNar.length + 8 }, chunked(treeNar)),
      StoreErrorCode.NAR_SIZE_MISMATCH,
      treeClaim.path,
    );
    expect(err.message).toBe(
      `size mismatch importing path '${treeClaim.path}'; specified: ${treeNar.length + 8}; got: ${treeNar.length}`,
    );
  });

  test('content-address mismatch: right hashes, wrong path', async () => {
    const store = await freshStore();
    const path = `/nix/store/${'1'.repeat(32)}-tree`;
    const err = await expectRejected(
      store,
      store.importNar({ ...treeClaim, path }, chunked(treeNar)),
      StoreErrorCode.CA_MISMATCH,
      path,
    );
    expect(err.message).toContain(`path '${path}' claims to be content-addressed but isn't`);
    expect(err.message).toContain(treeClaim.path);
  });

  test('content-address hash that disagrees with the NAR', async () => {
    const store = await freshStore();
    const ca = `fixed:r:sha256:${hashOf('sha256', 'x').toBase32()}`;
    const err = await expectRejected(
      store,
      store.importNar({ ...treeClaim, ca }, chunked(treeNar)),
      StoreErrorCode.CA_MISMATCH,
      treeClaim.path,
    );
    expect(err.message).toMatch(/^ca hash mismatch importing path '.*'; specified: fixed:r:sha256:/);
  });

  test('missing reference: refused, NAR still drained', async () => {
    const store = await freshStore();
    const missing = '/nix/store/71fc7s32zl20dc955bhghy5dvalm7ndz-busybox';
    const { source, taken } = counted(treeNar);
    const err = await expectRejected(
      store,
      store.importNar(
        {
          path: '/nix/store/2a5mnyc1lvfa1ws0qsb8d0xv2srgp6in-x',
          narHash: hashOf('sha256', treeNar),
          narSize: treeNar.length,
          references: [missing],
        },
        source,
      ),
      StoreErrorCode.REFERENCE_INVALID,
    );
    expect(err.message).toBe(
      `cannot add path '/nix/store/2a5mnyc1lvfa1ws0qsb8d0xv2srgp6in-x' because it references path '${missing}', which is not valid`,
    );
    expect(taken()).toBe(treeNar.length);
  });

  test('truncated NAR', async () => {
    const store = await freshStore();
    const err = await expectRejected(
      store,
      store.importNar(treeClaim, chunked(treeNar.subarray(0, treeNar.length - 100))),
      StoreErrorCode.NAR_TRUNCATED,
      treeClaim.path,
    );
    expect(err.message).toMatch(/^unexpected end-of-file importing path '/);
  });

  test('malformed NAR (bad padding in the middle): error after draining all of it', async () => {
    const store = await freshStore();
    const bad = Buffer.from(treeNar);
    bad.write('xxxxxxxx', 16 + 8 + 8, 'latin1'); // inside the first '(' token area
    const { source, taken } = counted(bad, 64);
    const err = await expectRejected(
      store,
      store.importNar(treeClaim, source),
      StoreErrorCode.NAR_INVALID,
      treeClaim.path,
    );
    expect(err.message).toMatch(/^bad archive importing path '/);
    expect(taken()).toBe(bad.length);
    expect(err.context).toMatchObject({ consumed: bad.length, drained: true });
  });

  test('trailing data after the NAR is refused', async () => {
    const store = await freshStore();
    await expectRejected(
      store,
      store.importNar(treeClaim, chunked(Buffer.concat([treeNar, Buffer.alloc(8)]))),
      StoreErrorCode.NAR_INVALID,
      treeClaim.path,
    );
  });

  test('invalid claims', async () => {
    const store = await freshStore();
    await expectRejected(
      store,
      store.importNar({ ...treeClaim, path: '/nix/store/tree' }, chunked(treeNar)),
      StoreErrorCode.PATH_INVALID,
    );
    await expectRejected(
      store,
      store.importNar({ ...treeClaim, narHash: 'sha1:0000' }, chunked(treeNar)),
      StoreErrorCode.CLAIM_INVALID,
    );
  });

  test('already valid: NAR drained, existing info returned', async () => {
    const store = await freshStore();
    const first = await store.importNar(treeClaim, chunked(treeNar));
    const { source, taken } = counted(treeNar);
    const second = await store.importNar({ ...treeClaim, sigs: ['ignored:x'] }, source);
    expect(second).toEqual(first);
    expect(taken()).toBe(treeNar.length);
  });

  test('concurrent imports of the same path: all succeed, one copy, one record', async () => {
    const store = await freshStore();
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.importNar(treeClaim, chunked(treeNar, 512 + i * 97))),
    );
    for (const r of results) expect(r).toEqual(results[0]);
    expect(await readdir(store.layout.contentDir)).toEqual([treeClaim.path.slice('/nix/store/'.length)]);
    expect(await readdir(store.layout.metaDir)).toEqual([
      `${treeClaim.path.slice('/nix/store/'.length)}.json`,
    ]);
    expect(await stagingEntries(store)).toEqual([]);
    expect(await collect(await store.narFromPath(treeClaim.path))).toEqual(treeNar);
  });

  test('concurrent imports with a bad one among them: the good ones win', async () => {
    const store = await freshStore();
    const bad = store.importNar(treeClaim, chunked(treeNar.subarray(0, 500)));
    const good = store.importNar(treeClaim, chunked(treeNar, 333));
    await expect(bad).rejects.toMatchObject({ code: StoreErrorCode.NAR_TRUNCATED });
    await expect(good).resolves.toMatchObject({ path: treeClaim.path });
    expect(await stagingEntries(store)).toEqual([]);
  });

  test('stray content without a record is replaced', async () => {
    const store = await freshStore();
    await writeFile(store.layout.contentPath(treeClaim.path), 'junk');
    expect(await store.isValid(treeClaim.path)).toBe(false);
    await store.importNar(treeClaim, chunked(treeNar));
    expect(await collect(await store.narFromPath(treeClaim.path))).toEqual(treeNar);
  });
});

describe('content-addressed imports of flat and text paths', () => {
  test('flat fixed:sha256 from nix-store --add-fixed', async () => {
    const file = join(work, 'flat.txt');
    await writeFile(file, 'flat contents\n');
    const path = nixStore(nixRoot, ['--add-fixed', 'sha256', file]);
    const nix = nixPathInfo(nixRoot, path);
    const store = await freshStore();
    const nar = nixDump(file);
    const info = await store.importNar(
      { path, narHash: nix.narHash, narSize: nix.narSize, references: [], ca: nix.ca },
      chunked(nar),
    );
    expect(info.ca).toBe(nix.ca);
    // The same claim for a different file content is refused.
    const other = narOfBytes(Buffer.from('other contents\n'));
    const store2 = await freshStore();
    await expectRejected(
      store2,
      store2.importNar(
        { path, narHash: hashOf('sha256', other), narSize: other.length, references: [], ca: nix.ca },
        chunked(other),
      ),
      StoreErrorCode.CA_MISMATCH,
      path,
    );
  });

  test('text:sha256 with a reference, from builtins.toFile', async () => {
    const { nixEval } = await import('./support.js');
    const dep = nixEval(nixRoot, 'builtins.toFile "dep" "I am a dependency"');
    const top = nixEval(nixRoot, 'builtins.toFile "top" "uses ${builtins.toFile "dep" "I am a dependency"}"');
    const store = await freshStore();
    for (const path of [dep, top]) {
      const nix = nixPathInfo(nixRoot, path);
      const nar = nixDump(join(nixRoot, path));
      await store.importNar(
        { path, narHash: nix.narHash, narSize: nix.narSize, references: nix.references, ca: nix.ca },
        chunked(nar),
      );
    }
    expect((await store.queryPathInfo(top))?.references).toEqual([dep]);
    expect(await store.queryReferrers(dep)).toEqual([top]);
    // A text path whose references are lied about does not match its content address.
    const nix = nixPathInfo(nixRoot, top);
    expect(makeTextPath('top', hashOf('sha256', `uses ${dep}`), [])).not.toBe(top);
    const other = await freshStore();
    await expectRejected(
      other,
      other.importNar(
        { path: top, narHash: nix.narHash, narSize: nix.narSize, references: [], ca: nix.ca },
        chunked(nixDump(join(nixRoot, top))),
      ),
      StoreErrorCode.CA_MISMATCH,
      top,
    );
  });
});

describe('importBatch', () => {
  // eslint-disable-next-line @typescript-eslint/require-await -- an async iterable of ready items
  async function* items(list: { claim: NarClaim; nar: Uint8Array }[]) {
    for (const { claim, nar } of list) yield { claim, nar: chunked(nar) };
  }

  test('references may point forward in the batch; nothing registered before its references', async () => {
    const store = await freshStore();
    const leafNar = narOfBytes(Buffer.from('leaf'));
    const leaf = '/nix/store/0000000000000000000000000000000a-leaf';
    const top = '/nix/store/0000000000000000000000000000000b-top';
    const topClaim: NarClaim = {
      path: top,
      narHash: hashOf('sha256', treeNar),
      narSize: treeNar.length,
      references: [leaf, top],
    };
    const leafClaim: NarClaim = {
      path: leaf,
      narHash: hashOf('sha256', leafNar),
      narSize: leafNar.length,
      references: [],
    };
    const infos = await store.importBatch(
      items([
        { claim: topClaim, nar: treeNar },
        { claim: leafClaim, nar: leafNar },
        { claim: topClaim, nar: treeNar },
      ]),
    );
    expect(infos.map((i) => i.path)).toEqual([top, leaf, top]);
    expect(await store.queryAll()).toEqual([leaf, top].sort());
    expect(await store.queryReferrers(leaf)).toEqual([top]);
    expect(await stagingEntries(store)).toEqual([]);
  });

  test('a reference that never comes fails the batch; the waiting path is not registered', async () => {
    const store = await freshStore();
    const leafNar = narOfBytes(Buffer.from('leaf'));
    const leaf = '/nix/store/0000000000000000000000000000000a-leaf';
    const top = '/nix/store/0000000000000000000000000000000b-top';
    const missing = '/nix/store/0000000000000000000000000000000c-missing';
    await expect(
      store.importBatch(
        items([
          {
            claim: {
              path: top,
              narHash: hashOf('sha256', treeNar),
              narSize: treeNar.length,
              references: [missing],
            },
            nar: treeNar,
          },
          {
            claim: {
              path: leaf,
              narHash: hashOf('sha256', leafNar),
              narSize: leafNar.length,
              references: [],
            },
            nar: leafNar,
          },
        ]),
      ),
    ).rejects.toMatchObject({ code: StoreErrorCode.REFERENCE_INVALID });
    expect(await store.queryAll()).toEqual([leaf]);
    expect(await stagingEntries(store)).toEqual([]);
  });
});

describe('addToStore', () => {
  let file: string;
  beforeAll(async () => {
    file = join(work, 'added.txt');
    await writeFile(file, 'some file to add\n');
  });

  test.each([
    ['fixed:r:sha256', ['--add'], 'tree'],
    ['fixed:r:sha1', ['--add-fixed', '--recursive', 'sha1'], 'tree'],
    ['fixed:sha256', ['--add-fixed', 'sha256'], 'file'],
    ['fixed:sha1', ['--add-fixed', 'sha1'], 'file'],
    ['fixed:r:sha256', ['--add'], 'file'],
  ])('%s matches nix-store %j of a %s', async (method, args, what) => {
    const src = what === 'tree' ? tree : file;
    const path = nixStore(nixRoot, [...args, src]);
    const nix = nixPathInfo(nixRoot, path);
    const store = await freshStore();
    const recursive = method.startsWith('fixed:r:');
    const data = recursive ? nixDump(src) : await readFile(src);
    const name = what === 'tree' ? 'tree' : 'added.txt';
    const info = await store.addToStore({ name, method }, chunked(data, 777));
    expect(info.path).toBe(path);
    expect(info.narHash.toSri()).toBe(nix.narHash);
    expect(info.narSize).toBe(nix.narSize);
    expect(info.ca).toBe(nix.ca);
    expect(await collect(await store.narFromPath(path))).toEqual(nixDump(src));
    // Old protocol: flat data sent as the NAR of the file.
    if (!recursive) {
      const again = await (
        await freshStore()
      ).addToStore({ name, method, dataIsNar: true }, chunked(nixDump(src)));
      expect(again.path).toBe(path);
    }
  });

  test('addTextToStore matches builtins.toFile, references included', async () => {
    const { nixEval } = await import('./support.js');
    const dep = nixEval(nixRoot, 'builtins.toFile "dep" "I am a dependency"');
    const top = nixEval(nixRoot, 'builtins.toFile "top" "uses ${builtins.toFile "dep" "I am a dependency"}"');
    const store = await freshStore();
    const depInfo = await store.addTextToStore('dep', 'I am a dependency');
    expect(depInfo.path).toBe(dep);
    const topInfo = await store.addTextToStore('top', `uses ${dep}`, [dep]);
    expect(topInfo.path).toBe(top);
    expect(topInfo.narHash.toSri()).toBe(nixPathInfo(nixRoot, top).narHash);
    expect(topInfo.ca).toBe(nixPathInfo(nixRoot, top).ca);
  });

  test('text with a reference that is not valid is refused and drained', async () => {
    const store = await freshStore();
    const { source, taken } = counted(Buffer.from('x'.repeat(10000)));
    await expectRejected(
      store,
      store.addToStore(
        {
          name: 't',
          method: 'text:sha256',
          references: ['/nix/store/0000000000000000000000000000000c-missing'],
        },
        source,
      ),
      StoreErrorCode.REFERENCE_INVALID,
    );
    expect(taken()).toBe(10000);
  });

  test('flat with references is refused', async () => {
    const store = await freshStore();
    await store.addTextToStore('dep', 'dep');
    const dep = (await store.queryAll())[0]!;
    await expectRejected(
      store,
      store.addToStore({ name: 'f', method: 'fixed:sha256', references: [dep] }, chunked(Buffer.from('x'))),
      StoreErrorCode.CLAIM_INVALID,
    ).catch(() => undefined);
    expect(await stagingEntries(store)).toEqual([]);
  });
});

describe('self-referencing content-addressed paths (hash modulo)', () => {
  test('a ca-derivations output that contains its own path, built by real Nix', async () => {
    // A floating CA derivation whose output is its own path: CA hash ≠ plain NAR hash.
    const bb = join(work, 'bb');
    await mkdir(bb);
    await copyFile('/bin/busybox', join(bb, 'sh'));
    const expr = `derivation {
      name = "selfref"; system = builtins.currentSystem;
      builder = "\${builtins.path { path = ${bb}; name = "bb"; }}/sh";
      args = [ "-c" "echo $out > $out" ];
      __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256";
    }`;
    const path = execFileSync(
      'nix-build',
      [
        '--store',
        nixRoot,
        '--extra-experimental-features',
        'ca-derivations',
        '--option',
        'substituters',
        '',
        '--no-out-link',
        '-E',
        expr,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    ).trim();
    const nix = nixPathInfo(nixRoot, path);
    expect(nix.references).toEqual([path]);
    const nar = nixDump(join(nixRoot, path));
    expect(parseContentAddress(nix.ca!).hash.equals(hashOf('sha256', nar))).toBe(false);
    const store = await freshStore();
    const claim: NarClaim = {
      path,
      narHash: nix.narHash,
      narSize: nix.narSize,
      references: nix.references,
      ca: nix.ca,
    };
    const info = await store.importNar(claim, chunked(nar, 5));
    expect(info.references).toEqual([path]);
    expect(await store.queryReferrers(path)).toEqual([path]);
    // Without the self-reference the path does not match.
    const other = await freshStore();
    await expectRejected(
      other,
      other.importNar({ ...claim, references: [] }, chunked(nar)),
      StoreErrorCode.CA_MISMATCH,
      path,
    );
  });

  test('HashModulo does not depend on how the stream is split', () => {
    const modulus = '0123456789abcdfghijklmnpqrsvwxyz';
    const data = Buffer.from(`xx${modulus}yy${modulus}${modulus}z${modulus.slice(0, 20)}`);
    const whole = new HashModulo('sha256', modulus).update(data).digest();
    for (let cut = 0; cut <= data.length; cut++) {
      const split = new HashModulo('sha256', modulus)
        .update(data.subarray(0, cut))
        .update(data.subarray(cut))
        .digest();
      expect(split.equals(whole)).toBe(true);
    }
    const zeroed = Buffer.from(data.toString().split(modulus).join('\0'.repeat(32)));
    const expected = hashOf('sha256', Buffer.concat([zeroed, Buffer.from('|2|36|68')]));
    expect(whole.equals(expected)).toBe(true);
    expect(
      new HashModulo('sha256', modulus).update(Buffer.from('abc')).digest().equals(hashOf('sha256', 'abc')),
    ).toBe(true);
  });
});

describe('addToStore input checks', () => {
  test('bad name and bad method are refused, the data drained', async () => {
    const store = await freshStore();
    const { source, taken } = counted(Buffer.alloc(5000, 1));
    const err = await expectRejected(
      store,
      store.addToStore({ name: 'a/b', method: 'fixed:sha256' }, source),
      StoreErrorCode.PATH_INVALID,
    );
    expect(err.message).toMatch(/^invalid store path name 'a\/b'/);
    expect(taken()).toBe(5000);
    await expectRejected(
      store,
      store.addToStore({ name: 'ok', method: 'fixed:crc32' }, chunked(Buffer.from('x'))),
      StoreErrorCode.CLAIM_INVALID,
    );
  });
});
