import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { Readable } from 'node:stream';
import { hashOf } from '../../nix/hash.js';
import { narOfBytes } from '../../nix/nar/writer.js';
import { LocalStore } from '../../store/local-store.js';
import { removeAll, tempDir } from './support.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => removeAll(dir));

test("a store opened with index 'records' sees what another store instance registers, without a reindex", async () => {
  const writer = await LocalStore.open({ dataDir: dir });
  const reader = await LocalStore.open({ dataDir: dir, index: 'records', cleanStaging: false });
  const a = '/nix/store/00000000000000000000000000000001-a';
  const b = '/nix/store/00000000000000000000000000000002-b';
  const nar = narOfBytes(Buffer.from('a'));
  await writer.importNar(
    { path: a, narHash: hashOf('sha256', nar), narSize: nar.length, references: [] },
    Readable.from([nar]),
  );
  const nar2 = narOfBytes(Buffer.from(`uses ${a}`));
  await writer.importNar(
    { path: b, narHash: hashOf('sha256', nar2), narSize: nar2.length, references: [a] },
    Readable.from([nar2]),
  );
  expect(
    [...(await reader.queryValid([a, b, '/nix/store/00000000000000000000000000000003-c']))].sort(),
  ).toEqual([a, b]);
  expect((await reader.queryPathInfo(b))?.references).toEqual([a]);
  expect(await reader.queryAll()).toEqual([a, b]);
  expect(await reader.queryReferrers(a)).toEqual([b]);
  expect(await reader.queryPathFromHashPart('00000000000000000000000000000002')).toBe(b);
  await writer.deletePath(b);
  expect(await reader.isValid(b)).toBe(false);
});
