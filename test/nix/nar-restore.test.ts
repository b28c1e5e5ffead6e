/**
 * restoreNar's safety and failure behaviour: all or nothing, never outside `dest`,
 * never through a symlink, refuses an existing `dest`, modes like nix-store --restore.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '../../nix/errors.js';
import { encodeToken } from '../../nix/nar/format.js';
import { narOfBytes, restoreNar } from '../../nix/nar/index.js';

const nar = (...tokens: string[]): Buffer => Buffer.concat(tokens.map((t) => encodeToken(Buffer.from(t))));
const file = (contents: string): string[] => ['(', 'type', 'regular', 'contents', contents, ')'];
const entry = (name: string, node: string[]): string[] => ['entry', '(', 'name', name, 'node', ...node, ')'];
const dir = (...entries: string[][]): string[] => ['(', 'type', 'directory', ...entries.flat(), ')'];
const link = (target: string): string[] => ['(', 'type', 'symlink', 'target', target, ')'];
const M = 'nix-archive-1';

let work: string;
let outside: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'nar-restore-'));
  outside = join(work, 'outside');
  await mkdir(outside);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** `bytes` one byte at a time (worst-case chunking). */
function* bytewise(bytes: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
}

test('restores files, executables, symlinks and empty directories with nix-store modes', async () => {
  const bytes = nar(
    M,
    ...dir(
      entry('a', file('hello')),
      entry('d', dir(entry('e', dir()))),
      entry('l', link('/nonexistent')),
      entry('x', ['(', 'type', 'regular', 'executable', '', 'contents', '#!', ')']),
    ),
  );
  const dest = join(work, 'dest');
  const result = await restoreNar(bytewise(bytes), dest);
  expect(result.narSize).toBe(bytes.length);
  expect(Buffer.from(result.narHash)).toEqual(createHash('sha256').update(bytes).digest());
  const umask = process.umask();
  expect(await readFile(join(dest, 'a'), 'utf8')).toBe('hello');
  expect((await lstat(join(dest, 'a'))).mode & 0o777).toBe(0o666 & ~umask);
  expect((await lstat(join(dest, 'x'))).mode & 0o777).toBe(0o777 & ~umask);
  expect((await lstat(join(dest, 'd', 'e'))).isDirectory()).toBe(true);
  expect(await readdir(join(dest, 'd', 'e'))).toEqual([]);
  expect(await readlink(join(dest, 'l'))).toBe('/nonexistent');
});

test('a NAR whose root is a file or a symlink restores to a file or a symlink', async () => {
  await restoreNar([narOfBytes(Buffer.from('flat'))], join(work, 'f'));
  expect(await readFile(join(work, 'f'), 'utf8')).toBe('flat');
  await restoreNar([nar(M, ...link('target'))], join(work, 's'));
  expect(await readlink(join(work, 's'))).toBe('target');
});

test('refuses an existing destination and leaves it alone', async () => {
  await expect(restoreNar([narOfBytes(Buffer.from('x'))], outside)).rejects.toMatchObject({
    code: ErrorCode.NAR_UNSAFE_RESTORE,
  });
  expect((await lstat(outside)).isDirectory()).toBe(true);
});

test('a duplicate entry cannot turn a symlink into a way out of dest', async () => {
  // "a" -> outside, then "a" again as a directory holding a file: written through the link by a naive restorer.
  const bytes = nar(M, ...dir(entry('a', link(outside)), entry('a', dir(entry('evil', file('pwned'))))));
  const dest = join(work, 'dest');
  await expect(restoreNar([bytes], dest)).rejects.toMatchObject({ code: ErrorCode.NAR_UNSORTED_ENTRIES });
  expect(await readdir(outside)).toEqual([]);
  await expect(lstat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
});

test.each([
  [
    '..',
    nar(M, ...dir(entry('..', dir(entry('outside', dir(entry('evil', file('x')))))))),
    ErrorCode.NAR_BAD_ENTRY_NAME,
  ],
  ['a slash', nar(M, ...dir(entry('../outside/evil', file('x')))), ErrorCode.NAR_BAD_ENTRY_NAME],
  [
    'unsorted',
    nar(M, ...dir(entry('b', link('../outside')), entry('a', file('x')))),
    ErrorCode.NAR_UNSORTED_ENTRIES,
  ],
])('an entry named with %s writes nothing outside dest', async (_name, bytes, code) => {
  const dest = join(work, 'dest');
  await expect(restoreNar([bytes], dest)).rejects.toMatchObject({ code });
  expect(await readdir(outside)).toEqual([]);
  await expect(lstat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
});

test('on a truncated NAR or trailing data, everything created is removed', async () => {
  const full = nar(M, ...dir(entry('a', file('hello')), entry('b', dir(entry('c', file('x'.repeat(1000)))))));
  const dest = join(work, 'dest');
  await expect(restoreNar([full.subarray(0, full.length - 100)], dest)).rejects.toMatchObject({
    code: ErrorCode.NAR_TRUNCATED,
  });
  await expect(lstat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
  await expect(restoreNar([full, Buffer.from('junk')], dest)).rejects.toMatchObject({
    code: ErrorCode.NAR_TRAILING_DATA,
  });
  await expect(lstat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await readdir(work)).toEqual(['outside']);
});

test('a symlink with an empty target is refused', async () => {
  const dest = join(work, 'dest');
  await expect(restoreNar([nar(M, ...dir(entry('l', link(''))))], dest)).rejects.toMatchObject({
    code: ErrorCode.NAR_UNSAFE_RESTORE,
  });
  await expect(lstat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
});

test('the parent of dest must exist (a plain file system error)', async () => {
  await expect(
    restoreNar([narOfBytes(Buffer.from('x'))], join(work, 'missing', 'dest')),
  ).rejects.toMatchObject({
    code: 'ENOENT',
  });
});
