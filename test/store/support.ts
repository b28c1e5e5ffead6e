/** Helpers of the store tests: temp dirs, small trees, and the real `nix-store`. */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStore } from '../../store/local-store.js';
import type { NarClaim } from '../../store/staging.js';

export async function tempDir(prefix = 'nixyard-store-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeAll(dir: string): Promise<void> {
  execFileSync('chmod', ['-R', 'u+w', dir]);
  await rm(dir, { recursive: true, force: true });
}

/** A small tree: a file, an executable, a symlink, a subdirectory, an empty directory. */
export async function makeTree(dir: string, salt = ''): Promise<string> {
  await mkdir(join(dir, 'sub', 'empty'), { recursive: true });
  await writeFile(join(dir, 'hello.txt'), `hello world${salt}\n`);
  await writeFile(join(dir, 'sub', 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(dir, 'sub', 'run.sh'), 0o755);
  await symlink('../hello.txt', join(dir, 'sub', 'link'));
  await writeFile(join(dir, 'big.bin'), Buffer.alloc(200_000, 7));
  return dir;
}

/** The NAR of `path` made by the real `nix-store --dump`. */
export function nixDump(path: string): Buffer {
  return execFileSync('nix-store', ['--dump', path], { maxBuffer: 64 << 20 });
}

/**
 * A throwaway real Nix store (chroot store under `root`), for `nix-store --add` and
 * friends; returns the printed store path.
 */
export function nixStore(root: string, args: string[]): string {
  return execFileSync('nix-store', ['--store', root, ...args], { encoding: 'utf8' }).trim();
}

export interface NixPathInfo {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  ca?: string;
}

export function nixPathInfo(root: string, path: string): NixPathInfo {
  const out = execFileSync(
    'nix',
    ['--extra-experimental-features', 'nix-command', 'path-info', '--store', root, '--json', path],
    { encoding: 'utf8' },
  );
  return (JSON.parse(out) as NixPathInfo[])[0]!;
}

export function nixEval(root: string, expr: string): string {
  const out = execFileSync('nix-instantiate', ['--store', root, '--eval', '--read-write-mode', '-E', expr], {
    encoding: 'utf8',
  });
  return JSON.parse(out) as string;
}

/** Yields `bytes` in chunks of `size`, letting the event loop run between chunks. */
export async function* chunked(bytes: Uint8Array, size = 4096): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) {
    await new Promise((r) => setImmediate(r));
    yield bytes.subarray(i, i + size);
  }
}

/** Like `chunked`, but records how many bytes the consumer took. */
export function counted(
  bytes: Uint8Array,
  size = 4096,
): { source: AsyncGenerator<Uint8Array>; taken: () => number } {
  let taken = 0;
  async function* gen(): AsyncGenerator<Uint8Array> {
    for await (const c of chunked(bytes, size)) {
      taken += c.length;
      yield c;
    }
  }
  return { source: gen(), taken: () => taken };
}

export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source) parts.push(c);
  return Buffer.concat(parts);
}

/** Everything under the store's staging directory (should be empty between imports). */
export async function stagingEntries(store: LocalStore): Promise<string[]> {
  return readdir(store.layout.stagingDir);
}

export interface AddedTree {
  /** Root of the chroot store real nix added the tree to. */
  readonly nixRoot: string;
  readonly path: string;
  /** `nix-store --dump` of the tree. */
  readonly nar: Buffer;
  /** The claim that imports it, from real nix's path info. */
  readonly claim: NarClaim;
}

/** A tree made by `makeTree` under `work`, added by real `nix-store --add` to a chroot store. */
export async function addTreeWithNix(work: string): Promise<AddedTree> {
  const nixRoot = join(work, 'nix');
  const tree = await makeTree(join(work, 'tree'));
  const path = nixStore(nixRoot, ['--add', tree]);
  const info = nixPathInfo(nixRoot, path);
  return {
    nixRoot,
    path,
    nar: nixDump(tree),
    claim: { path, narHash: info.narHash, narSize: info.narSize, references: [], ca: info.ca },
  };
}
