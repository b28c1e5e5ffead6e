/**
 * End to end on the simulated cluster (test/e2e/sim-env.ts): the real nix client over the
 * real OpenSSH client → the cluster-mode gateway → NixBuild objects → the real operator →
 * Jobs → pods running the real `nixyard build-drv` (dist/) as local processes, with the
 * store PVC mapped to the gateway's data directory → outputs in the store → results and
 * live logs back to the client, as the embedded default gives them. The index is shared
 * in a real `redis-server`: the pods register their outputs in it as well as on the volume.
 *
 * Needs dist/ (`npx tsc -p tsconfig.build.json`).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nixBuildName } from '../../k8s/names.js';
import { RedisPathIndex } from '../../store/redis-index.js';
import { ensureTools } from '../sim/tools.js';
import { startStoreGateway, type StoreGatewayHarness } from '../support/gateway-harness.js';
import { makeWorkDir, runCommand } from '../support/scenario.js';
import { ABANDONED_CHECK_MS, startNixyardSim, type NixyardSim } from './sim-env.js';

const run = promisify(execFile);

let sim: NixyardSim;
let embedded: StoreGatewayHarness;
let work: string;
let custom: k8s.CustomObjectsApi;
let core: k8s.CoreV1Api;
let batch: k8s.BatchV1Api;

beforeAll(async () => {
  [sim, embedded, work] = await Promise.all([startNixyardSim(), startStoreGateway(), makeWorkDir()]);
  custom = sim.kubeConfig.makeApiClient(k8s.CustomObjectsApi);
  core = sim.kubeConfig.makeApiClient(k8s.CoreV1Api);
  batch = sim.kubeConfig.makeApiClient(k8s.BatchV1Api);
}, 60_000);

afterAll(async () => {
  await sim?.close();
  await embedded?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface NixBuildSeen {
  metadata: { name: string };
  spec: { drvPath: string; system: string; requesters?: string[] };
  status?: {
    phase?: string;
    nodeName?: string;
    podName?: string;
    outputs?: { name: string; path: string }[];
  };
}

async function nixBuilds(): Promise<NixBuildSeen[]> {
  const list = (await custom.listNamespacedCustomObject({
    group: 'nixyard.dev',
    version: 'v1alpha1',
    namespace: sim.namespace,
    plural: 'nixbuilds',
  })) as { items: NixBuildSeen[] };
  return list.items;
}

async function nixBuild(drvPath: string): Promise<NixBuildSeen | undefined> {
  return (await nixBuilds()).find((nb) => nb.metadata.name === nixBuildName(drvPath));
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `nix build … 2>&1` against a gateway. */
function nixBuild2(
  env: NodeJS.ProcessEnv,
  storeUrl: string,
  args: readonly string[],
): Promise<{ output: string; exit: number }> {
  return runCommand(['nix', 'build', '--eval-store', 'auto', '--store', storeUrl, '--no-link', ...args], {
    env,
    cwd: work,
  });
}

/** The same lines (builds of independent derivations may start in another order), and each build's log in order. */
function expectSameOutput(cluster: string, local: string): void {
  const lines = (s: string) => s.split('\n');
  expect([...lines(cluster)].sort()).toEqual([...lines(local)].sort());
  const prefixed = (s: string) => {
    const byDrv = new Map<string, string[]>();
    for (const l of lines(s)) {
      const m = /^([\w.+-]+)> (.*)$/.exec(l);
      if (m) byDrv.set(m[1]!, [...(byDrv.get(m[1]!) ?? []), m[2]!]);
    }
    return Object.fromEntries(byDrv);
  };
  expect(prefixed(cluster)).toEqual(prefixed(local));
}

/** A derivation running `script` with busybox, unique to this run. */
async function writeDrvFile(
  name: string,
  script: string,
  system = 'builtins.currentSystem',
): Promise<string> {
  const file = join(work, `${name}.nix`);
  await writeFile(
    file,
    `let bb = builtins.path { path = ./bbdir; name = "busybox"; }; B = "\${bb}/bin/busybox"; in
derivation {
  name = "${name}";
  salt = "${process.pid}-${Date.now()}";
  system = ${system};
  builder = B;
  inherit B;
  args = [ "sh" "-e" "-c" ${JSON.stringify(script)} ];
}
`,
  );
  return file;
}

async function instantiate(file: string): Promise<string> {
  const r = await runCommand(['nix-instantiate', file], { env: sim.env, cwd: work });
  expect(r.exit).toBe(0);
  return r.output.trim().split('\n').at(-1)!;
}

describe('the DAG: nix build --eval-store auto --store ssh-ng:// on the cluster', () => {
  const salt = `e2e-${process.pid}-${Date.now()}`;
  const args = ['-f', 'dag.nix', '--argstr', 'salt', salt, 'top', '-L', '--json'];
  let clusterRun: { output: string; exit: number };

  test('builds every derivation as a NixBuild → Job → pod, with the embedded default’s output', async () => {
    // Who registers what in Redis: each `put` (an EVAL naming the path), by client address.
    const gatewayAddr = /\baddr=(\S+)/.exec(await sim.index.client.client('INFO'))?.[1];
    expect(gatewayAddr).toBeDefined();
    const putters = new Map<string, Set<string>>();
    const monitor = await sim.index.client.duplicate().monitor();
    monitor.on('monitor', (_time: string, cmd: string[], source: string) => {
      if (cmd[0]?.toLowerCase() !== 'eval' || !cmd[1]?.includes("redis.call('SET', infoKey")) return;
      const path = cmd[4];
      if (path) putters.set(path, (putters.get(path) ?? new Set()).add(source));
    });
    const [c, l] = await Promise.all([
      nixBuild2(sim.env, sim.storeUrl, args),
      nixBuild2(embedded.env, embedded.storeUrl, args),
    ]).finally(() => monitor.disconnect());
    clusterRun = c;
    expect(l.exit).toBe(0);
    if (c.exit !== 0) throw new Error(c.output + JSON.stringify(await nixBuilds(), null, 1));
    expect(c.output).toContain('logger> log line 3 on stderr');
    expectSameOutput(c.output, l.output);
    const built = await nixBuilds();
    const names = built.map((nb) => nb.spec.drvPath.replace(/^\/nix\/store\/[^-]+-/, '')).sort();
    expect(names).toEqual(
      expect.arrayContaining(['dep-a.drv', 'fixed-hello.drv', 'logger.drv', 'multi.drv', 'top.drv']),
    );
    for (const nb of built) {
      expect(nb.status?.phase).toBe('Succeeded');
      expect(nb.status?.nodeName).toBe('node-amd64-0');
    }
    // The outputs are the same store paths, with the same contents, as the embedded build's.
    const [{ outputs }] = JSON.parse(c.output.trim().split('\n').at(-1)!) as [{ outputs: { out: string } }];
    const top = outputs.out;
    const info = async (env: NodeJS.ProcessEnv, url: string) =>
      JSON.parse(
        (await runCommand(['nix', 'path-info', '-r', '--json', '--store', url, top], { env, cwd: work }))
          .output,
      ) as { path: string; narHash: string }[];
    const facts = (l: { path: string; narHash: string }[]) => l.map((i) => `${i.path} ${i.narHash}`).sort();
    expect(facts(await info(sim.env, sim.storeUrl))).toEqual(
      facts(await info(embedded.env, embedded.storeUrl)),
    );
    // Every output the pods built is in Redis, as another replica sees it, and each was
    // put there by its pod (a client other than the gateway), which had it from the
    // operator's NIXYARD_REDIS_URL.
    const builtOutputs = built.flatMap((nb) => (nb.status?.outputs ?? []).map((o) => o.path));
    expect(builtOutputs.length).toBeGreaterThanOrEqual(built.length);
    expect(builtOutputs).toContain(top);
    const other = await RedisPathIndex.connect(sim.redis.url);
    try {
      expect([...(await other.has(builtOutputs))].sort()).toEqual([...new Set(builtOutputs)].sort());
      for (const p of builtOutputs) expect((await other.get(p))?.path).toBe(p);
    } finally {
      await other.close();
    }
    for (const p of builtOutputs) {
      const byPod = [...(putters.get(p) ?? [])].filter((s) => s !== gatewayAddr);
      expect({ path: p, byPod: byPod.length > 0 }).toEqual({ path: p, byPod: true });
    }
    const pods = await core.listNamespacedPod({ namespace: sim.namespace });
    const envOf = (pod: k8s.V1Pod) => pod.spec?.containers[0]?.env ?? [];
    expect(pods.items.length).toBeGreaterThan(0);
    for (const pod of pods.items)
      expect(envOf(pod)).toContainEqual({ name: 'NIXYARD_REDIS_URL', value: sim.redis.url });
  });

  test('a failing derivation: the same error and log as the embedded default, exit 1', async () => {
    const fail = ['-f', 'dag.nix', '--argstr', 'salt', `${salt}-fail`, 'fail', '-L'];
    const [c, l] = await Promise.all([
      nixBuild2(sim.env, sim.storeUrl, fail),
      nixBuild2(embedded.env, embedded.storeUrl, fail),
    ]);
    expect(l.exit).toBe(1);
    expect(c.exit).toBe(1);
    expectSameOutput(c.output, l.output);
    const failed = (await nixBuilds()).find((nb) => nb.spec.drvPath.endsWith('-failing.drv'));
    expect(failed?.status).toMatchObject({ phase: 'Failed', reason: 'BuildFailed', exitCode: 100 });
  });

  test('building again: everything valid, nothing built', async () => {
    expect(clusterRun.exit).toBe(0);
    const again = await nixBuild2(sim.env, sim.storeUrl, args);
    expect(again.exit).toBe(0);
    expect(again.output).not.toContain('building');
  });

  test('kubectl get nixbuilds shows them Succeeded (the failing one Failed)', async () => {
    const { kubectl } = await ensureTools('v35');
    const home = await mkdtemp(join(tmpdir(), 'nixyard-kubectl-'));
    try {
      const { stdout } = await run(kubectl, ['-n', sim.namespace, 'get', 'nixbuilds'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, KUBECONFIG: sim.kubeconfigPath },
      });
      const rows = stdout.trim().split('\n');
      expect(rows[0]!.split(/\s+/)).toEqual(['NAME', 'SYSTEM', 'PHASE', 'NODE', 'AGE', 'DURATION']);
      const top = rows.find((r) => /-top\s/.test(r));
      expect(top).toMatch(/x86_64-linux\s+Succeeded\s+node-amd64-0\s/);
      const others = rows.slice(1).filter((r) => !/-failing\s/.test(r));
      expect(others.every((r) => /\sSucceeded\s/.test(r))).toBe(true);
      expect(rows.find((r) => /-failing\s/.test(r))).toMatch(/\sFailed\s/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe('sessions', () => {
  test('two sessions, same derivation: one NixBuild with both requesters, one Job, both succeed', async () => {
    const file = await writeDrvFile(
      'shared',
      'echo token $RANDOM$RANDOM; for i in 1 2 3 4 5 6 7 8; do echo tick $i; $B sleep 0.25; done; echo ok > $out',
    );
    const drv = await instantiate(file);
    const a = nixBuild2(sim.env, sim.storeUrl, ['-f', file, '-L']);
    await until('the NixBuild to run', async () => {
      const nb = await nixBuild(drv);
      return nb?.status?.phase === 'Building' ? nb : undefined;
    });
    const b = nixBuild2(sim.env, sim.storeUrl, ['-f', file, '-L']);
    const both = await until('two requesters', async () => {
      const nb = await nixBuild(drv);
      return (nb?.spec.requesters?.length ?? 0) === 2 ? nb : undefined;
    });
    expect(both.status?.phase).not.toBe('Succeeded');
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.exit).toBe(0);
    expect(rb.exit).toBe(0);
    const token = (s: string) => /token (\d+)/.exec(s)?.[1];
    expect(token(ra.output)).toBeDefined();
    expect(token(rb.output)).toBe(token(ra.output));
    const jobs = await batch.listNamespacedJob({
      namespace: sim.namespace,
      labelSelector: `nixyard.dev/nixbuild=${nixBuildName(drv)}`,
    });
    expect(jobs.items).toHaveLength(1);
  });

  test('a client that disconnects: its NixBuild is cancelled, no pod is left', async () => {
    const file = await writeDrvFile('abandoned', 'echo started; $B sleep 60; echo never > $out');
    const drv = await instantiate(file);
    const child = spawn(
      'nix',
      ['build', '--eval-store', 'auto', '--store', sim.storeUrl, '-f', file, '--no-link', '-L'],
      { env: sim.env, cwd: work, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    await until('the build log', () =>
      Promise.resolve(text.includes('abandoned> started') ? true : undefined),
    );
    child.kill('SIGKILL');
    await exited;
    const name = nixBuildName(drv);
    const nb = await until('the NixBuild cancelled', async () => {
      const found = await nixBuild(drv);
      return !found || found.status?.phase === 'Cancelled' ? (found ?? { gone: true }) : undefined;
    });
    expect(nb).toBeDefined();
    await until(
      'no pod left',
      async () => {
        const pods = await core.listNamespacedPod({
          namespace: sim.namespace,
          labelSelector: `nixyard.dev/nixbuild=${name}`,
        });
        return pods.items.length === 0 ? true : undefined;
      },
      20_000,
    );
    expect(await sim.store.isValid(drv.replace(/\.drv$/, ''))).toBe(false);
  });
});

describe('two gateway replicas', () => {
  test('one derivation asked of both: one NixBuild wanted by a session of each, one Job, both get result and log', async () => {
    const second = await sim.addGateway();
    const file = await writeDrvFile(
      'two-replicas',
      // Long enough for the second client to join under load (about 4 s).
      'echo token $RANDOM$RANDOM; for i in $($B seq 1 16); do echo tick $i; $B sleep 0.25; done; echo ok > $out',
    );
    const drv = await instantiate(file);
    const viaFirst = nixBuild2(sim.env, sim.storeUrl, ['-f', file, '-L']);
    await until('the NixBuild to run', async () =>
      (await nixBuild(drv))?.status?.phase === 'Building' ? true : undefined,
    );
    const viaSecond = nixBuild2(second.env, second.storeUrl, ['-f', file, '-L']);
    const both = await until('a requester from each replica', async () => {
      const nb = await nixBuild(drv);
      return (nb?.spec.requesters?.length ?? 0) === 2 ? nb : undefined;
    });
    expect(both.status?.phase).toBe('Building');
    const [a, b] = await Promise.all([viaFirst, viaSecond]);
    expect([a.exit, b.exit]).toEqual([0, 0]);
    const token = (o: string) => /two-replicas> token (\d+)/.exec(o)?.[1];
    expect(token(a.output)).toBeDefined();
    expect(token(b.output)).toBe(token(a.output));
    expect(b.output).toContain('two-replicas> tick 16');
    const jobs = await batch.listNamespacedJob({
      namespace: sim.namespace,
      labelSelector: `nixyard.dev/nixbuild=${nixBuildName(drv)}`,
    });
    expect(jobs.items).toHaveLength(1);
    // Both replicas see the output valid: one index, one volume.
    const out = (await nixBuild(drv))!.status!.outputs![0]!.path;
    expect(await sim.store.isValid(out)).toBe(true);
    expect(await second.store.isValid(out)).toBe(true);
  });
});

describe('a gateway that died', () => {
  /** A NixBuild as a gateway creates it, wanted by `requesters`, for a long build. */
  const leftBehind = async (name: string, requesters: string[]) => {
    const file = await writeDrvFile(name, 'echo started; $B sleep 60; echo never > $out');
    const drv = await instantiate(file);
    const copied = await runCommand(['nix', 'copy', '--derivation', '--to', sim.storeUrl, drv], {
      env: sim.env,
      cwd: work,
    });
    expect(copied.exit).toBe(0);
    await custom.createNamespacedCustomObject({
      group: 'nixyard.dev',
      version: 'v1alpha1',
      namespace: sim.namespace,
      plural: 'nixbuilds',
      body: {
        apiVersion: 'nixyard.dev/v1alpha1',
        kind: 'NixBuild',
        metadata: { name: nixBuildName(drv) },
        spec: { drvPath: drv, system: 'x86_64-linux', requesters, keepRunning: false },
      },
    });
    // The abandoned one may be cancelled before its pod runs (the check every 500 ms).
    await until('the build to run', async () => {
      const phase = (await nixBuild(drv))?.status?.phase;
      return phase === 'Building' || phase === 'Cancelled' ? true : undefined;
    });
    return drv;
  };
  const podsOf = async (drv: string) =>
    (
      await core.listNamespacedPod({
        namespace: sim.namespace,
        labelSelector: `nixyard.dev/nixbuild=${nixBuildName(drv)}`,
      })
    ).items;

  test('a build only its sessions wanted is cancelled (their registrations are gone); a live session’s is not', async () => {
    // `live` is registered as a session of a replica that still runs; `dead` never was.
    const live = await sim.store.openSession(`e2e-live-${process.pid}`);
    try {
      const wanted = await leftBehind('wanted', [live.sessionId]);
      const abandoned = await leftBehind('abandoned-by-crash', [`e2e-dead-${process.pid}`]);
      const cancelled = await until('the abandoned build cancelled', async () => {
        const nb = await nixBuild(abandoned);
        return nb?.status?.phase === 'Cancelled' ? nb : undefined;
      });
      expect(cancelled.spec.requesters).toEqual([]);
      await until(
        'its pod gone',
        async () => ((await podsOf(abandoned)).length === 0 ? true : undefined),
        20_000,
      );
      // Several rounds later the live session's build runs, still wanted.
      await until('the wanted build to run', async () =>
        (await nixBuild(wanted))?.status?.phase === 'Building' ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 4 * ABANDONED_CHECK_MS));
      const kept = await nixBuild(wanted);
      expect(kept?.status?.phase).toBe('Building');
      expect(kept?.spec.requesters).toEqual([live.sessionId]);
      await live.close();
      await until('the build cancelled once its session ended', async () =>
        (await nixBuild(wanted))?.status?.phase === 'Cancelled' ? true : undefined,
      );
    } finally {
      await live.close();
    }
  });
});

describe('a remote builder (nix-build --builders): derivations sent whole', () => {
  test.each(['ssh-ng', 'ssh'])(
    '%s://: BuildDerivation → a NixBuild naming its derivation file → a pod → outputs copied back',
    async (scheme) => {
      const file = await writeDrvFile(
        `hook-${scheme.replace('-', '')}`,
        'echo built remotely; echo remote > $out',
      );
      const drv = await instantiate(file);
      const url = sim.storeUrl.replace(/^ssh-ng:/, `${scheme}:`);
      const r = await runCommand(
        ['nix-build', file, '--no-out-link', '--max-jobs', '0', '--builders', `${url} x86_64-linux`],
        { env: sim.env, cwd: work },
      );
      if (r.exit !== 0) throw new Error(`nix-build failed (exit ${r.exit}):\n${r.output}`);
      expect(r.output).toContain('built remotely');
      const out = r.output.trim().split('\n').at(-1)!;
      expect((await run('cat', [out])).stdout).toBe('remote\n');
      // The hook sent the derivation, not its .drv: the gateway's store never had it.
      expect(await sim.store.isValid(drv)).toBe(false);
      expect(await sim.store.isValid(out)).toBe(true);
      const nb = await nixBuild(drv);
      expect(nb?.status?.phase).toBe('Succeeded');
      expect((nb?.spec as { derivationFile?: string }).derivationFile).toMatch(
        new RegExp(`^derivations/${drv.slice(11, 43)}-hook-${scheme.replace('-', '')}\\.[0-9a-f]+\\.drv$`),
      );
      // Removed once the build has ended.
      const left = await readdir(join(sim.store.layout.dataDir, 'derivations')).catch(() => []);
      expect(left.filter((f) => f.startsWith(drv.slice(11, 43)))).toEqual([]);
    },
  );
});

describe('check mode (nix build --rebuild) on the cluster', () => {
  const rebuild = async (name: string, script: string) => {
    const file = await writeDrvFile(name, script);
    const drv = await instantiate(file);
    expect((await nixBuild2(sim.env, sim.storeUrl, ['-f', file])).exit).toBe(0);
    const out = (await nixBuild(drv))!.status!.outputs![0]!.path;
    const before = await sim.store.requirePathInfo(out);
    const r = await nixBuild2(sim.env, sim.storeUrl, ['-f', file, '--rebuild', '-L']);
    // The valid output is left as it was, whatever the check found.
    expect((await sim.store.requirePathInfo(out)).narHash.toBase16()).toBe(before.narHash.toBase16());
    return { drv, out, r };
  };
  /** Check NixBuilds (`<hash>-check-<token>`) of `drv`, once they are gone. */
  const checksGone = (drv: string) =>
    until('the check NixBuild removed', async () => {
      const left = (await nixBuilds()).filter((nb) =>
        nb.metadata.name.startsWith(`${drv.slice(11, 43)}-check-`),
      );
      return left.length === 0 ? true : undefined;
    });

  test('a deterministic derivation: rebuilt by a pod in a scratch store, exit 0', async () => {
    const { drv, r } = await rebuild('stable', 'echo rebuilding; echo same > $out');
    if (r.exit !== 0) throw new Error(`nix build --rebuild failed (exit ${r.exit}):\n${r.output}`);
    expect(r.output).toContain('stable> rebuilding');
    await checksGone(drv);
  });

  test("a non-deterministic one: Nix's NotDeterministic error, exit 1", async () => {
    const { drv, out, r } = await rebuild('unstable', 'echo $RANDOM$RANDOM$RANDOM > $out');
    expect(r.exit).toBe(1);
    expect(r.output).toContain(`may not be deterministic: output '${out}' differs`);
    await checksGone(drv);
  });
});

describe('aarch64-linux', () => {
  test('an aarch64-linux derivation is built by a pod on the arm64 node', async () => {
    const file = await writeDrvFile(
      'on-arm',
      'echo built on the arm64 node; echo arm > $out',
      '"aarch64-linux"',
    );
    const drv = await instantiate(file);
    const r = await nixBuild2(sim.env, sim.storeUrl, ['-f', file, '-L', '--json']);
    expect(r.exit).toBe(0);
    expect(r.output).toContain('on-arm> built on');
    const nb = await nixBuild(drv);
    expect(nb?.spec.system).toBe('aarch64-linux');
    expect(nb?.status).toMatchObject({ phase: 'Succeeded', nodeName: 'node-arm64-0' });
  });

  test('a DAG across systems: each derivation on a node of its own arch, outputs flow between them', async () => {
    const file = join(work, 'mixed.nix');
    await writeFile(
      file,
      `let bb = builtins.path { path = ./bbdir; name = "busybox"; }; B = "\${bb}/bin/busybox";
  mk = name: system: script: extra: derivation ({
    inherit name system B; salt = "${process.pid}-${Date.now()}"; builder = B;
    args = [ "sh" "-e" "-c" script ];
  } // extra);
  base = mk "mixed-base" "x86_64-linux" "echo base > $out" {};
  mid = mk "mixed-mid" "aarch64-linux" "echo mid step; $B cat $base > $out; echo mid >> $out" { inherit base; };
  top = mk "mixed-top" "x86_64-linux" "$B cat $mid > $out; echo top >> $out" { inherit mid; };
in { inherit base mid top; }
`,
    );
    const r = await nixBuild2(sim.env, sim.storeUrl, ['-f', file, 'top', '-L', '--json']);
    if (r.exit !== 0) throw new Error(`nix build failed (exit ${r.exit}):\n${r.output}`);
    expect(r.output).toContain('mixed-mid> mid step');
    const [{ outputs }] = JSON.parse(r.output.trim().split('\n').at(-1)!) as [{ outputs: { out: string } }];
    expect(await readFile(sim.store.layout.contentPath(outputs.out), 'utf8')).toBe('base\nmid\ntop\n');
    const placed: Record<string, string | undefined> = {};
    for (const attr of ['base', 'mid', 'top']) {
      const drv = (
        await runCommand(['nix-instantiate', file, '-A', attr], { env: sim.env, cwd: work })
      ).output
        .trim()
        .split('\n')
        .at(-1)!;
      const nb = await nixBuild(drv);
      expect(nb?.status?.phase).toBe('Succeeded');
      placed[`${attr} ${nb?.spec.system}`] = nb?.status?.nodeName;
    }
    expect(placed).toEqual({
      'base x86_64-linux': 'node-amd64-0',
      'mid aarch64-linux': 'node-arm64-0',
      'top x86_64-linux': 'node-amd64-0',
    });
  });
});

describe('logs survive a flaky API server and a retried pod', () => {
  const lines = (output: string, name: string) =>
    output
      .split('\n')
      .filter((l) => l.startsWith(`${name}> `))
      .map((l) => l.slice(name.length + 2));
  const counting = (n: number) =>
    `for i in $($B seq 1 ${n}); do echo line $i; $B sleep 0.1; done; echo ok > $out`;

  test('dropped watches, expired resourceVersions, failing log requests: every line once, in order', async () => {
    const file = await writeDrvFile('flaky', counting(20));
    const drv = await instantiate(file);
    const faults = [
      sim.cluster.server.faults.add({ method: 'GET', path: '/log$', times: 1, action: { type: 'drop' } }),
      sim.cluster.server.faults.add({
        method: 'GET',
        path: '/log$',
        times: 1,
        action: { type: 'status', code: 500 },
      }),
    ];
    try {
      const build = nixBuild2(sim.env, sim.storeUrl, ['-f', file, '-L']);
      await until('the build to run', async () =>
        (await nixBuild(drv))?.status?.phase === 'Building' ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 500));
      sim.cluster.server.expireResourceVersions();
      expect(sim.cluster.server.dropWatches({ plural: 'nixbuilds' })).toBeGreaterThan(0);
      const r = await build;
      expect(r.exit).toBe(0);
      expect(lines(r.output, 'flaky')).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
    } finally {
      for (const f of faults) sim.cluster.server.faults.remove(f);
    }
  });

  test('an OOM-killed pod is retried: its lines, then every line of the new pod, each once', async () => {
    const file = await writeDrvFile('oom-retry', counting(10));
    const drv = await instantiate(file);
    const build = nixBuild2(sim.env, sim.storeUrl, ['-f', file, '-L']);
    const first = await until('the first pod', async () => {
      const nb = await nixBuild(drv);
      return nb?.status?.phase === 'Building' && nb.status.podName ? nb.status.podName : undefined;
    });
    await new Promise((r) => setTimeout(r, 400));
    await fetch(`${sim.cluster.url}/__sim/pods/${sim.namespace}/${first}/oomkill`, { method: 'POST' });
    const r = await build;
    expect(r.exit).toBe(0);
    const got = lines(r.output, 'oom-retry');
    const restart = got.lastIndexOf('line 1');
    expect(restart).toBeGreaterThan(0);
    expect(got.slice(0, restart)).toEqual(Array.from({ length: restart }, (_, i) => `line ${i + 1}`));
    expect(got.slice(restart)).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 1}`));
    expect((await nixBuild(drv))?.status).toMatchObject({ phase: 'Succeeded' });
    // The killed pod's output locks outlive it for their lease (5 s here): a retry that
    // starts before says so as Nix does, as a message of its own, never a builder line.
    const out = (await nixBuild(drv))!.status!.outputs![0]!.path;
    expect(r.output).not.toContain('oom-retry> waiting for lock');
    if (r.output.includes('waiting for lock'))
      expect(r.output.split('\n')).toContain(`waiting for lock on '${out}'`);
  });
});
