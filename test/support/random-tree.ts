/**
 * Random file trees for NAR tests: `makeRandomTree(path, rng)` creates `path` (which
 * must not exist) as a varied tree of directories, files and symlinks, all decided by
 * the seeded `rng`, so a failing tree can be rebuilt from its seed.
 *
 * What it produces: files of 0 bytes, small, over 64 KiB and now and then ~1 MiB;
 * executables (and odd modes such as 0700 or 0744); symlinks that are relative,
 * absolute, dangling or pointing at siblings; empty directories; deep chains; names
 * with unicode, spaces, quotes, newlines, tabs, leading dashes and dots, non-UTF-8
 * bytes, and 255-byte names. Sometimes the root itself is a single file or symlink.
 */
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import type { Rng } from './rng.js';

export interface RandomTreeOptions {
  /** Deepest nesting of ordinary directories (default 5); deep chains go further. */
  readonly maxDepth?: number;
  /** Most entries per directory (default 8). */
  readonly maxEntries?: number;
  /** Budget of nodes for the whole tree (default 60). */
  readonly maxNodes?: number;
  /** Budget of file bytes for the whole tree (default 2.5 MiB). */
  readonly maxBytes?: number;
  /** What the root is; `random` (default) is mostly a directory. */
  readonly root?: 'random' | 'directory' | 'file' | 'symlink';
}

export interface RandomTreeStats {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
  maxDepth: number;
}

const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=';
const ODD_NAMES = [
  ' space',
  'two words',
  "quote'single",
  'quote"double',
  'new\nline',
  'tab\there',
  '-leading-dash',
  '--',
  '.hidden',
  '...',
  '..x',
  'back\\slash',
  'star*?',
  '$HOME',
  'é-accent',
  '日本語',
  '😀emoji',
  'A',
  'a',
  'Z',
  '~',
  '#',
];

export async function makeRandomTree(
  path: string | Buffer,
  rng: Rng,
  options: RandomTreeOptions = {},
): Promise<RandomTreeStats> {
  const maker = new TreeMaker(rng, {
    maxDepth: options.maxDepth ?? 5,
    maxEntries: options.maxEntries ?? 8,
    maxNodes: options.maxNodes ?? 60,
    maxBytes: options.maxBytes ?? 2.5 * 1024 * 1024,
  });
  const root = Buffer.from(path);
  let kind = options.root ?? 'random';
  if (kind === 'random') {
    const r = rng.next();
    kind = r < 0.08 ? 'file' : r < 0.12 ? 'symlink' : 'directory';
  }
  if (kind === 'file') await maker.file(root);
  else if (kind === 'symlink') await maker.symlink(root);
  else await maker.directory(root, 0);
  return maker.stats;
}

class TreeMaker {
  readonly stats: RandomTreeStats = { files: 0, directories: 0, symlinks: 0, bytes: 0, maxDepth: 0 };
  private nodes = 0;

  constructor(
    private readonly rng: Rng,
    private readonly limits: { maxDepth: number; maxEntries: number; maxNodes: number; maxBytes: number },
  ) {}

  async directory(path: Buffer, depth: number): Promise<void> {
    await mkdir(path);
    this.nodes++;
    this.stats.directories++;
    this.stats.maxDepth = Math.max(this.stats.maxDepth, depth);
    const rng = this.rng;
    if (depth >= this.limits.maxDepth || rng.bool(0.1)) return; // empty or leaf directory
    const count = rng.int(1, this.limits.maxEntries + 1);
    const used = new Set<string>();
    for (let i = 0; i < count && this.nodes < this.limits.maxNodes; i++) {
      const name = this.name(used);
      const child = Buffer.concat([path, Buffer.from('/'), name]);
      const r = rng.next();
      if (r < 0.5) await this.file(child);
      else if (r < 0.68)
        await this.symlink(
          child,
          [...used].map((hex) => Buffer.from(hex, 'hex')),
        );
      else if (r < 0.7) await this.chain(child, depth + 1);
      else await this.directory(child, depth + 1);
    }
  }

  /** A chain of 10–40 nested directories ending in a file. */
  private async chain(path: Buffer, depth: number): Promise<void> {
    const length = this.rng.int(10, 41);
    let current = path;
    for (let i = 0; i < length; i++) {
      await mkdir(current);
      this.stats.directories++;
      this.nodes++;
      current = Buffer.concat([current, Buffer.from(i % 2 === 0 ? '/d' : '/deeper')]);
    }
    this.stats.maxDepth = Math.max(this.stats.maxDepth, depth + length);
    await this.file(current);
  }

  async file(path: Buffer): Promise<void> {
    const rng = this.rng;
    const budget = this.limits.maxBytes - this.stats.bytes;
    const r = rng.next();
    let size =
      r < 0.15
        ? 0
        : r < 0.55
          ? rng.int(1, 100)
          : r < 0.8
            ? rng.int(100, 5000)
            : r < 0.9
              ? rng.int(5000, 65536)
              : r < 0.98
                ? rng.int(65536 - 8, 200_000)
                : rng.int(1024 * 1024 - 16, 1024 * 1024 + 16);
    if (size > budget) size = Math.max(0, Math.min(budget, rng.int(0, 100)));
    await writeFile(path, this.contents(size));
    const executable = rng.bool(0.3);
    await chmod(
      path,
      executable ? rng.pick([0o755, 0o700, 0o744, 0o711]) : rng.pick([0o644, 0o600, 0o444, 0o640]),
    );
    this.nodes++;
    this.stats.files++;
    this.stats.bytes += size;
  }

  async symlink(path: Buffer, siblings: readonly Buffer[] = []): Promise<void> {
    const rng = this.rng;
    const targets: (() => Buffer)[] = [
      () => Buffer.from('/nonexistent/dangling'),
      () => Buffer.from('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-some-path/bin/x'),
      () => Buffer.from('/'),
      () => Buffer.from('../..'),
      () => Buffer.from('.'),
      () => Buffer.from('relative/dangling target with spaces'),
      () => Buffer.from('ünïcödé/目标'),
      () => Buffer.from([0x6e, 0xff, 0xfe, 0x2f, 0x78]),
      () => Buffer.from('x'.repeat(rng.int(100, 1000))),
      () => (siblings.length > 0 ? rng.pick(siblings) : Buffer.from('missing-sibling')),
    ];
    await symlink(rng.pick(targets)(), path);
    this.nodes++;
    this.stats.symlinks++;
  }

  /** A fresh name, unique in its directory (`used` holds hex of the names so far). */
  private name(used: Set<string>): Buffer {
    for (;;) {
      const name = this.candidateName();
      const key = name.toString('hex');
      if (!used.has(key)) {
        used.add(key);
        return name;
      }
    }
  }

  private candidateName(): Buffer {
    const rng = this.rng;
    const r = rng.next();
    if (r < 0.6) {
      let s = '';
      const length = rng.int(1, 13);
      for (let i = 0; i < length; i++) s += rng.pick([...NAME_CHARS]);
      return s === '.' || s === '..' ? Buffer.from(s + '_') : Buffer.from(s);
    }
    if (r < 0.9) return Buffer.from(rng.pick(ODD_NAMES));
    if (r < 0.96) return Buffer.from([0x6e, 0x61, rng.int(0x80, 0x100), rng.int(0x80, 0x100), 0x6d]); // not UTF-8
    return Buffer.from('L'.repeat(rng.int(200, 256)));
  }

  private contents(size: number): Buffer {
    const rng = this.rng;
    if (size <= 4096 || rng.bool(0.5)) return rng.bytes(size);
    // Large files: a random block repeated (fast to make, still not all zeros).
    const block = rng.bytes(4093);
    const out = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i += block.length) block.copy(out, i, 0, Math.min(block.length, size - i));
    return out;
  }
}
