/**
 * The gateway as a legacy `ssh://` remote builder (recorded scenario legacy-ssh-builder):
 * `nix-build --max-jobs 0 --builders 'ssh://gateway x86_64-linux'` speaks the serve
 * protocol (`nix-store --serve --write`): QueryValidPaths, AddToStoreNar for missing
 * inputs, BuildDerivation (a BasicDerivation), then QueryPathInfos + DumpStorePath for
 * the outputs. Build logs go raw to the channel's stderr, which the hook prints.
 *
 * The hook builds into the machine's /nix/store, so the scenario's outputs are deleted
 * from it first (they are unique to the salt `legacy`); fixed-hello, which the recording
 * had locally, is built locally first.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdir, rm } from 'node:fs/promises';
import { readBuildLog } from '../../gateway/builds/build-log.js';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import {
  buildLocally,
  makeWorkDir,
  replay,
  runOk,
  closureFacts,
  forgetLocally,
} from '../support/scenario.js';

const SCENARIO = 'legacy-ssh-builder';
const FIXED_HELLO = '/nix/store/p5v2cagqczh89szhhm6qq5xjl4spyk61-fixed-hello';
const TOP = '/nix/store/n5x5x35kcfyiaz1p6sz9m6z5axigfbd7-top';
const LOGGER_DRV = '/nix/store/4q2v3ns69rwivajkhlrcrhaqyl2cq2by-logger.drv';
/** What the hook builds remotely, referrers first (as `nix-store --delete` needs them gone). */
const BUILT_REMOTELY = [
  TOP,
  '/nix/store/yyrdb09cw84lk72l1v6y8kljcidd83z1-logger',
  '/nix/store/s64g53md071dj5y8lyf3fvi7xb0hbj73-multi-lib',
  '/nix/store/i6icnqxqhjfwzgw0r26wv4cr6xr4nzyf-multi',
  '/nix/store/0zvj9jni8lvn09c4cqff7srgjk0ldhbd-multi-dev',
  '/nix/store/issv6gimrf5sbkbw2w39ibcly482f8hb-dep-a',
];

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });

const hookBuild = (attr: string): string[] => [
  'nix-build',
  'dag.nix',
  '-A',
  attr,
  '--argstr',
  'salt',
  'legacy',
  '--no-out-link',
  '--max-jobs',
  '0',
  '--builders',
  `${h.legacyUrl} x86_64-linux`,
];

beforeAll(async () => {
  h = await startStoreGateway(['--max-jobs', '1']);
  work = await makeWorkDir();
  expect(await buildLocally(opts(), 'fixed', 'legacy')).toBe(FIXED_HELLO);
  await forgetLocally(BUILT_REMOTELY, opts());
}, 120_000);

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

describe('legacy-ssh-builder (serve protocol)', () => {
  test('nix-build --builders ssh://gateway: output, logs and exit status as recorded', async () => {
    const r = await replay(h, work, SCENARIO, 'nix-build-builders-ssh', { argv: hookBuild('top') });
    expect(r.actual).toEqual(r.expected);
    // What came back is what the gateway has…
    expect(await closureFacts([TOP], opts(), h.legacyUrl)).toEqual(await closureFacts([TOP], opts()));
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
    // …and the gateway kept the log of each build.
    expect((await readBuildLog(h.dataDir, LOGGER_DRV))?.toString()).toBe(
      [1, 2, 3].map((i) => `log line ${i} on stdout\nlog line ${i} on stderr\n`).join('') + 'logger done\n',
    );
  });

  test('the outputs are those of a local build: nix-build --check rebuilds each here and compares', async () => {
    for (const attr of ['a', 'multi', 'logger', 'top']) {
      await runOk(
        ['nix-build', 'dag.nix', '-A', attr, '--argstr', 'salt', 'legacy', '--no-out-link', '--check'],
        opts(),
      );
    }
  });

  test('nix-build-builders-ssh-fail: the hook prints the logs and the remote failure', async () => {
    const r = await replay(h, work, SCENARIO, 'nix-build-builders-ssh-fail', { argv: hookBuild('fail') });
    expect(r.actual).toEqual(r.expected);
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
  });
});
