/**
 * `npm run sim` (test/sim/run.ts): the whole simulated cluster comes up outside jest,
 * prints how to reach it, and stops on Ctrl-C. Needs dist/ (`npx tsc -p tsconfig.build.json`).
 */
import { expect, test } from '@jest/globals';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

test('npm run sim comes up (API server, KUBECONFIG, store URL) and stops on SIGINT', async () => {
  const child = spawn(process.execPath, ['--import', './test/sim/register.mjs', 'test/sim/run.ts'], {
    cwd: REPO,
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  try {
    const end = Date.now() + 60_000;
    while (!out.includes('Ctrl-C stops it.') && child.exitCode === null && Date.now() < end)
      await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('Nixyard on the simulated cluster is up.');
    expect(out).toMatch(/KUBECONFIG=\S+kubeconfig/);
    expect(out).toMatch(/store URL: +ssh-ng:\/\/gateway/);
  } finally {
    child.kill('SIGINT');
  }
  const [code] = await exited;
  expect({ code, out }).toMatchObject({ code: 0 });
}, 90_000);
