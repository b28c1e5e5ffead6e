import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNix } from '../support/nix-cli.js';
import { runCli } from '../support/run-cli.js';

// Paths are fixed at load time because the test tables below name them.
const dir = mkdtempSync(join(tmpdir(), 'nixyard-cli-'));
const tree = join(dir, 'tree');
const file = join(dir, 'hello.txt');

beforeAll(async () => {
  await mkdir(join(tree, 'sub'), { recursive: true });
  await writeFile(join(tree, 'sub', 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await symlink('sub/run.sh', join(tree, 'link'));
  await writeFile(file, 'hello\n');
});

afterAll(() => rm(dir, { recursive: true, force: true }));

async function nixOut(cmd: string, args: string[]): Promise<string> {
  return (await runNix(cmd, args)).stdout.toString();
}

describe('nixyard hash', () => {
  test.each([
    [
      ['path', tree],
      ['hash', 'path', tree],
    ],
    [
      ['path', '--type', 'sha1', '--base16', tree],
      ['hash', 'path', '--type', 'sha1', '--base16', tree],
    ],
    [
      ['file', '--base32', file],
      ['hash', 'file', '--base32', file],
    ],
    [
      ['file', '--type', 'md5', '--base64', file],
      ['hash', 'file', '--type', 'md5', '--base64', file],
    ],
    [
      ['file', '--type', 'sha512', '--sri', file],
      ['hash', 'file', '--type', 'sha512', '--sri', file],
    ],
  ])('nixyard hash %j prints what nix prints', async (ours, theirs) => {
    const r = await runCli(['hash', ...ours]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe(await nixOut('nix', theirs));
  });

  test('refuses two encodings and unknown algorithms', async () => {
    expect((await runCli(['hash', 'path', '--base16', '--base32', tree])).code).toBe(2);
    const r = await runCli(['hash', 'path', '--type', 'sha3', tree]);
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toContain("unknown hash algorithm 'sha3'");
  });

  test('a missing file is an error, not a crash', async () => {
    const r = await runCli(['hash', 'file', join(dir, 'nope')]);
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toContain('ENOENT');
  });
});

describe('nixyard store-path add', () => {
  test.each([
    [[tree], ['--add', tree]],
    [
      ['--type', 'sha256', file],
      ['--add-fixed', 'sha256', file],
    ],
    [
      ['--type', 'sha1', file],
      ['--add-fixed', 'sha1', file],
    ],
    [
      ['--recursive', '--type', 'sha512', tree],
      ['--add-fixed', '--recursive', 'sha512', tree],
    ],
    [
      ['--recursive', '--type', 'sha256', file],
      ['--add-fixed', '--recursive', 'sha256', file],
    ],
  ])('store-path add %j equals nix-store %j', async (ours, theirs) => {
    const r = await runCli(['store-path', 'add', ...ours]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe(await nixOut('nix-store', ['--store', join(dir, 'chroot'), ...theirs]));
  });

  test('--name renames, and a bad name is refused', async () => {
    const r = await runCli(['store-path', 'add', '--name', 'other', file]);
    expect(r.stdout.toString()).toMatch(/^\/nix\/store\/[0-9a-z]{32}-other\n$/);
    const bad = await runCli(['store-path', 'add', '--name', 'a b', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.toString()).toContain('invalid store path name');
  });

  test('--flat and --recursive together is a usage error', async () => {
    expect((await runCli(['store-path', 'add', '--flat', '--recursive', file])).code).toBe(2);
  });
});

test('nixyard --help lists every command', async () => {
  const r = await runCli(['--help']);
  expect(r.code).toBe(0);
  for (const c of ['nar', 'hash', 'store-path', 'drv']) expect(r.stdout.toString()).toContain(`  ${c} `);
});
