/**
 * Check mode (BuildMode 2): `nix-store --realise --check` (BuildPaths) and
 * `nix build --rebuild` (BuildPathsWithResults), replayed from the recorded misc-ops
 * scenario (labels realise-check and build-rebuild, after its setup-copy and
 * setup-copy-drv), and a derivation that is not deterministic, which both must report
 * without changing the valid output.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import { buildLocally, makeWorkDir, replay, runCommand, runOk } from '../support/scenario.js';

const SCENARIO = 'misc-ops';
const TOP = '/nix/store/23zalzc83lcxm26bjx2jhg2s3zqhk67y-top';
const TOP_DRV = '/nix/store/6avlqxn1nkkl7s78gyy06h0yb3brv0ji-top.drv';

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });

beforeAll(async () => {
  h = await startStoreGateway(['--max-jobs', '1']);
  work = await makeWorkDir();
  expect(await buildLocally(opts(), 'top', 'misc')).toBe(TOP);
  const drv = await runOk(['nix-instantiate', 'dag.nix', '-A', 'top', '--argstr', 'salt', 'misc'], opts());
  expect(drv.trim().split('\n').at(-1)).toBe(TOP_DRV);
}, 120_000);

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

async function expectReplay(label: string): Promise<void> {
  const r = await replay(h, work, SCENARIO, label);
  expect(r.actual).toEqual(r.expected);
}

async function narHash(path: string): Promise<string> {
  return (await h.store.requirePathInfo(path)).narHash.toBase16();
}

describe('misc-ops check mode', () => {
  test('setup: copy the outputs and the derivations', async () => {
    await expectReplay('setup-copy');
    await expectReplay('setup-copy-drv');
  });

  test('realise-check: the missing input is built, top is checked and found identical', async () => {
    const before = await narHash(TOP);
    await expectReplay('realise-check');
    expect(await narHash(TOP)).toBe(before);
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
  });

  test('build-rebuild: nix build --rebuild checks top again', async () => {
    await expectReplay('build-rebuild');
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
  });
});

describe('a derivation that is not deterministic', () => {
  let out = '';
  const nondet = (): string => join(work, 'nondet.nix');

  beforeAll(async () => {
    await writeFile(
      nondet(),
      `let bb = builtins.path { path = ./bbdir; name = "busybox"; }; in
derivation {
  name = "nondet";
  salt = "${process.pid}-${Date.now()}";
  system = builtins.currentSystem;
  builder = "\${bb}/bin/busybox";
  args = [ "sh" "-c" "\${bb}/bin/busybox od -An -N16 -x /dev/urandom > $out" ];
}
`,
    );
    const json = await runOk(
      ['nix', 'build', '--eval-store', 'auto', '--store', h.storeUrl, '-f', nondet(), '--no-link', '--json'],
      opts(),
    );
    out =
      (JSON.parse(json.trim().split('\n').at(-1) ?? '') as { outputs: { out: string } }[])[0]?.outputs.out ??
      '';
    expect(out).toMatch(/-nondet$/);
  });

  const differs = (drv: string): string =>
    `error: derivation '${drv}' may not be deterministic: output '${out}' differs\n`;

  test('nix build --rebuild reports NotDeterministic and keeps the valid output', async () => {
    const before = await narHash(out);
    const r = await runCommand(
      [
        'nix',
        'build',
        '--eval-store',
        'auto',
        '--store',
        h.storeUrl,
        '-f',
        nondet(),
        '--no-link',
        '--rebuild',
      ],
      opts(),
    );
    const drv = (await h.store.requirePathInfo(out)).deriver ?? '';
    expect(r.output).toBe(`copying 0 paths...\nchecking outputs of '${drv}'...\n${differs(drv)}`);
    expect(r.exit).toBe(1);
    expect(await narHash(out)).toBe(before);
    expect(await readdir(h.store.layout.stagingDir)).toEqual([]);
  });

  test('nix-store --realise --check reports it as an error (BuildPaths)', async () => {
    const drv = (await h.store.requirePathInfo(out)).deriver ?? '';
    const r = await runCommand(['nix-store', '--realise', '--check', '--store', h.storeUrl, drv], opts());
    expect(r.output).toBe(`checking outputs of '${drv}'...\n${differs(drv)}`);
    expect(r.exit).toBe(1);
  });

  test('checking a derivation whose outputs are not valid is refused', async () => {
    const drv = (
      await runOk(
        ['nix-instantiate', 'dag.nix', '-A', 'a', '--argstr', 'salt', `check-${process.pid}`],
        opts(),
      )
    )
      .trim()
      .split('\n')
      .at(-1)!;
    await runOk(['nix', 'copy', '--derivation', '--to', h.storeUrl, drv], opts());
    const r = await runCommand(['nix-store', '--realise', '--check', '--store', h.storeUrl, drv], opts());
    expect(r.output).toContain(
      `error: some outputs of '${drv}' are not valid, so checking is not possible\n`,
    );
    expect(r.exit).toBe(1);
  });
});
