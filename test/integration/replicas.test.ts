/**
 * Two gateway replicas — separate `nixyard gateway` processes — on one data directory
 * and one real `redis-server`, driven by the real nix 2.8 and OpenSSH clients:
 * - the same closure copied into both at once: both clients succeed, every record is
 *   written once (counted with inotify on meta/), the store verifies, staging is empty;
 * - a temp root held by a session on replica B keeps its path through `nix-store --gc`
 *   on replica A, until that session ends;
 * - the same new derivation built through both at once, in local mode: the builder runs
 *   once (it prints a random token: one token in all), both clients get the outputs;
 * - outputs built for a session on B are its temp roots: a GC through A keeps them;
 * - replica B killed while holding a temp root: the root protects its path until the
 *   TTL (--redis-ttl) passes, then a GC through A collects it;
 * - Redis down: a client gets the store's "Redis … is unavailable" error at once, the
 *   replica stays up and serves again when Redis is back.
 * Needs `npx tsc -p tsconfig.build.json` (the replicas run dist/cli/main.js).
 */
import { afterAll, beforeAll, expect, jest, test } from '@jest/globals';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { RedisPathIndex } from '../../store/redis-index.js';
import { runCli } from '../support/run-cli.js';
import {
  replicaKeys,
  sshWorkerClient,
  startReplica,
  writeReplicaSshConfig,
  type Replica,
  type ReplicaOptions,
} from '../support/replicas.js';
import { makeWorkDir, runCommand, runOk } from '../support/scenario.js';
import { startRedis, type RedisServer } from '../store/redis-support.js';

jest.setTimeout(120_000);

/** Seconds a dead replica's sessions outlive it (short, for the crash test). */
const TTL = 4;

let redis: RedisServer;
let dir: string;
let dataDir: string;
let work: string;
let sshConfig: string;
let env: NodeJS.ProcessEnv;
let base: Omit<ReplicaOptions, 'name'>;
let key: Awaited<ReturnType<typeof replicaKeys>>['key'];
const replicas = new Map<string, Replica>();

const opts = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env, cwd: work });

async function start(name: 'a' | 'b' | 'c', extraEnv?: Record<string, string>): Promise<Replica> {
  const r = await startReplica({ ...base, name, ...(extraEnv ? { env: extraEnv } : {}) });
  replicas.set(name, r);
  await writeReplicaSshConfig(sshConfig, [...replicas.values()], key);
  return r;
}

beforeAll(async () => {
  redis = await startRedis();
  work = await makeWorkDir();
  dir = join(work, 'replicas');
  dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  const keys = await replicaKeys(dir);
  key = keys.key;
  sshConfig = join(dir, 'ssh_config');
  base = { dir, dataDir, authorizedKeys: keys.authorizedKeys, redisUrl: redis.url, ttl: TTL };
  // One after the other: the first creates the store and fills the index.
  await start('a');
  await start('b');
  env = {
    ...process.env,
    NIX_SSHOPTS: `-F ${sshConfig}`,
    NIX_CONFIG: 'substituters =\nexperimental-features = nix-command',
  };
  delete env.NIX_REMOTE;
}, 60_000);

afterAll(async () => {
  for (const r of replicas.values()) await r.stop();
  await redis.stop();
  await rm(work, { recursive: true, force: true });
});

/** Valid on the replicas' store? (Asked through replica `via`.) */
async function remoteHas(path: string, via = 'a'): Promise<boolean> {
  const r = await runCommand(['nix', 'path-info', '--store', `ssh-ng://${via}`, path], opts());
  return r.exit === 0;
}

function gc(via: string): Promise<string> {
  return runOk(['nix-store', '--store', `ssh-ng://${via}`, '--gc'], opts());
}

/** A new content-addressed path in the local store (`nix-store --add` of a fresh file). */
async function newLocalPath(name: string): Promise<string> {
  const file = join(work, name);
  await writeFile(file, `${name} ${randomBytes(8).toString('hex')}\n`);
  return (await runOk(['nix-store', '--add', file], opts())).trim();
}

/**
 * A closure of content-addressed paths with references, new to this run, in the local
 * store: two large sources (a 24 MiB file, a tree of 8 × 2 MiB files), small text
 * files referring to them and to each other. Returns the top and every path.
 */
async function makeClosure(): Promise<{ top: string; all: string[] }> {
  const salt = randomBytes(6).toString('hex');
  await writeFile(join(work, 'blob.bin'), randomBytes(24 << 20));
  await mkdir(join(work, 'tree'), { recursive: true });
  for (let i = 0; i < 8; i++) await writeFile(join(work, 'tree', `f${i}`), randomBytes(2 << 20));
  const small = Array.from({ length: 12 }, (_, i) => `s${i}`);
  const expr = `
    let blob = builtins.path { path = ${work}/blob.bin; name = "blob-${salt}"; };
        tree = builtins.path { path = ${work}/tree; name = "tree-${salt}"; };
        smalls = map (n: builtins.toFile "\${n}-${salt}" "small \${n} of \${tree}") ${JSON.stringify(small).replaceAll(',', ' ')};
        mid = builtins.toFile "mid-${salt}" "mid \${blob} \${toString smalls}";
    in builtins.toFile "top-${salt}" "top \${mid} \${tree}"`;
  const top = JSON.parse(
    (await runOk(['nix-instantiate', '--eval', '--read-write-mode', '-E', expr], opts())).trim(),
  ) as string;
  const all = (await runOk(['nix-store', '-qR', top], opts())).trim().split('\n');
  return { top, all };
}

/** Counts, per record file name, renames onto it in meta/ (one per registration). */
function watchRecords(): { counts: Map<string, number>; stop: () => void } {
  const counts = new Map<string, number>();
  const watcher: FSWatcher = watch(join(dataDir, 'meta'), (event, name) => {
    if (event === 'rename' && name !== null && name.endsWith('.json') && !name.startsWith('.')) {
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  });
  return { counts, stop: () => watcher.close() };
}

test('the same closure copied into both replicas at once: both succeed, each path registered once', async () => {
  const { top, all } = await makeClosure();
  expect(all.length).toBeGreaterThanOrEqual(15);
  const records = watchRecords();
  const copy = (via: string): Promise<{ output: string; exit: number }> =>
    runCommand(['nix', 'copy', '--to', `ssh-ng://${via}`, top], opts());
  const [a, b] = await Promise.all([copy('a'), copy('b')]);
  await new Promise((r) => setTimeout(r, 200)); // the last inotify events
  records.stop();
  expect([a.exit, b.exit, a.output + b.output]).toEqual([0, 0, expect.not.stringContaining('error')]);
  for (const p of all) {
    expect(await remoteHas(p, 'a')).toBe(true);
    expect(await remoteHas(p, 'b')).toBe(true);
  }
  const written = Object.fromEntries(all.map((p) => [p, records.counts.get(`${p.slice(11)}.json`) ?? 0]));
  expect(written).toEqual(Object.fromEntries(all.map((p) => [p, 1])));
  const verify = await runCli([
    'store',
    'verify',
    '--check-contents',
    '--data-dir',
    dataDir,
    '--redis-url',
    redis.url,
  ]);
  expect({ code: verify.code, out: verify.stdout.toString() + verify.stderr.toString() }).toMatchObject({
    code: 0,
  });
  expect(await readdir(join(dataDir, 'staging'))).toEqual([]);
});

test('a temp root held by a session on B survives nix-store --gc through A, until the session ends', async () => {
  const path = await newLocalPath('rooted-on-b');
  await runOk(['nix', 'copy', '--to', 'ssh-ng://a', path], opts());
  const holder = sshWorkerClient(sshConfig, 'b');
  await holder.handshake(34);
  const rooted = await holder.op('AddTempRoot', { path });
  expect(rooted.error).toBeUndefined();

  const first = await gc('a');
  expect(first).not.toContain(path);
  expect(await remoteHas(path)).toBe(true);

  await holder.close();
  const second = await gc('a');
  expect(second).toContain(`deleting '${path}'`);
  expect(await remoteHas(path, 'b')).toBe(false);
});

test('the same derivation built through both replicas at once is built once; both get its output', async () => {
  const token = '$B od -An -N8 -x /dev/urandom | $B tr -d " "';
  const file = join(work, 'shared.nix');
  await writeFile(
    file,
    `let bb = builtins.path { path = ./bbdir; name = "busybox"; }; B = "\${bb}/bin/busybox"; in
derivation {
  name = "shared";
  salt = "${process.pid}-${Date.now()}";
  system = builtins.currentSystem;
  builder = B;
  args = [ "sh" "-e" "-c" ${JSON.stringify(`echo "token $(${token})"; $B sleep 3; echo done > $out`.replaceAll('$B', '${B}'))} ];
}
`,
  );
  const build = (via: string): Promise<{ output: string; exit: number }> =>
    runCommand(
      [
        'nix',
        'build',
        '--eval-store',
        'auto',
        '--store',
        `ssh-ng://${via}`,
        '-f',
        file,
        '--no-link',
        '--json',
        '-L',
      ],
      opts(),
    );
  const [a, b] = await Promise.all([build('a'), build('b')]);
  expect([a.exit, b.exit]).toEqual([0, 0]);
  const tokens = [...(a.output + b.output).matchAll(/^shared> token (\w+)$/gm)].map((m) => m[1]);
  expect(tokens).toHaveLength(1);
  // The other replica's builder waited for the output lock (and said so, as Nix does).
  expect((a.output + b.output).match(/^waiting for lock on '\/nix\/store\/\w+-shared'$/gm)).toHaveLength(1);
  // Nix's message of its own, not a line of the build's log.
  expect(a.output + b.output).not.toContain('shared> waiting for lock');
  const out = (r: { output: string }): string | undefined =>
    (JSON.parse(r.output.trim().split('\n').at(-1) ?? '') as { outputs: { out: string } }[])[0]?.outputs.out;
  expect(out(a)).toBeDefined();
  expect(out(a)).toBe(out(b));
  expect(await remoteHas(out(a)!, 'b')).toBe(true);
  expect(await readdir(join(dataDir, 'staging'))).toEqual([]);
});

test('a check (--rebuild) through a replica whose environment names Redis registers nothing in the shared index', async () => {
  // As the chart runs it: the Redis URL in the environment, inherited by build children.
  await start('c', { NIXYARD_REDIS_URL: redis.url });
  const file = join(work, 'unstable.nix');
  await writeFile(
    file,
    `let bb = builtins.path { path = ./bbdir; name = "busybox"; }; in
derivation {
  name = "unstable";
  salt = "${process.pid}-${Date.now()}";
  system = builtins.currentSystem;
  builder = "\${bb}/bin/busybox";
  args = [ "sh" "-c" "echo $RANDOM$RANDOM$RANDOM > $out" ];
}
`,
  );
  const build = (...extra: string[]) =>
    runCommand(
      [
        'nix',
        'build',
        '--eval-store',
        'auto',
        '--store',
        'ssh-ng://c',
        '-f',
        file,
        '--no-link',
        '--json',
        ...extra,
      ],
      opts(),
    );
  const first = await build();
  expect(first.exit).toBe(0);
  const out = (JSON.parse(first.output.trim().split('\n').at(-1)!) as { outputs: { out: string } }[])[0]!
    .outputs.out;
  const index = await RedisPathIndex.connect(redis.url);
  try {
    const before = (await index.get(out))?.narHash.toBase16();
    expect(before).toBeDefined();
    const check = await build('--rebuild');
    expect(check.exit).toBe(1);
    expect(check.output).toContain(`may not be deterministic: output '${out}' differs`);
    // The rebuild's other content went to its scratch store only.
    expect((await index.get(out))?.narHash.toBase16()).toBe(before);
  } finally {
    await index.close();
  }
  await replicas.get('c')!.stop();
  replicas.delete('c');
});

test('outputs built for a session on B (its dependencies’ too) are its temp roots: a GC through A keeps them until it ends', async () => {
  const file = join(work, 'kept.nix');
  await writeFile(
    file,
    `let bb = builtins.path { path = ./bbdir; name = "busybox"; };
  salt = "${process.pid}-${Date.now()}";
  dep = derivation {
    name = "kept-dep";
    inherit salt;
    system = builtins.currentSystem;
    builder = "\${bb}/bin/busybox";
    args = [ "sh" "-c" "echo dep > $out" ];
  };
in
derivation {
  name = "kept";
  inherit salt;
  system = builtins.currentSystem;
  builder = "\${bb}/bin/busybox";
  # Refers to nothing of dep's: dep's output is kept only as a root of the session.
  args = [ "sh" "-c" "\${bb}/bin/busybox wc -c < \${dep} > $out" ];
}
`,
  );
  const drvPath = (await runOk(['nix-instantiate', file], opts())).trim().split('\n').at(-1)!;
  const out = (await runOk(['nix-store', '-q', '--outputs', drvPath], opts())).trim();
  const depDrv = (await runOk(['nix-store', '-q', '--references', drvPath], opts()))
    .split('\n')
    .find((p) => p.endsWith('-kept-dep.drv'))!;
  const depOut = (await runOk(['nix-store', '-q', '--outputs', depDrv], opts())).trim();
  await runOk(['nix', 'copy', '--derivation', '--to', 'ssh-ng://b', drvPath], opts());
  const holder = sshWorkerClient(sshConfig, 'b');
  await holder.handshake(34);
  const built = await holder.op('BuildPathsWithResults', { paths: [`${drvPath}!out`], buildMode: 0 });
  expect(built.error).toBeUndefined();
  expect(await remoteHas(out)).toBe(true);

  const during = await gc('a');
  expect(during).not.toContain(out);
  expect(during).not.toContain(depOut);
  expect(await remoteHas(out)).toBe(true);
  expect(await remoteHas(depOut)).toBe(true);

  await holder.close();
  const after = await gc('a');
  expect(after).toContain(`deleting '${out}'`);
  expect(after).toContain(`deleting '${depOut}'`);
  expect(await remoteHas(out)).toBe(false);
});

test('replica B killed while holding a temp root: the root lasts until the TTL, then GC through A collects', async () => {
  const path = await newLocalPath('rooted-on-dead-b');
  await runOk(['nix', 'copy', '--to', 'ssh-ng://a', path], opts());
  const holder = sshWorkerClient(sshConfig, 'b');
  await holder.handshake(34);
  expect((await holder.op('AddTempRoot', { path })).error).toBeUndefined();

  await replicas.get('b')!.kill();
  const killedAt = Date.now();
  await holder.close(); // its ssh ends with the replica
  // The registration outlives its replica by the TTL: a GC now must keep the path.
  const early = await gc('a');
  expect(Date.now() - killedAt).toBeLessThan(TTL * 1000); // else the check below proves nothing
  expect(early).not.toContain(path);
  expect(await remoteHas(path)).toBe(true);

  await new Promise((r) => setTimeout(r, killedAt + TTL * 1000 + 500 - Date.now()));
  const late = await gc('a');
  expect(late).toContain(`deleting '${path}'`);
  expect(await remoteHas(path)).toBe(false);
});

test('with Redis down a client gets a clear error, not a hang, and the replica serves again once it is back', async () => {
  await redis.kill();
  const started = Date.now();
  const down = await runCommand(['nix', 'store', 'ping', '--store', 'ssh-ng://a'], opts());
  expect(Date.now() - started).toBeLessThan(20_000);
  expect(down.exit).not.toBe(0);
  expect(down.output).toMatch(
    /Nixyard cannot open a session: the store's Redis at 127\.0\.0\.1:\d+ is unavailable/,
  );
  expect(replicas.get('a')!.process.exitCode).toBeNull();

  await redis.restart();
  const end = Date.now() + 15_000;
  let up = await runCommand(['nix', 'store', 'ping', '--store', 'ssh-ng://a'], opts());
  while (up.exit !== 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    up = await runCommand(['nix', 'store', 'ping', '--store', 'ssh-ng://a'], opts());
  }
  expect(up.exit).toBe(0);
});
