/**
 * Builds through the gateway, replayed from the recorded Nix 2.8 scenarios build-dag,
 * build-fail, build-remote-eval and nix-store-realise: the real nix client over the real
 * OpenSSH client against our gateway, whose builds run as `nixyard build-drv` children in
 * bwrap. Every comparison is with the scenario's `client-output.txt` (store URL replaced
 * by ours); the outputs are compared with a local `nix-build` of the same derivations.
 *
 * The gateway runs with `--max-jobs 1`, the recorded daemon's (Nix's default) max-jobs:
 * which derivations are started before a failure stops the rest, and the order of the
 * "building" lines, depend on it.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdir, rm } from 'node:fs/promises';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import {
  buildLocally,
  makeWorkDir,
  replay,
  runOk,
  type ReplayOptions,
  closureFacts,
} from '../support/scenario.js';

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });

beforeAll(async () => {
  work = await makeWorkDir();
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Each scenario's remote store started empty: a fresh gateway per scenario. */
function freshGateway(): void {
  beforeAll(async () => {
    h = await startStoreGateway(['--max-jobs', '1']);
  }, 60_000);
  afterAll(async () => {
    await h.stop();
  });
}

async function expectReplay(scenario: string, label: string, options: ReplayOptions = {}): Promise<string> {
  const r = await replay(h, work, scenario, label, options);
  expect(r.actual).toEqual(r.expected);
  return r.actual.output;
}

/** The gateway built `out` (and its closure) exactly as the local nix-build did. */
async function expectSameAsLocal(out: string, attr: string, salt: string): Promise<void> {
  expect(await buildLocally(opts(), attr, salt)).toBe(out);
  const local = await closureFacts([out], opts());
  expect(local.length).toBeGreaterThan(1);
  expect(await closureFacts([out], opts(), h.storeUrl)).toEqual(local);
}

async function expectStagingEmpty(): Promise<void> {
  expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
}

describe('build-dag', () => {
  freshGateway();
  const TOP = '/nix/store/dczwm8rvskykby24x4nb8xkczxcrbzh9-top';

  test('build: nix build --eval-store auto -L --json, logs in order, outputs as a local build', async () => {
    await expectReplay('build-dag', 'build');
    await expectSameAsLocal(TOP, 'top', 'dag');
    await expectStagingEmpty();
  });

  test('build-again: everything valid, nothing built', async () => {
    await expectReplay('build-dag', 'build-again');
  });
});

describe('build-fail', () => {
  freshGateway();
  test('build-fail: PermanentFailure with the last log lines, exit 1', async () => {
    await expectReplay('build-fail', 'build-fail');
    expect(await h.store.isValid('/nix/store/6dpglil4l8z3nl10plk7yla25p207ia7-dep-a')).toBe(true);
  });

  test('build-fail-keep-going: ssh-ng sends no keep-going, the first failure stops the rest', async () => {
    await expectReplay('build-fail', 'build-fail-keep-going');
    // dep-a and fixed-hello were built before failing; multi, logger and top never started.
    expect(await h.store.isValid('/nix/store/nam6m6y5v2ax9rhq82sr1bsxp5zash1c-dep-a')).toBe(true);
    await expectStagingEmpty();
  });
});

describe('build-remote-eval', () => {
  freshGateway();
  test('nix build --store ssh-ng:// without --eval-store: the .drvs are written with AddToStore', async () => {
    await expectReplay('build-remote-eval', 'build-no-eval-store');
    await expectSameAsLocal('/nix/store/5ppjqwzv92v22ibnhfkzjwc2pdpgfdj8-top', 'top', 'reval');
  });
});

describe('nix-store-realise', () => {
  freshGateway();
  const TOP_DRV = '/nix/store/cbywrjj0n25qms92z625ivnss2j9jaln-top.drv';

  test('copy-drv, realise, realise-again, realise --dry-run', async () => {
    const drv = await runOk(
      ['nix-instantiate', 'dag.nix', '-A', 'top', '--argstr', 'salt', 'realise'],
      opts(),
    );
    expect(drv.trim().split('\n').at(-1)).toBe(TOP_DRV);
    await expectReplay('nix-store-realise', 'copy-drv');
    await expectReplay('nix-store-realise', 'realise');
    await expectReplay('nix-store-realise', 'realise-again');
    await expectReplay('nix-store-realise', 'realise-dry-run');
    await expectSameAsLocal('/nix/store/f9njxdrkpmj4fic0ldqcpamia52lh1bs-top', 'top', 'realise');
  });
});
