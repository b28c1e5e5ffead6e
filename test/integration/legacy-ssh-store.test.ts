/**
 * The recorded legacy-ssh-store scenario (`--store ssh://…`, serve protocol 2.7) replayed
 * with the real nix 2.8 client over the real OpenSSH client against our gateway.
 *
 * `nix copy --from` goes into a chroot local store (`local?root=…`) that already holds
 * dep-a and multi, which is the state the recording's local /nix/store was in after its
 * partial `nix-store --delete` (so the client copies the same 2 paths).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import { buildLocally, makeWorkDir, replay, runOk } from '../support/scenario.js';

const TOP = '/nix/store/1xk83v43cnxg1i1bx4148in9bmywsv1i-top';
const DEP_A = '/nix/store/k5585z20wg622n7jlpa28g897ljkbd6c-dep-a';
const MULTI = '/nix/store/k6fmvj596jn4dbd4wb27ks1rf3429fmn-multi';
const TOP_DRV = '/nix/store/z388wnh3wvz9y0qn71g9v7sv46n4d1v6-top.drv';

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });
const lastLine = (o: string): string => o.trim().split('\n').at(-1) ?? '';

beforeAll(async () => {
  h = await startStoreGateway();
  work = await makeWorkDir();
  const top = await buildLocally(opts(), 'top', 'legacystore');
  expect(top).toBe(TOP);
  const drv = await runOk(
    ['nix-instantiate', 'dag.nix', '-A', 'top', '--argstr', 'salt', 'legacyrealise'],
    opts(),
  );
  expect(lastLine(drv)).toBe(TOP_DRV);
}, 120_000);

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

describe('legacy-ssh-store (ssh://, serve protocol)', () => {
  test('ping', async () => {
    const r = await replay(h, work, 'legacy-ssh-store', 'ping');
    expect(r.actual).toEqual(r.expected);
  });

  test('copy --to (AddToStoreNar)', async () => {
    const r = await replay(h, work, 'legacy-ssh-store', 'copy-to');
    expect(r.actual).toEqual(r.expected);
    expect(await h.store.isValid(TOP)).toBe(true);
  });

  test('path-info -r', async () => {
    const r = await replay(h, work, 'legacy-ssh-store', 'path-info-r');
    expect(r.actual).toEqual(r.expected);
  });

  test('copy --from (DumpStorePath) gives byte-identical paths', async () => {
    const dest = join(work, 'dest');
    const destEnv = { ...h.env, NIX_CONFIG: `${h.env.NIX_CONFIG ?? ''}\nstore = local?root=${dest}` };
    await runOk(['nix', 'copy', '--no-check-sigs', '--to', `local?root=${dest}`, DEP_A, MULTI], opts());
    const r = await replay(h, work, 'legacy-ssh-store', 'copy-from', { env: destEnv });
    expect(r.actual).toEqual(r.expected);
    const hashes = async (env: NodeJS.ProcessEnv): Promise<string> =>
      runOk(['nix', 'path-info', '-r', '--json', TOP], { env, cwd: work }).then((json) =>
        JSON.stringify(
          (JSON.parse(json) as { path: string; narHash: string }[]).map((i) => [i.path, i.narHash]),
        ),
      );
    expect(await hashes(destEnv)).toBe(await hashes(h.env));
  });

  test('copy --derivation --to', async () => {
    const r = await replay(h, work, 'legacy-ssh-store', 'copy-drv');
    expect(r.actual).toEqual(r.expected);
    expect(await h.store.isValid(TOP_DRV)).toBe(true);
  });

  test('nix-store --realise fails client-side as with the real daemon (getFSAccessor)', async () => {
    const r = await replay(h, work, 'legacy-ssh-store', 'realise');
    expect(r.actual).toEqual(r.expected);
  });

  test('nix build --store ssh:// is refused by the client as with the real daemon', async () => {
    const r = await replay(h, work, 'legacy-ssh-store', 'nix-build-eval-store-auto');
    expect(r.actual).toEqual(r.expected);
  });
});
