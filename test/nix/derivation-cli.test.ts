/** `nixyard drv show|check` through the real dispatcher, against nix show-derivation. */
import { beforeAll, describe, expect, test } from '@jest/globals';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { loadCorpus, NIX_XP_ARGS, type Corpus } from '../support/drv-corpus.js';
import { runNix } from '../support/nix-cli.js';
import { runCli } from '../support/run-cli.js';

let corpus: Corpus;
let top: string;
let dir: string;

const nixShow = async (...args: string[]): Promise<Buffer> =>
  (await runNix('nix', [...NIX_XP_ARGS, 'show-derivation', ...args])).stdout;

beforeAll(async () => {
  corpus = await loadCorpus();
  top = corpus.roots.get('10-diamond.nix')![0]!;
  dir = mkdtempSync(join(tmpdir(), 'nixyard-drv-'));
});

describe('nixyard drv', () => {
  test('--help and bad usage', async () => {
    const help = await runCli(['drv', 'show', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.toString()).toMatch(/nixyard drv show \[--recursive\]/);
    expect((await runCli(['drv', 'frobnicate'])).code).toBe(2);
    expect((await runCli(['drv', 'show'])).code).toBe(2);
  });

  test('show: byte-identical to nix show-derivation, with and without --recursive', async () => {
    const some = corpus.drvs.slice(0, 20).map((d) => d.path);
    const ours = await runCli(['drv', 'show', ...some]);
    expect(ours.code).toBe(0);
    expect(ours.stdout.equals(await nixShow(...some))).toBe(true);
    const rec = await runCli(['drv', 'show', '-r', top]);
    expect(rec.stdout.equals(await nixShow('-r', top))).toBe(true);
  });

  test('show: a copy outside the store is keyed by the path it would have', async () => {
    const named = join(dir, basename(top));
    const plain = join(dir, 'plain-name.drv');
    copyFileSync(top, named);
    copyFileSync(top, plain);
    const expected = await nixShow(top);
    expect((await runCli(['drv', 'show', named])).stdout.equals(expected)).toBe(true);
    expect((await runCli(['drv', 'show', plain])).stdout.equals(expected)).toBe(true);
  });

  test('check: every corpus root is ok', async () => {
    for (const [, paths] of corpus.roots) {
      const r = await runCli(['drv', 'check', ...paths]);
      expect({ code: r.code, out: r.stdout.toString() }).toMatchObject({ code: 0 });
      expect(r.stdout.toString()).not.toMatch(/MISMATCH/);
    }
    const r = await runCli(['drv', 'check', top]);
    const out = /\("out","([^"]+)"/.exec(readFileSync(top, 'latin1'))![1]!;
    expect(r.stdout.toString()).toBe(`drv ${top} ok\nout:out ${out} ok\nenv:out ${out} ok\n`);
  });

  test('check: inputs next to the file or in the store; tampering is reported', async () => {
    const copy = join(dir, basename(top));
    copyFileSync(top, copy);
    expect((await runCli(['drv', 'check', copy])).code).toBe(0);

    const text = readFileSync(top, 'latin1');
    const out = /\("out","([^"]+)"/.exec(text)![1]!;
    const wrong = `${out.slice(0, 11)}${out[11] === 'a' ? 'b' : 'a'}${out.slice(12)}`;
    const tampered = join(dir, 'tampered.drv');
    writeFileSync(tampered, text.replaceAll(out, wrong), 'latin1');
    const r = await runCli(['drv', 'check', tampered]);
    expect(r.code).toBe(1);
    expect(r.stdout.toString()).toContain(`out:out ${wrong} MISMATCH: expected ${out}`);

    const misnamed = join(
      dir,
      `${basename(top).slice(0, 31)}${basename(top)[31] === 'a' ? 'b' : 'a'}${basename(top).slice(32)}`,
    );
    copyFileSync(top, misnamed);
    const m = await runCli(['drv', 'check', misnamed]);
    expect(m.code).toBe(1);
    expect(m.stdout.toString()).toContain(`MISMATCH: expected ${top}`);
  });

  test('check: a missing input derivation is a clear error', async () => {
    const text = readFileSync(top, 'latin1');
    const input = /\[\("([^"]+\.drv)"/.exec(text)![1]!;
    const gone = `${input.slice(0, 11)}${input[11] === 'a' ? 'b' : 'a'}${input.slice(12)}`;
    const file = join(dir, 'missing-input.drv');
    writeFileSync(file, text.replaceAll(input, gone), 'latin1');
    const r = await runCli(['drv', 'check', file]);
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toMatch(/input derivation '.*' not found.*ERR_NIX_DRV_INPUT_MISSING/);
  });

  test('show: a broken file is a parse error with its byte offset', async () => {
    const file = join(dir, 'broken.drv');
    writeFileSync(file, 'Derive([("out" ,');
    const r = await runCli(['drv', 'show', file]);
    expect(r.code).toBe(1);
    expect(r.stderr.toString()).toMatch(
      /broken\.drv: invalid derivation: expected ',' .* at byte 14 \[ERR_NIX_DRV_PARSE\]/,
    );
  });
});
