/**
 * The corpus (test/fixtures/builds/*.nix) built twice: by real Nix 2.8 (`sandbox =
 * true`) and by our runner. Where Nix succeeds, every output must have the same NAR
 * hash, NAR size and references; where Nix fails, ours must fail with the same status
 * kind and the same message as `nix-store -r` prints it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalStore } from '../../store/local-store.js';
import { BuildStatus, stripAnsi, type BuildOutcome } from '../../builder-image/runner/index.js';
import {
  asNixPrints,
  corpusCopy,
  drvOutputs,
  importClosure,
  instantiate,
  makeBuilder,
  nixRealise,
  openStore,
  pathInfos,
  validPaths,
} from './harness.js';

import { jest } from '@jest/globals';

jest.setTimeout(240_000);

/** Attrs expected to fail, with the status; `firstLine`: compare only the message's first line. */
const FAILURES: Record<string, { status: number; firstLine?: boolean; nix?: false }> = {
  'allowed-fail': { status: BuildStatus.OutputRejected },
  'allowed-self-fail': { status: BuildStatus.OutputRejected },
  'requisites-fail': { status: BuildStatus.OutputRejected },
  'disallowed-fail': { status: BuildStatus.OutputRejected },
  'disreq-fail': { status: BuildStatus.OutputRejected },
  'structured-self-fail': { status: BuildStatus.OutputRejected },
  'structured-size-fail': { status: BuildStatus.OutputRejected },
  'fod-flat-bad': { status: BuildStatus.OutputRejected },
  'fod-rec-bad': { status: BuildStatus.OutputRejected },
  'fod-flat-exec': { status: BuildStatus.OutputRejected },
  fail: { status: BuildStatus.PermanentFailure },
  'fail-quiet': { status: BuildStatus.PermanentFailure },
  noout: { status: BuildStatus.OutputRejected },
  'noout-second': { status: BuildStatus.OutputRejected },
  'not-executable': { status: BuildStatus.PermanentFailure, firstLine: true },
  // Nix 2.8 aborts on a fixed output with references; we fail cleanly.
  'fod-ref': { status: BuildStatus.OutputRejected, nix: false },
};
/**
 * Known differences from Nix: bwrap's `/dev` has `console` and `core` and no `kvm`, so
 * the `identity` output (which lists /dev) differs in that file only.
 */
const KNOWN_DIFFERENT_FILES: Record<string, string[]> = { identity: ['dev'] };
/** Built by the timeout/cancel tests instead. */
const SKIP = new Set(['silent', 'forever']);

interface Case {
  readonly file: string;
  readonly attr: string;
  readonly drvPath: string;
}

let store: LocalStore;
const cases: Case[] = [];
const ours = new Map<string, BuildOutcome>();
let nixStderr = '';
const stats = { identicalOutputs: 0, messages: 0 };

beforeAll(async () => {
  process.env.NIXYARD_IMPURE_TEST = 'hello';
  const dir = await corpusCopy();
  ({ store } = await openStore());
  for (const file of ['sandbox.nix', 'outputs.nix', 'checks.nix', 'failures.nix']) {
    for (const [attr, drvPath] of await instantiate(dir, file)) {
      if (!SKIP.has(attr)) cases.push({ file, attr, drvPath });
    }
  }
  await importClosure(
    store,
    cases.map((c) => c.drvPath),
  );
  const forNix = cases.filter((c) => FAILURES[c.attr]?.nix !== false).map((c) => c.drvPath);
  const [stderr] = await Promise.all([
    nixRealise(forNix),
    (async () => {
      const build = makeBuilder(store, { hostEnv: { NIXYARD_IMPURE_TEST: 'hello' } });
      for (const c of cases) ours.set(c.attr, await build(c.drvPath));
    })(),
  ]);
  nixStderr = stderr;
});

afterAll(() => {
  console.log(
    `corpus: ${cases.length} derivations, ${stats.identicalOutputs} outputs identical to Nix, ${stats.messages} failure messages identical`,
  );
});

test('the corpus has at least 25 derivations', () => {
  expect(cases.length).toBeGreaterThanOrEqual(25);
});

describe.each(['sandbox.nix', 'outputs.nix', 'checks.nix', 'failures.nix'])('%s', (file) => {
  test('every derivation builds like Nix', async () => {
    const mine = cases.filter((c) => c.file === file);
    expect(mine.length).toBeGreaterThan(0);
    for (const c of mine) {
      const result = ours.get(c.attr)!;
      const expected = FAILURES[c.attr];
      const outs = await drvOutputs(c.drvPath);
      if (expected === undefined && KNOWN_DIFFERENT_FILES[c.attr] !== undefined) {
        expect(result.status).toBe(BuildStatus.Built);
      } else if (expected === undefined) {
        expect({ attr: c.attr, status: result.status, msg: stripAnsi(result.errorMsg) }).toEqual({
          attr: c.attr,
          status: BuildStatus.Built,
          msg: '',
        });
        const nixInfos = await pathInfos([...outs.values()]);
        for (const [name, p] of outs) {
          const mineInfo = await store.queryPathInfo(p);
          const theirs = nixInfos.get(p)!;
          expect({
            attr: c.attr,
            name,
            narHash: mineInfo?.narHash.toTyped('base16'),
            narSize: mineInfo?.narSize,
            references: mineInfo?.references,
          }).toEqual({
            attr: c.attr,
            name,
            narHash: theirs.narHash,
            narSize: theirs.narSize,
            references: [...theirs.references].sort(),
          });
          expect(mineInfo?.deriver).toBe(c.drvPath);
          expect(mineInfo?.ultimate).toBe(true);
          stats.identicalOutputs++;
        }
      } else {
        expect({ attr: c.attr, status: result.status }).toEqual({ attr: c.attr, status: expected.status });
        expect(result.errorMsg).not.toBe('');
        // Nothing of a failed build is valid (a fixed-output mismatch registers the produced path, as Nix 2.8).
        const valid = await store.queryValid([...outs.values()]);
        expect({ attr: c.attr, valid: [...valid] }).toEqual({ attr: c.attr, valid: [] });
        if (expected.nix !== false) {
          expect(await validPaths([...outs.values()])).toEqual(new Set());
          let printed = asNixPrints(stripAnsi(result.errorMsg));
          if (expected.firstLine) printed = printed.split('\n')[0]!;
          // Local nix-store shows build logs itself, so it leaves out the log tail (see result.test.ts).
          if (expected.status === BuildStatus.PermanentFailure) printed = printed.split(';')[0]!;
          expect({ attr: c.attr, inNixOutput: nixStderr.includes(printed), printed }).toEqual({
            attr: c.attr,
            inNixOutput: true,
            printed,
          });
          stats.messages++;
        }
      }
    }
  });
});

test('env dumps, build dir listings and structured attrs are byte-identical to Nix', async () => {
  for (const attr of ['envdump-plain', 'envdump-structured', 'identity', 'setuid', 'pid1']) {
    const c = cases.find((x) => x.attr === attr)!;
    for (const p of (await drvOutputs(c.drvPath)).values()) {
      const mine = store.layout.contentPath(p);
      const { readdir } = await import('node:fs/promises');
      const st = await import('node:fs/promises').then((m) => m.lstat(mine));
      const files = st.isDirectory() ? await readdir(mine) : [''];
      for (const f of files) {
        if (KNOWN_DIFFERENT_FILES[attr]?.includes(f)) continue;
        expect({ attr, f, text: (await readFile(join(mine, f))).toString() }).toEqual({
          attr,
          f,
          text: (await readFile(join(p, f))).toString(),
        });
      }
    }
  }
});

test('a fixed-output hash mismatch registers the produced path, as Nix 2.8 does', () => {
  const r = ours.get('fod-flat-bad')!;
  expect(r.hashMismatch).toBe(true);
  expect(stripAnsi(r.errorMsg)).toMatch(
    /^hash mismatch in fixed-output derivation '.*':\n {2}specified: sha256-.*\n {5}got: {4}sha256-/,
  );
});

test('stray paths written to /nix/store never become valid', async () => {
  expect(ours.get('stray')!.status).toBe(BuildStatus.Built);
  expect(await store.queryValid(['/nix/store/00000000000000000000000000000000-stray'])).toEqual(new Set());
});

test('log lines: \\r overwrites, @nix lines are left out, the last partial line counts', () => {
  const msg = stripAnsi(ours.get('fail')!.errorMsg);
  expect(msg).toContain('last 10 log lines:\n');
  expect(msg).toContain('> XYcdef\n');
  expect(msg).toContain('> no newline at the end\n');
  expect(msg).not.toContain('@nix');
});
