/**
 * Build logs kept per derivation: every build the runner does leaves
 * `<data>/logs/<drv>.gz`, the file AddBuildLog (`nix store copy-log --to`) writes too;
 * `nixyard log` prints it by .drv path or by output path. `nix store copy-log --from`
 * and `nix log --store ssh-ng://…` cannot work with Nix 2.8 clients: the worker protocol
 * has no operation to read a log, and the client refuses before asking
 * (recorded in misc-ops/24 and nix-log).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdir, rm } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { logCommand } from '../../cli/commands/log.js';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import { makeWorkDir, runCommand, runOk } from '../support/scenario.js';

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });
const salt = `logs-${process.pid}-${Date.now()}`;
const LOGGER_LOG =
  [1, 2, 3].map((i) => `log line ${i} on stdout\nlog line ${i} on stderr\n`).join('') + 'logger done\n';

async function nixyardLog(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const code = await logCommand.run(argv, { stdin: new PassThrough(), stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

async function instantiate(attr: string, s: string): Promise<string> {
  return (await runOk(['nix-instantiate', 'dag.nix', '-A', attr, '--argstr', 'salt', s], opts()))
    .trim()
    .split('\n')
    .at(-1)!;
}

beforeAll(async () => {
  h = await startStoreGateway();
  work = await makeWorkDir();
}, 60_000);

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

describe('build logs', () => {
  test('a build through the gateway keeps its log; nixyard log prints it by .drv or output path', async () => {
    await runOk(
      [
        'nix',
        'build',
        '--eval-store',
        'auto',
        '--store',
        h.storeUrl,
        '--no-link',
        '-f',
        'dag.nix',
        '--argstr',
        'salt',
        salt,
        'logger',
      ],
      opts(),
    );
    const drv = await instantiate('logger', salt);
    const byDrv = await nixyardLog(drv, '--data-dir', h.dataDir);
    expect(byDrv).toEqual({ code: 0, stdout: LOGGER_LOG, stderr: '' });
    const out = await outputOf(drv);
    expect(await nixyardLog(out, '--data-dir', h.dataDir)).toEqual(byDrv);
    // Written atomically: nothing but finished logs in the directory.
    expect((await readdir(`${h.dataDir}/logs`)).filter((f) => !f.endsWith('.drv.gz'))).toEqual([]);
  });

  test('nixyard log of something without a log fails clearly', async () => {
    const drv = await instantiate('a', `${salt}-never-built`);
    const r = await nixyardLog(drv, '--data-dir', h.dataDir);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `error: build log of '${drv}' is not available\n` });
    const p = '/nix/store/00000000000000000000000000000000-nothing';
    expect((await nixyardLog(p, '--data-dir', h.dataDir)).code).toBe(1);
  });

  test('nix store copy-log --to (AddBuildLog) round-trips: nixyard log prints what nix-store --read-log prints locally', async () => {
    const s = `${salt}-local`;
    await runOk(['nix-build', 'dag.nix', '-A', 'logger', '--argstr', 'salt', s, '--no-out-link'], opts());
    const drv = await instantiate('logger', s);
    const local = await runOk(['nix-store', '--read-log', drv], opts());
    expect(local).toBe(LOGGER_LOG);
    await runOk(['nix', 'store', 'copy-log', '--to', h.storeUrl, drv], opts());
    expect(await nixyardLog(drv, '--data-dir', h.dataDir)).toEqual({ code: 0, stdout: local, stderr: '' });
  });

  test('nix store copy-log --from cannot work with a 2.8 client (no protocol op): the recorded error', async () => {
    const drv = await instantiate('logger', salt);
    const out = await outputOf(drv);
    const r = await runCommand(['nix', 'store', 'copy-log', '--from', h.storeUrl, out], opts());
    expect(r).toEqual({
      exit: 1,
      output: `error: operation 'getBuildLog' is not supported by store '${h.storeUrl}'\n`,
    });
  });
});

async function outputOf(drv: string): Promise<string> {
  return (await runOk(['nix-store', '-q', '--outputs', drv], opts())).trim();
}
