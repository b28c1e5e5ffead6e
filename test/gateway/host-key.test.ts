/** The host key: generated once, kept, and the same for replicas that start together. */
import { afterEach, expect, test } from '@jest/globals';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateHostKey } from '../../gateway/host-key.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('generated on first start (0600, with its .pub), the same key on the next', async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixyard-hostkey-'));
  const file = join(dir, 'keys', 'ssh_host_ed25519_key');
  const first = await loadOrCreateHostKey(file);
  expect(first.generated).toBe(true);
  expect(first.publicKey).toMatch(/^ssh-ed25519 [A-Za-z0-9+/]+=*$/);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  const again = await loadOrCreateHostKey(file);
  expect(again).toMatchObject({ generated: false, publicKey: first.publicKey });
});

test('ten replicas starting at once on one volume: one key, generated once, no temp files left', async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixyard-hostkey-'));
  const file = join(dir, 'ssh_host_ed25519_key');
  const keys = await Promise.all(Array.from({ length: 10 }, () => loadOrCreateHostKey(file)));
  expect(new Set(keys.map((k) => k.publicKey)).size).toBe(1);
  expect(keys.filter((k) => k.generated)).toHaveLength(1);
  expect((await readdir(dir)).sort()).toEqual(['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
});

test('every first start gets a key it can read (ssh2 generates a few it cannot parse)', async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixyard-hostkey-'));
  // About 1 in 300 of ssh2's ed25519 keys are refused by its own parser: 400 starts would
  // meet one about three times in four without the check.
  for (let i = 0; i < 400; i++) {
    const key = await loadOrCreateHostKey(join(dir, `key-${i}`));
    expect(key.generated).toBe(true);
  }
});
