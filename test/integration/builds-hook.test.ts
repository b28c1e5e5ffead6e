/**
 * The gateway as a remote builder of the Nix 2.8 build hook (recorded scenario
 * ssh-ng-builder): `nix-build --max-jobs 0 --builders 'ssh-ng://gateway x86_64-linux'`
 * sends each derivation with BuildDerivation (a BasicDerivation, inputs as sources) and
 * copies the outputs back with QueryPathInfo + NarFromPath. `NIX_SSHOPTS` reaches the hook.
 *
 * The hook builds into the machine's /nix/store, so the scenario's outputs are deleted
 * from it first (they are unique to the salt `ngbuilder`); fixed-hello, which the
 * recording had locally, is built locally first.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdir, rm } from 'node:fs/promises';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import {
  buildLocally,
  makeWorkDir,
  replay,
  runOk,
  closureFacts,
  forgetLocally,
} from '../support/scenario.js';

const SCENARIO = 'ssh-ng-builder';
const FIXED_HELLO = '/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello';
const TOP = '/nix/store/hchnkz2270pk328sa68qsygpl18d48n1-top';
/** What the hook builds remotely, referrers first (as `nix-store --delete` needs them gone). */
const BUILT_REMOTELY = [
  TOP,
  '/nix/store/va0yrqc2xzr48xnn3c6f2gs8w5dxny31-logger',
  '/nix/store/mhszf2c3w5cal2y24ng2lp1im0awrkvq-multi-lib',
  '/nix/store/rlm0ixr31ikw3b2r5jp2ngq6lz7lhm3h-multi',
  '/nix/store/aa90nw1aczswfzrfk8s0hby871n4dqjc-multi-dev',
  '/nix/store/9nv4x10yld9cr7zvn43i3rx77d5i8698-dep-a',
];

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });

beforeAll(async () => {
  h = await startStoreGateway(['--max-jobs', '1']);
  work = await makeWorkDir();
  expect(await buildLocally(opts(), 'fixed', 'ngbuilder')).toBe(FIXED_HELLO);
  await forgetLocally(BUILT_REMOTELY, opts());
}, 120_000);

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

describe('ssh-ng-builder', () => {
  test('nix-build --builders ssh-ng://gateway: BuildDerivation per derivation, outputs copied back', async () => {
    const r = await replay(h, work, SCENARIO, 'nix-build-builders-ssh-ng', {
      argv: [
        'nix-build',
        'dag.nix',
        '-A',
        'top',
        '--argstr',
        'salt',
        'ngbuilder',
        '--no-out-link',
        '--max-jobs',
        '0',
        '--builders',
        `${h.storeUrl} x86_64-linux`,
      ],
    });
    expect(r.actual).toEqual(r.expected);
    // What came back is what the gateway has…
    expect(await closureFacts([TOP], opts(), h.storeUrl)).toEqual(await closureFacts([TOP], opts()));
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
  });

  test('the outputs are those of a local build: nix-build --check rebuilds each here and compares', async () => {
    for (const attr of ['a', 'multi', 'logger', 'top']) {
      await runOk(
        ['nix-build', 'dag.nix', '-A', attr, '--argstr', 'salt', 'ngbuilder', '--no-out-link', '--check'],
        opts(),
      );
    }
  });

  test('nix-build-builders-ssh-ng-fail: the hook prints the remote failure', async () => {
    const r = await replay(h, work, SCENARIO, 'nix-build-builders-ssh-ng-fail', {
      argv: [
        'nix-build',
        'dag.nix',
        '-A',
        'fail',
        '--argstr',
        'salt',
        'ngbuilder',
        '--no-out-link',
        '--max-jobs',
        '0',
        '--builders',
        `${h.storeUrl} x86_64-linux`,
      ],
    });
    expect(r.actual).toEqual(r.expected);
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
  });
});
