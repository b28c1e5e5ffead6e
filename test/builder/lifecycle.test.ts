/**
 * Timeouts, cancellation and the CLI, on the `failures.nix` corpus; plus the failure
 * message against the bytes a Nix 2.8 daemon sent (fixtures/nix-2.8/build-fail).
 */
import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { jest } from '@jest/globals';
import type { LocalStore } from '../../store/local-store.js';
import { buildDrvCommand } from '../../cli/commands/build-drv.js';
import {
  BuildStatus,
  buildDerivation,
  builderFailedMessage,
  stripAnsi,
} from '../../builder-image/runner/index.js';
import { corpusCopy, drvOutputs, importClosure, instantiate, openStore } from './harness.js';

jest.setTimeout(60_000);

let store: LocalStore;
let dataDir: string;
let drvs: Map<string, string>;

beforeAll(async () => {
  const dir = await corpusCopy();
  ({ store, dataDir } = await openStore());
  drvs = await instantiate(dir, 'failures.nix');
  await importClosure(store, [drvs.get('silent')!, drvs.get('forever')!]);
});

function sleepers(): string[] {
  return execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('busybox sleep 1000'));
}

test('max-silent-time kills the build and reports TimedOut with Nix wording', async () => {
  const drvPath = drvs.get('silent')!;
  const t0 = Date.now();
  const r = await buildDerivation({ store, drvPath, settings: { maxSilentTime: 1 } });
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(r.status).toBe(BuildStatus.TimedOut);
  expect(stripAnsi(r.errorMsg)).toBe(
    `building of '${drvPath}!out' from .drv file timed out after 1 seconds of silence`,
  );
  expect(await store.queryValid([...(await drvOutputs(drvPath)).values()])).toEqual(new Set());
});

test('timeout kills a chatty build', async () => {
  const drvPath = drvs.get('forever')!;
  const r = await buildDerivation({ store, drvPath, settings: { timeout: 1 } });
  expect(r.status).toBe(BuildStatus.TimedOut);
  expect(stripAnsi(r.errorMsg)).toBe(`building of '${drvPath}!out' from .drv file timed out after 1 seconds`);
});

test('cancellation: the process tree is gone within 5 s, staging removed, nothing registered', async () => {
  const drvPath = drvs.get('forever')!;
  const controller = new AbortController();
  const lines: string[] = [];
  const p = buildDerivation({ store, drvPath, signal: controller.signal, onLogLine: (l) => lines.push(l) });
  await new Promise((r) => setTimeout(r, 1500));
  expect(lines).toContain('tick');
  expect(sleepers().length).toBeGreaterThan(0);
  const t0 = Date.now();
  controller.abort();
  const r = await p;
  expect(Date.now() - t0).toBeLessThan(5000);
  expect(r.status).toBe(BuildStatus.MiscFailure);
  await new Promise((res) => setTimeout(res, 200));
  expect(sleepers()).toEqual([]);
  expect(await readdir(store.layout.stagingDir)).toEqual([]);
  expect(await store.queryValid([...(await drvOutputs(drvPath)).values()])).toEqual(new Set());
});

test('the failure message is byte-identical to what a Nix 2.8 daemon sent', () => {
  const drv = '/nix/store/a3wk97ambvhdjv0f54a1idlhg6ap8na3-failing.drv';
  // fixtures/nix-2.8/build-fail/01-build-fail-ssh-ng/decoded.txt, errorMsg
  const expected =
    "\u001b[0mbuilder for '\u001b[35;1m/nix/store/a3wk97ambvhdjv0f54a1idlhg6ap8na3-failing.drv\u001b[0m' failed with exit code 3;\nlast 2 log lines:\n> about to fail, dep is /nix/store/6dpglil4l8z3nl10plk7yla25p207ia7-dep-a\n> some error detail on stderr\nFor full logs, run '\u001b[1mnix log /nix/store/a3wk97ambvhdjv0f54a1idlhg6ap8na3-failing.drv\u001b[0m'.";
  expect(
    builderFailedMessage(drv, 'failed with exit code 3', [
      'about to fail, dep is /nix/store/6dpglil4l8z3nl10plk7yla25p207ia7-dep-a',
      'some error detail on stderr',
    ]),
  ).toBe(expected);
});

test('nixyard build-drv: AlreadyValid is a no-op, a missing .drv is refused', async () => {
  const io = () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    return { io: { stdin: new PassThrough(), stdout, stderr }, text: () => ({ out, err }) };
  };
  const a = io();
  const missing = '/nix/store/00000000000000000000000000000000-nope.drv';
  expect(await buildDrvCommand.run([missing, '--data-dir', dataDir], a.io)).toBe(1);
  expect(a.text().err).toContain(`cannot build '${missing}': it is not a valid derivation in the store`);
});
