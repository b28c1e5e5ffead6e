/**
 * The derivation corpus: Nix expressions under test/fixtures/drv-corpus, instantiated by
 * the real nix-instantiate (nothing is built), and every .drv of their closures.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNix } from './nix-cli.js';

export const CORPUS_DIR = fileURLToPath(new URL('../fixtures/drv-corpus/', import.meta.url));

export interface CorpusDrv {
  readonly path: string;
  readonly bytes: Buffer;
  /** Corpus files whose closure has it. */
  readonly sources: readonly string[];
}

export interface Corpus {
  /** Corpus file → the .drv paths nix-instantiate printed for it. */
  readonly roots: ReadonlyMap<string, readonly string[]>;
  /** Every .drv of every closure, sorted by path. */
  readonly drvs: readonly CorpusDrv[];
}

/** The corpus .nix files (files starting with `_` are helpers). */
export function corpusFiles(): string[] {
  return readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.nix') && !f.startsWith('_'))
    .sort();
}

/** Arguments for every nix command on the corpus (32-content-addressed.nix needs them). */
export const NIX_XP_ARGS = ['--extra-experimental-features', 'ca-derivations impure-derivations'];

const lines = (b: Buffer): string[] =>
  b
    .toString('utf8')
    .split('\n')
    .filter((l) => l.length > 0);

let cached: Promise<Corpus> | undefined;

/** Instantiates the corpus once per test file (nix-instantiate is fast and idempotent). */
export function loadCorpus(): Promise<Corpus> {
  cached ??= (async () => {
    const roots = new Map<string, string[]>();
    const sources = new Map<string, string[]>();
    for (const file of corpusFiles()) {
      // `<drv>!<output>` when the default output is not `out`.
      const top = lines(
        (await runNix('nix-instantiate', [...NIX_XP_ARGS, join(CORPUS_DIR, file)])).stdout,
      ).map((l) => l.split('!')[0] ?? l);
      roots.set(file, top);
      const closure = lines((await runNix('nix-store', [...NIX_XP_ARGS, '-qR', ...top])).stdout).filter((p) =>
        p.endsWith('.drv'),
      );
      for (const p of closure) sources.set(p, [...(sources.get(p) ?? []), file]);
    }
    const drvs = [...sources.keys()]
      .sort()
      .map((path) => ({ path, bytes: readFileSync(path), sources: sources.get(path) ?? [] }));
    return { roots, drvs };
  })();
  return cached;
}
