#!/usr/bin/env node
// Transfer benchmark: Nixyard's gateway against a real `nix-daemon --stdio` (and
// `nix-store --serve --write`) behind sshd, same client, same machine, same run.
// Not part of `npm test`. Needs root, Linux, Debian's nix 2.8, openssh, util-linux,
// /bin/busybox (static) and a built dist/ (`npx tsc -p tsconfig.build.json`).
// Usage and what it measures: bench/README.md.
//
//   sudo node bench/transfer.mjs                 # full run (defaults below)
//   sudo BENCH_QUICK=1 node bench/transfer.mjs   # smoke run, small sizes, 1 run each
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Gateway,
  NIX_CONFIG,
  clientEnvFor,
  cpuOf,
  freshDaemonRemote,
  gatewaySettings,
  layout,
  list,
  log,
  measureRun,
  memOf,
  summarize,
  timeCells,
  mib,
  num,
  pingTargets,
  printTable,
  run,
  runMain,
  serverSettings,
  startBench,
  writeRemoteProgram,
} from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- settings
const S = {
  ...serverSettings('/tmp/nixyard-bench', 22990),
  paths: num('BENCH_PATHS', 200, 20),
  mib: num('BENCH_MIB', 1024, 64),
  infoPaths: num('BENCH_INFO_PATHS', 2000, 200),
  bigMib: num('BENCH_BIG_MIB', 2048, 256),
  runs: num('BENCH_RUNS', 3, 1),
  protocols: list('BENCH_PROTOCOLS', 'ssh-ng,ssh'),
  only: list('BENCH_ONLY', 'copy,info,big'),
  ...gatewaySettings(),
};
for (const p of S.protocols) if (p !== 'ssh-ng' && p !== 'ssh') throw new Error(`unknown protocol ${p}`);

const L = layout(S.dir, 'daemon-maxrss.txt');
const { bin: BIN, remotes: REMOTES, currentRemote: CURRENT_REMOTE } = L;
const clientEnv = clientEnvFor(L.ssh);
const gateway = new Gateway(S, L);

// ---------------------------------------------------------------- helpers
/**
 * Runs a client command, timing it; samples the gateway's RSS (every 50 ms) while it runs.
 * Returns seconds and, when a gateway pid is given, its peak RSS (VmHWM), the largest
 * VmRSS sample and its user + system CPU seconds (not its children's) during the command.
 */
async function timed(label, cmd, args, { gatewayPid, stdout = 'ignore' } = {}) {
  const errFile = join(S.dir, 'last-client-stderr.txt');
  const outFile = join(S.dir, 'last-client-stdout.txt');
  const start = process.hrtime.bigint();
  const child = spawn(cmd, args, {
    env: clientEnv,
    stdio: ['ignore', stdout === 'file' ? openSync(outFile, 'w') : 'ignore', openSync(errFile, 'w')],
  });
  let maxRss = 0;
  const cpu0 = gatewayPid ? cpuOf(gatewayPid) : undefined;
  const sampler = gatewayPid
    ? setInterval(() => {
        const m = memOf(gatewayPid);
        if (m) maxRss = Math.max(maxRss, m.rss);
      }, 50)
    : undefined;
  const [code, signal] = await once(child, 'exit');
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (sampler) clearInterval(sampler);
  if (code !== 0) {
    throw new Error(
      `${label}: ${cmd} ${args.join(' ')} failed (${code ?? signal}):\n${readFileSync(errFile, 'utf8')}`,
    );
  }
  const m = gatewayPid ? memOf(gatewayPid) : undefined;
  const cpu1 = gatewayPid ? cpuOf(gatewayPid) : undefined;
  return {
    seconds,
    hwm: m?.hwm,
    maxRss: m ? Math.max(maxRss, m.rss) : undefined,
    cpu: cpu0 && cpu1 ? cpu1.self - cpu0.self : undefined,
  };
}

// ---------------------------------------------------------------- set-up
// Remote programs for sshd: the real Nix in a private mount namespace whose /nix is the
// directory named in CURRENT_REMOTE, under /usr/bin/time to record its peak RSS.
function writeWrappers() {
  writeRemoteProgram(L, 'remote-nix-daemon', '/usr/bin/nix-daemon', '/usr/bin/nix-daemon', NIX_CONFIG);
  writeRemoteProgram(L, 'remote-nix-store', '/usr/bin/nix-store', '/usr/bin/nix-store', NIX_CONFIG);
}

// ---------------------------------------------------------------- closures
function buildClosure(purpose, n, kib) {
  const salt = `${purpose}-${n}x${kib}`;
  log(
    `building the ${purpose} closure (${n} paths × ${kib} KiB) with the local nix (cached after the first run)`,
  );
  const out = run(
    'nix-build',
    [
      join(HERE, 'gen.nix'),
      '--arg',
      'n',
      String(n),
      '--arg',
      'kib',
      String(kib),
      '--argstr',
      'salt',
      salt,
      '--no-out-link',
    ],
    { env: clientEnv, cwd: S.dir },
  ).trim();
  const closure = run('nix-store', ['-qR', out], { env: clientEnv }).trim().split('\n');
  const size = Number(run('nix', ['path-info', '-S', out], { env: clientEnv }).trim().split(/\s+/).pop());
  if (closure.length !== n)
    throw new Error(`expected ${n} paths in the closure of ${out}, got ${closure.length}`);
  return { top: out, count: closure.length, narBytes: size };
}

// ---------------------------------------------------------------- targets
const url = (target, protocol) => {
  const host = target === 'nix' ? 'bench-daemon' : 'bench-nixyard';
  const prog = protocol === 'ssh-ng' ? 'remote-nix-daemon' : 'remote-nix-store';
  return `${protocol}://root@${host}${target === 'nix' ? `?remote-program=${join(BIN, prog)}` : ''}`;
};

/** Puts a fresh, empty store behind `target` (a new /nix for nix-daemon, a restarted gateway for Nixyard). */
async function freshTarget(target, name) {
  if (target === 'nix') {
    freshDaemonRemote(L, name);
    return undefined;
  }
  return (await gateway.start(name)).proc.pid;
}

async function copyTo(target, protocol, paths, label, pid) {
  return timed(label, 'nix', ['copy', '--no-check-sigs', '--to', url(target, protocol), ...paths], {
    gatewayPid: pid,
  });
}

async function measure(label, target, fn) {
  // measureRun starts every run with a sync: no dirty pages left by the previous one (its
  // write-back would otherwise land in this run's time, whichever target it belongs to).
  const r = await measureRun(target, L.usage, fn);
  log(
    `  ${label} ${target === 'nix' ? 'nix-daemon' : 'nixyard'}: ${r.seconds.toFixed(2)} s, ` +
      `server CPU ${r.cpu?.toFixed(2) ?? '-'} s, peak RSS ${mib(r.peak)}`,
  );
  return r;
}

// ---------------------------------------------------------------- scenarios
const rows = [];
function addRow(op, protocol, results) {
  rows.push({
    op,
    protocol,
    ...summarize(results),
    yardBase: Math.max(...results.nixyard.map((r) => r.baseline ?? 0)),
  });
}

/** `nix copy --to` of a closure, fresh remote store each run, targets alternating. */
async function benchCopy(opName, protocol, closure, purpose) {
  const results = { nix: [], nixyard: [] };
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      const name = `${purpose}-${protocol}-${target}-${i}`;
      const pid = await freshTarget(target, name);
      const baseline = gateway.current?.baseline;
      const r = await measure(`${opName} [${protocol}] run ${i + 1}`, target, () =>
        copyTo(target, protocol, [closure.top], opName, pid),
      );
      r.baseline = baseline;
      results[target].push(r);
      if (target === 'nix' && !S.keep && i < S.runs - 1)
        rmSync(join(REMOTES, name), { recursive: true, force: true });
    }
  }
  addRow(opName, protocol, results);
  return results;
}

/** `nix path-info -r` of a closure already on the remote (copied once, untimed). */
async function benchPathInfo(protocol, closure) {
  const opName = `path-info -r, ${closure.count} paths`;
  const results = { nix: [], nixyard: [] };
  const daemonDir = `info-${protocol}-nix`;
  freshDaemonRemote(L, daemonDir);
  await copyTo('nix', protocol, [closure.top], 'seed');
  const pid = await freshTarget('nixyard', `info-${protocol}-nixyard`);
  const baseline = gateway.current.baseline;
  await copyTo('nixyard', protocol, [closure.top], 'seed', pid);
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      if (target === 'nix') writeFileSync(CURRENT_REMOTE, join(REMOTES, daemonDir));
      const r = await measure(`${opName} [${protocol}] run ${i + 1}`, target, () =>
        timed(opName, 'nix', ['path-info', '-r', '--store', url(target, protocol), closure.top], {
          gatewayPid: target === 'nix' ? undefined : pid,
          stdout: 'file',
        }),
      );
      const lines = readFileSync(join(S.dir, 'last-client-stdout.txt'), 'utf8').trim().split('\n').length;
      if (lines !== closure.count)
        throw new Error(`${opName}: got ${lines} paths, expected ${closure.count}`);
      r.baseline = baseline;
      results[target].push(r);
    }
  }
  // The peak of a long-lived gateway includes the untimed seed copy: report the path-info
  // runs' own maximum instead.
  for (const r of results.nixyard) r.peak = r.maxRss;
  addRow(opName, protocol, results);
  if (!S.keep) rmSync(join(REMOTES, daemonDir), { recursive: true, force: true });
}

/** One big path: copy --to (fresh store each run), then copy --from it into a fresh local chroot store. */
async function benchBig(protocol, big) {
  const up = `copy --to, 1 path, ${mib(big.narBytes)}`;
  const down = `copy --from, 1 path, ${mib(big.narBytes)}`;
  await benchCopy(up, protocol, big, 'big');
  // The last run's stores hold the path: download it from them, gateway restarted so its
  // VmHWM covers this download only.
  const results = { nix: [], nixyard: [] };
  const nixDir = join(REMOTES, `big-${protocol}-nix-${S.runs - 1}`);
  const yardName = `big-${protocol}-nixyard-${S.runs - 1}`;
  await gateway.stop(true); // keep its store: the downloads read from it
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      let pid;
      let baseline;
      if (target === 'nix') writeFileSync(CURRENT_REMOTE, nixDir);
      else {
        await gateway.stop(true);
        const g = await gateway.start(yardName, false); // restarted: its VmHWM covers this download only
        pid = g.proc.pid;
        baseline = g.baseline;
      }
      const dest = join(S.dir, 'download');
      rmSync(dest, { recursive: true, force: true });
      const r = await measure(`${down} [${protocol}] run ${i + 1}`, target, () =>
        timed(
          down,
          'nix',
          ['copy', '--no-check-sigs', '--from', url(target, protocol), '--to', dest, big.top],
          {
            gatewayPid: pid,
          },
        ),
      );
      r.baseline = baseline;
      results[target].push(r);
      rmSync(dest, { recursive: true, force: true });
    }
  }
  addRow(down, protocol, results);
  if (!S.keep) rmSync(nixDir, { recursive: true, force: true });
  await gateway.stop();
}

// ---------------------------------------------------------------- main
function printResults(version) {
  const head = [
    'operation',
    'proto',
    'nix-daemon s',
    'Nixyard s',
    'ratio',
    'server CPU s nix/yard',
    'daemon peak RSS',
    'gateway peak RSS (idle)',
  ];
  const body = rows.map((r) => [
    r.op,
    r.protocol,
    ...timeCells(r),
    mib(r.nixPeak),
    `${mib(r.yardPeak)} (${mib(r.yardBase)})`,
  ]);
  console.log('');
  console.log(
    `Nixyard vs nix-daemon (${run('nix', ['--version']).trim()}), median of ${S.runs} run(s), seconds; ratio = Nixyard / nix-daemon`,
  );
  printTable(head, body);
  console.log(
    'server CPU: user+system seconds of nix-daemon/nix-store (GNU time) and of the gateway process (/proc), medians.\n' +
      'peak RSS: nix-daemon/nix-store = max RSS of the server process (GNU time); gateway = VmHWM of the whole ' +
      'gateway process, restarted before each copy run (path-info: max sampled VmRSS); (idle) = RSS after start-up.',
  );
  console.log(`gateway: ${version}`);
}

async function main() {
  const version = await startBench(S, L, gateway, {
    why: 'the client uses the local store directly',
    setUp: writeWrappers,
  });

  const copy = S.only.includes('copy')
    ? buildClosure('copy', S.paths, Math.max(1, Math.round((S.mib * 1024) / S.paths)))
    : undefined;
  const info = S.only.includes('info') ? buildClosure('info', S.infoPaths, 1) : undefined;
  const big = S.only.includes('big') ? buildClosure('big', 1, S.bigMib * 1024) : undefined;

  // Check both targets answer before timing anything.
  await pingTargets(
    L,
    gateway,
    clientEnv,
    S.protocols.map((p) => url('nix', p)),
    S.protocols.map((p) => url('nixyard', p)),
  );

  for (const protocol of S.protocols) {
    if (copy) {
      await benchCopy(`copy --to, ${copy.count} paths, ${mib(copy.narBytes)}`, protocol, copy, 'copy');
      await gateway.stop();
    }
    if (info) {
      await benchPathInfo(protocol, info);
      await gateway.stop();
    }
    if (big) await benchBig(protocol, big);
  }
  printResults(version);
}

runMain(main, { gateway, remotes: REMOTES, keep: S.keep });
