/**
 * `nixyard drv show|check`: read .drv files (in a store or anywhere), print them like
 * `nix show-derivation`, or recompute their store path and output paths.
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { ErrorCode, NixFormatError } from '../../nix/errors.js';
import {
  checkDerivation,
  DerivationHasher,
  derivationStorePath,
  parseDerivation,
  printShowDerivation,
  type Derivation,
} from '../../nix/derivation/index.js';
import { parseStorePathBase, STORE_DIR } from '../../nix/store-path.js';
import { UsageError, type Command } from '../command.js';

const USAGE = `Usage:
  nixyard drv show [--recursive] FILE.drv...
  nixyard drv check FILE.drv...

show   Print the derivations as JSON, exactly like 'nix show-derivation' (Nix 2.8).
       A file in the store (${STORE_DIR}/…) is keyed by its path, like Nix does; a file
       elsewhere by the store path it would have (computed from its bytes), so a copy
       shows the same JSON as the original.
       -r, --recursive   also show every input derivation, recursively.
check  Recompute the .drv's own store path and every output path, print one line each
       ('drv PATH ok', 'out:NAME PATH ok', 'env:NAME PATH ok', or
       'WHAT PATH MISMATCH: expected PATH') and exit 1
       when the file disagrees: its output paths, the output paths in its env, or, for a
       file named <hash>-<name>.drv, its name.

Input derivations are read from the directory of FILE first, then from ${STORE_DIR}.
The derivation name is taken from a <hash>-<name>.drv file name, else from env.name.`;

interface LoadedDrv {
  readonly file: string;
  readonly bytes: Buffer;
  readonly drv: Derivation;
  /** The file's own store path if its name is `<hash>-<name>.drv`. */
  readonly namedPath: string | undefined;
}

function storeBase(file: string): { name: string; base: string } | undefined {
  const base = basename(file);
  if (!base.endsWith('.drv')) return undefined;
  try {
    const p = parseStorePathBase(base);
    return { name: p.name.slice(0, -'.drv'.length), base };
  } catch {
    return undefined;
  }
}

async function loadFile(file: string): Promise<LoadedDrv> {
  const bytes = await readFile(file);
  const named = storeBase(file);
  try {
    const drv = parseDerivation(bytes, named ? { name: named.name } : {});
    return { file, bytes, drv, namedPath: named && `${STORE_DIR}/${named.base}` };
  } catch (err) {
    if (err instanceof NixFormatError) {
      throw new NixFormatError(err.code, `${file}: ${err.message}`, { ...err.context, path: file });
    }
    throw err;
  }
}

/** Resolves input .drv paths next to the given files, then in the store. */
function makeLoader(dirs: readonly string[]): (drvPath: string) => Promise<LoadedDrv> {
  const cache = new Map<string, Promise<LoadedDrv>>();
  return (drvPath) => {
    let p = cache.get(drvPath);
    if (!p) {
      p = (async () => {
        const candidates = [...new Set([...dirs.map((d) => join(d, basename(drvPath))), drvPath])];
        for (const c of candidates) {
          try {
            return await loadFile(c);
          } catch (err) {
            if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
          }
        }
        throw new NixFormatError(
          ErrorCode.DRV_INPUT_MISSING,
          `input derivation '${drvPath}' not found (looked in ${candidates.join(', ')})`,
          { path: drvPath },
        );
      })();
      cache.set(drvPath, p);
    }
    return p;
  };
}

function keyOf(loaded: LoadedDrv): string {
  const abs = resolvePath(loaded.file);
  if (abs.startsWith(`${STORE_DIR}/`)) return abs;
  return derivationStorePath(loaded.drv, loaded.bytes);
}

async function show(argv: readonly string[], out: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { recursive: { type: 'boolean', short: 'r' } },
    allowPositionals: true,
  });
  if (positionals.length === 0) throw new UsageError('show needs at least one .drv file');
  const load = makeLoader(positionals.map((f) => dirname(f)));
  const entries = new Map<string, Derivation>();
  const visit = async (loaded: LoadedDrv, key: string): Promise<void> => {
    if (entries.has(key)) return;
    entries.set(key, loaded.drv);
    if (!values.recursive) return;
    for (const input of loaded.drv.inputDrvs.keys()) await visit(await load(input), input);
  };
  for (const file of positionals) {
    const loaded = await loadFile(file);
    await visit(loaded, keyOf(loaded));
  }
  const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  out.write(printShowDerivation(sorted));
  return 0;
}

async function check(argv: readonly string[], out: NodeJS.WritableStream): Promise<number> {
  const { positionals } = parseArgs({ args: [...argv], options: {}, allowPositionals: true });
  if (positionals.length === 0) throw new UsageError('check needs at least one .drv file');
  const load = makeLoader(positionals.map((f) => dirname(f)));
  const hasher = new DerivationHasher(async (p) => (await load(p)).drv);
  let failed = false;
  for (const file of positionals) {
    const loaded = await loadFile(file);
    if (positionals.length > 1) out.write(`${file}:\n`);
    const checks = await checkDerivation(loaded.drv, hasher, {
      bytes: loaded.bytes,
      ...(loaded.namedPath !== undefined ? { drvPath: loaded.namedPath } : {}),
    });
    for (const c of checks) {
      const what = c.what;
      if (c.what === 'drv' && c.actual === undefined) {
        out.write(`drv ${c.expected} ok (computed; '${file}' is not named <hash>-<name>.drv)\n`);
      } else if (c.ok) {
        out.write(`${what} ${c.actual ?? '(not known before building)'} ok\n`);
      } else {
        failed = true;
        out.write(`${what} ${c.actual ?? '(none)'} MISMATCH: expected ${c.expected ?? '(none)'}\n`);
      }
    }
  }
  return failed ? 1 : 0;
}

export const drvCommand: Command = {
  name: 'drv',
  usage: USAGE,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'show':
        return show(rest, io.stdout);
      case 'check':
        return check(rest, io.stdout);
      case undefined:
        throw new UsageError('missing subcommand (show or check)');
      default:
        throw new UsageError(`unknown subcommand '${sub}'`);
    }
  },
};
