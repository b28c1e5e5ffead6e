import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { hashOf } from '../../nix/hash.js';
import { narOfBytes } from '../../nix/nar/writer.js';
import { LocalStore } from '../../store/local-store.js';
import { closureWithOutputs } from '../../gateway/worker/derivations.js';

let dir: string;
let store: LocalStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixyard-closure-'));
  store = await LocalStore.open({ dataDir: join(dir, 'data') });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function importBytes(path: string, contents: string, references: string[] = []): Promise<void> {
  const nar = narOfBytes(Buffer.from(contents));
  await store.importNar(
    { path, narHash: hashOf('sha256', nar), narSize: nar.length, references },
    Readable.from([nar]),
  );
}

test('a .drv brings its valid outputs and their closures; without the flag it does not', async () => {
  const dep = '/nix/store/00000000000000000000000000000001-dep';
  const out = '/nix/store/00000000000000000000000000000002-thing';
  const missing = '/nix/store/00000000000000000000000000000003-thing-dev';
  await importBytes(dep, 'dep');
  await importBytes(out, `uses ${dep}`, [dep]);
  const aterm =
    `Derive([("dev","${missing}","",""),("out","${out}","","")],[],[],"x86_64-linux","/bin/sh",[],` +
    `[("dev","${missing}"),("name","thing"),("out","${out}")])`;
  const drv = (await store.addTextToStore('thing.drv', aterm)).path;

  expect([...(await store.queryClosure([drv]))]).toEqual([drv]);
  expect([...(await closureWithOutputs(store, [drv]))].sort()).toEqual([dep, out, drv].sort());
});
