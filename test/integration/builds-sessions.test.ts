/**
 * Builds shared between sessions and builds whose client goes away, with the real nix
 * client over the real OpenSSH client:
 * - two concurrent `nix build` of the same new derivation: it is built once (the
 *   builder prints a random token; both clients show the same one, and one "building"
 *   line each) and both succeed;
 * - a client killed mid-build: within 5 s the build's process tree (the `nixyard
 *   build-drv` child, bwrap and the builder) is gone, nothing is registered, staging is
 *   empty.
 * The gateway runs in this process, so its build children are our descendants.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import { makeWorkDir, runOk } from '../support/scenario.js';

let h: StoreGatewayHarness;
let work: string;
const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: h.env, cwd: work });

beforeAll(async () => {
  h = await startStoreGateway(['--max-jobs', '2']);
  work = await makeWorkDir();
}, 60_000);

afterAll(async () => {
  await h.stop();
  await rm(work, { recursive: true, force: true });
});

/** A derivation running `script` with busybox, unique to this run. */
async function writeDrvFile(name: string, script: string): Promise<string> {
  const file = join(work, `${name}.nix`);
  await writeFile(
    file,
    `let bb = builtins.path { path = ./bbdir; name = "busybox"; }; B = "\${bb}/bin/busybox"; in
derivation {
  name = "${name}";
  salt = "${process.pid}-${Date.now()}";
  system = builtins.currentSystem;
  builder = B;
  args = [ "sh" "-e" "-c" ${JSON.stringify(script)} ];
}
`,
  );
  return file;
}

interface Running {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number>;
}

function startNixBuild(file: string, extra: readonly string[] = []): Running {
  const child = spawn(
    'nix',
    ['build', '--eval-store', 'auto', '--store', h.storeUrl, '-f', file, '--no-link', '--json', ...extra],
    { ...opts(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stdout?.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return { child, output: () => text, exited };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** pid → [ppid, cmdline] of every process, from /proc. */
async function processTable(): Promise<Map<number, { ppid: number; cmdline: string }>> {
  const table = new Map<number, { ppid: number; cmdline: string }>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      table.set(Number(name), { ppid, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/** Command lines of our descendants, except the subtrees of `except`. */
async function descendants(except: readonly number[] = []): Promise<string[]> {
  const table = await processTable();
  const out: string[] = [];
  const visit = (pid: number): void => {
    for (const [child, p] of table) {
      if (p.ppid !== pid || except.includes(child)) continue;
      out.push(p.cmdline);
      visit(child);
    }
  };
  visit(process.pid);
  return out;
}

describe('sessions sharing a derivation', () => {
  test('two concurrent nix build of the same new derivation: built once, both succeed', async () => {
    const file = await writeDrvFile(
      'shared',
      'echo "token $($B od -An -N8 -x /dev/urandom | $B tr -d \' \')"; $B sleep 3; echo done > $out'.replaceAll(
        '$B',
        '${B}',
      ),
    );
    const first = startNixBuild(file, ['-L']);
    await until('the first build to start', () => first.output().includes('shared> token '));
    const second = startNixBuild(file, ['-L']);
    const [a, b] = await Promise.all([first.exited, second.exited]);
    expect([a, b]).toEqual([0, 0]);
    const token = (o: string): string[] => [...o.matchAll(/^shared> token (\w+)$/gm)].map((m) => m[1]!);
    expect(token(first.output())).toHaveLength(1);
    // The second client joined the running build and was shown its log so far.
    expect(token(second.output())).toEqual(token(first.output()));
    for (const o of [first.output(), second.output()])
      expect(o.match(/^building '.*-shared\.drv'\.\.\.$/gm)).toHaveLength(1);
    const outs = [first, second].map(
      (r) =>
        (JSON.parse(r.output().trim().split('\n').at(-1) ?? '') as { outputs: { out: string } }[])[0]?.outputs
          .out,
    );
    expect(outs[0]).toBe(outs[1]);
    expect(await h.store.isValid(outs[0] ?? '')).toBe(true);
  }, 60_000);
});

describe('cancellation', () => {
  test('a shared build goes on when one of its two clients is killed', async () => {
    const file = await writeDrvFile('shared-kill', '${B} sleep 3; echo done > $out');
    const first = startNixBuild(file);
    await until('the first build to start', async () =>
      (await descendants([first.child.pid!])).some((c) => c.includes('sleep 3')),
    );
    const second = startNixBuild(file);
    await until('the second client to join', () => second.output().includes("building '"));
    first.child.kill('SIGKILL');
    expect(await second.exited).toBe(0);
    expect(second.output().match(/^building '.*-shared-kill\.drv'\.\.\.$/gm)).toHaveLength(1);
  }, 60_000);

  test('killing the client mid-build ends the build within 5 s: no processes, nothing registered', async () => {
    const file = await writeDrvFile('sleeper', '${B} sleep 60; echo late > $out');
    const drvPath = (await runOk(['nix-instantiate', file], opts())).trim().split('\n').at(-1)!;
    const outPath = (await runOk(['nix-store', '-q', '--outputs', drvPath], opts())).trim();
    const run = startNixBuild(file, ['-L']);
    await until('the builder to run', async () =>
      (await descendants([run.child.pid!])).some((c) => c.includes('sleep 60')),
    );
    const before = await descendants([run.child.pid!]);
    expect(before.some((c) => c.includes('build-drv') && c.includes(drvPath))).toBe(true);
    expect(before.some((c) => c.includes('bwrap'))).toBe(true);
    run.child.kill('SIGKILL');
    const killedAt = Date.now();
    await until(
      'the build processes to end',
      async () => (await descendants([run.child.pid!])).length === 0,
      5_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(await h.store.isValid(outPath)).toBe(false);
    await until(
      'staging to be emptied',
      async () => (await readdir(h.store.layout.stagingDir)).length === 0,
      2_000,
    );
  }, 60_000);

  test('a key with keep-builds-running: the build goes on without its client and is registered', async () => {
    const key = await h.addKey('keeper', 'read,write,build');
    const keys = join(h.dir, 'authorized_keys');
    const text = await readFile(keys, 'utf8');
    await writeFile(
      keys,
      text.replace(`permissions="read,write,build" ${key.publicKey}`, `keep-builds-running ${key.publicKey}`),
    );
    const file = await writeDrvFile('kept', '${B} sleep 2; echo kept > $out');
    const drvPath = (await runOk(['nix-instantiate', file], opts())).trim().split('\n').at(-1)!;
    const outPath = (await runOk(['nix-store', '-q', '--outputs', drvPath], opts())).trim();
    const child = spawn(
      'nix',
      ['build', '--eval-store', 'auto', '--store', 'ssh-ng://keeper', '-f', file, '--no-link'],
      { ...opts(), stdio: 'ignore' },
    );
    await until('the builder to run', async () =>
      (await descendants([child.pid!])).some((c) => c.includes('sleep 2')),
    );
    child.kill('SIGKILL');
    await until('the build to finish anyway', () => h.store.isValid(outPath), 20_000);
  }, 60_000);
});
