/**
 * `builtins.toFile` paths: text paths (makeTextPath) with the string context of the text as
 * references, compared with what nix-instantiate --eval computes (_to-file.nix). The
 * referenced .drv files are instantiated too, so that we can recompute their paths.
 */
import { beforeAll, describe, expect, test } from '@jest/globals';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { derivationStorePath, parseDerivation } from '../../nix/derivation/index.js';
import { hashOf } from '../../nix/hash.js';
import { makeTextPath } from '../../nix/store-path.js';
import { CORPUS_DIR } from '../support/drv-corpus.js';
import { runNix } from '../support/nix-cli.js';

interface ToFileCase {
  readonly name: string;
  readonly text: string;
  readonly path: string;
  readonly refs: readonly string[];
}

let cases: ToFileCase[];

beforeAll(async () => {
  const { stdout } = await runNix('nix-instantiate', [
    '--eval',
    '--strict',
    '--json',
    join(CORPUS_DIR, '_to-file.nix'),
    '-A',
    'cases',
  ]);
  await runNix('nix-instantiate', [join(CORPUS_DIR, '_to-file.nix'), '-A', 'deps']);
  cases = JSON.parse(stdout.toString('utf8')) as ToFileCase[];
});

describe('builtins.toFile paths vs nix-instantiate', () => {
  test('there are cases with and without references', () => {
    expect(cases.filter((c) => c.refs.length === 0).length).toBeGreaterThanOrEqual(3);
    expect(cases.filter((c) => c.refs.some((r) => r.endsWith('.drv'))).length).toBeGreaterThanOrEqual(2);
  });

  test('makeTextPath(name, sha256(text), refs) is the path Nix computed', () => {
    for (const c of cases) {
      expect({
        name: c.name,
        path: makeTextPath(c.name, hashOf('sha256', Buffer.from(c.text, 'utf8')), c.refs),
      }).toEqual({
        name: c.name,
        path: c.path,
      });
    }
  });

  test('references order does not matter (they are sorted)', () => {
    const c = cases.find((x) => x.refs.length > 1)!;
    expect(makeTextPath(c.name, hashOf('sha256', c.text), [...c.refs].reverse())).toBe(c.path);
  });

  test('referenced .drv files have the path we compute for them', () => {
    for (const ref of cases.flatMap((c) => c.refs).filter((r) => r.endsWith('.drv'))) {
      const bytes = readFileSync(ref);
      expect(derivationStorePath(parseDerivation(bytes), bytes)).toBe(ref);
    }
  });

  test('the files Nix wrote hold the text', () => {
    for (const c of cases.filter((x) => existsSync(x.path)))
      expect(readFileSync(c.path, 'utf8')).toBe(c.text);
  });
});
