/**
 * The README's first build, exactly as a newcomer types it (examples/hello.nix), against
 * a gateway on loopback. Only the connection differs: the README uses
 * `NIX_SSHOPTS="-p 2222 …"` and `ssh-ng://127.0.0.1`, the harness an ssh_config alias.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import { runCommand } from '../support/scenario.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/hello.nix', import.meta.url));

/** The README's commands; `$STORE` is `ssh-ng://127.0.0.1` there. */
export const README_STEPS = `
mkdir -p examples/busybox/bin && cp /bin/busybox examples/busybox/bin/
nix build --eval-store auto --store "$STORE" -L --no-link -f examples/hello.nix
out=$(nix eval --raw -f examples/hello.nix outPath)
nix store cat --store "$STORE" "$out"
nix copy --no-check-sigs --from "$STORE" "$out" && cat "$out"
`;

let h: StoreGatewayHarness;
let work: string;

beforeAll(async () => {
  h = await startStoreGateway();
  work = await mkdtemp(join(tmpdir(), 'nixyard-example-'));
  await mkdir(join(work, 'examples'));
  await cp(EXAMPLE, join(work, 'examples', 'hello.nix'));
});

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

test('examples/hello.nix builds through Nixyard with the README commands', async () => {
  const r = await runCommand(['sh', '-e', '-c', README_STEPS], {
    env: { ...h.env, STORE: h.storeUrl },
    cwd: work,
  });
  expect(r.exit).toBe(0);
  expect(r.output).toMatch(/hello-nixyard> building hello on Linux\n/);
  expect(r.output).toMatch(/building hello on Linux\nHello from Nixyard!\n[\s\S]*\nHello from Nixyard!\n$/);
});
