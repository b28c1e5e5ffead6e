/**
 * Proof against the real Nix 2.8 on the corpus (test/fixtures/drv-corpus): for every .drv
 * in every closure, parse→print is the identity, the computed .drv path and output paths
 * equal Nix's, and our show JSON is byte-identical to `nix show-derivation`.
 */
import { beforeAll, describe, expect, test } from '@jest/globals';
import {
  checkDerivation,
  DerivationHasher,
  derivationJson,
  derivationStorePath,
  hashPlaceholder,
  parseDerivation,
  printDerivation,
  printShowDerivation,
  toPlainJson,
  type Derivation,
} from '../../nix/derivation/index.js';
import { parseStorePath } from '../../nix/store-path.js';
import { corpusFiles, loadCorpus, NIX_XP_ARGS, type Corpus } from '../support/drv-corpus.js';
import { runNix } from '../support/nix-cli.js';

let corpus: Corpus;
const parsed = new Map<string, Derivation>();

function drvName(path: string): string {
  return parseStorePath(path).name.replace(/\.drv$/, '');
}

beforeAll(async () => {
  corpus = await loadCorpus();
  for (const d of corpus.drvs) parsed.set(d.path, parseDerivation(d.bytes, { name: drvName(d.path) }));
});

describe('derivation corpus vs nix 2.8', () => {
  test('the corpus is big enough', () => {
    expect(corpusFiles().length).toBeGreaterThanOrEqual(25);
    expect(corpus.drvs.length).toBeGreaterThanOrEqual(80);
  });

  test('parse→print reproduces every .drv byte for byte', () => {
    const bad = corpus.drvs
      .filter((d) => !printDerivation(parsed.get(d.path)!).equals(d.bytes))
      .map((d) => d.path);
    expect(bad).toEqual([]);
  });

  test('the default name (env.name or __json.name) is the name in the path', () => {
    for (const d of corpus.drvs) expect(parseDerivation(d.bytes).name).toBe(drvName(d.path));
  });

  test('the computed .drv path is the path Nix gave it', () => {
    const got = corpus.drvs.map((d) => derivationStorePath(parsed.get(d.path)!));
    expect(got).toEqual(corpus.drvs.map((d) => d.path));
  });

  test('every output path (and its env entry) is the one in the file', async () => {
    const hasher = new DerivationHasher(async (p) => {
      const drv = parsed.get(p);
      if (!drv) throw new Error(`not in corpus: ${p}`);
      return Promise.resolve(drv);
    });
    for (const d of corpus.drvs) {
      const checks = await checkDerivation(parsed.get(d.path)!, hasher, { bytes: d.bytes, drvPath: d.path });
      expect({ path: d.path, bad: checks.filter((c) => !c.ok) }).toEqual({ path: d.path, bad: [] });
      expect(checks.filter((c) => c.what.startsWith('out:')).length).toBe(parsed.get(d.path)!.outputs.size);
    }
  });

  test('output paths equal nix-store -q --outputs', async () => {
    // Floating CA, deferred and impure outputs have no path before building (32-content-addressed.nix).
    const known = corpus.drvs.filter((d) =>
      [...parsed.get(d.path)!.outputs.values()].every(
        (o) => o.kind === 'inputAddressed' || o.kind === 'fixed',
      ),
    );
    expect(corpus.drvs.length - known.length).toBe(3);
    for (const d of known) {
      const nixOuts = (await runNix('nix-store', [...NIX_XP_ARGS, '-q', '--outputs', d.path])).stdout
        .toString()
        .split('\n')
        .filter(Boolean);
      const ours = [...parsed.get(d.path)!.outputs.values()].map((o) => ('path' in o ? o.path : ''));
      expect(ours.sort()).toEqual(nixOuts.sort());
    }
  });

  test('floating outputs: env holds hashPlaceholder; dependents are deferred', async () => {
    const floating = corpus.drvs.map((d) => parsed.get(d.path)!).find((d) => d.name === 'floating')!;
    for (const o of ['out', 'dev']) expect(floating.env.get(o)).toBe(hashPlaceholder(o));
    const deferred = corpus.drvs.map((d) => parsed.get(d.path)!).find((d) => d.name === 'deferred')!;
    const hasher = new DerivationHasher((p) => Promise.resolve(parsed.get(p)!));
    expect((await hasher.hashModulo(deferred, true)).kind).toBe('deferred');
    expect((await hasher.hashModulo(floating, true)).kind).toBe('deferred');
  });

  test('show JSON equals nix show-derivation, byte for byte and deep-equal', async () => {
    const paths = corpus.drvs.map((d) => d.path);
    const nix = (await runNix('nix', [...NIX_XP_ARGS, 'show-derivation', ...paths])).stdout;
    const ours = printShowDerivation(paths.map((p) => [p, parsed.get(p)!] as const));
    // Deep-equal first: a readable diff if something is off.
    const nixJson = JSON.parse(nix.toString('utf8')) as Record<string, unknown>;
    for (const p of paths) {
      if (p.includes('bad-utf8')) continue; // invalid UTF-8 does not survive JSON.parse on both sides alike
      expect(toPlainJson(derivationJson(parsed.get(p)!))).toEqual(nixJson[p]);
    }
    expect(Object.keys(nixJson)).toEqual(paths);
    expect(ours.equals(nix)).toBe(true);
  });
});
