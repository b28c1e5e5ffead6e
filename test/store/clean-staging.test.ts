import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { mkdir, readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalStore } from '../../store/local-store.js';
import { removeAll, tempDir } from './support.js';

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(() => removeAll(dir));

test('opening with { olderThanMs } removes only stale staging; the default removes all', async () => {
  const store = await LocalStore.open({ dataDir: dir });
  const staging = store.layout.stagingDir;
  await mkdir(join(staging, 'stale'));
  await mkdir(join(staging, 'fresh'));
  const old = new Date(Date.now() - 7 * 3600 * 1000);
  await utimes(join(staging, 'stale'), old, old);

  await LocalStore.open({ dataDir: dir, cleanStaging: { olderThanMs: 6 * 3600 * 1000 } });
  expect(await readdir(staging)).toEqual(['fresh']);

  await LocalStore.open({ dataDir: dir, cleanStaging: false });
  expect(await readdir(staging)).toEqual(['fresh']);

  await LocalStore.open({ dataDir: dir });
  expect(await readdir(staging)).toEqual([]);
});
