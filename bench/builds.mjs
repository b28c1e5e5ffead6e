#!/usr/bin/env node
// Builds benchmark: the real Nix client building trivial derivations on Nixyard's gateway
// and on a real `nix-daemon --stdio` behind sshd, same client, same machine, same run.
// Not part of `npm test`. Needs root, Linux, Debian's nix 2.8, openssh, util-linux,
// /bin/busybox (static) and a built dist/ (`npx tsc -p tsconfig.build.json`).
// Usage and what it measures: bench/README.md ("Builds benchmark").
//
//   sudo node bench/builds.mjs                 # full run (defaults below)
//   sudo BENCH_QUICK=1 node bench/builds.mjs   # smoke run, small graphs, 1 run each
//
// The ssh/sshd/gateway plumbing and the helpers are shared with bench/transfer.mjs in
// bench/lib.mjs.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
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

// ---------------------------------------------------------------- settings
const S = {
  ...serverSettings('/tmp/nixyard-bench-builds', 22992),
  chain: num('BENCH_CHAIN', 200, 50),
  fan: num('BENCH_FAN', 200, 50),
  dag: num('BENCH_DAG', 500, 100),
  seed: num('BENCH_SEED', 1, 1),
  runs: num('BENCH_RUNS', 3, 1),
  // Both servers get the same: Nixyard's own defaults are the CPU count for both.
  maxJobs: num('BENCH_MAX_JOBS', availableParallelism(), availableParallelism()),
  cores: num('BENCH_CORES', availableParallelism(), availableParallelism()),
  only: list('BENCH_ONLY', 'chain,fan,noop'),
  ...gatewaySettings(),
};
for (const c of S.only) if (!['chain', 'fan', 'noop'].includes(c)) throw new Error(`unknown case ${c}`);

// The real daemon's build settings. No build users: the machine's own Nix uses the
// `nixbld` group, and two stores sharing its uids kill each other's builds
// (../shared/protocol/BUILDER-NOTES.md); as root without build users, Nix 2.8 still
// sandboxes (user, mount, pid, network namespaces).
const DAEMON_SETTINGS = [
  'sandbox = true',
  'sandbox-fallback = false',
  'build-users-group =',
  `max-jobs = ${S.maxJobs}`,
  `cores = ${S.cores}`,
];
const L = layout(S.dir, 'daemon-usage.txt');
const { bin: BIN, remotes: REMOTES, currentRemote: CURRENT_REMOTE } = L;
const EXPR = join(S.dir, 'builds.nix');
const clientEnv = clientEnvFor(L.ssh);
// Restarting keeps the previous data dir (the no-op case restarts on its seeded store).
const gateway = new Gateway(S, L, {
  extraArgs: ['--max-jobs', String(S.maxJobs), '--cores', String(S.cores)],
  stderrToLog: true,
  keepDataOnRestart: true,
});

// ---------------------------------------------------------------- set-up
// The remote program for sshd: the real nix-daemon in a private mount namespace whose
// /nix is the directory named in CURRENT_REMOTE, with the build settings above, under
// /usr/bin/time for its peak RSS and CPU time (both include its build children); and
// the expression.
function setUp() {
  const nixConfig = [NIX_CONFIG, ...DAEMON_SETTINGS].join('\n');
  writeRemoteProgram(L, 'remote-nix-daemon', 'nix-daemon', '/usr/bin/nix-daemon', nixConfig);
  writeExpression();
}

// ---------------------------------------------------------------- the derivations
/** A small seeded PRNG (mulberry32), so the DAG is the same on every machine and run. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * The DAG's edges: node i (i ≥ 1) depends on 1–3 distinct random earlier nodes; the last
 * node depends on every node nothing else depends on, so building it builds all `n`.
 */
function dagDeps(n, seed) {
  const rand = prng(seed);
  const deps = [[]];
  const used = new Set();
  for (let i = 1; i < n - 1; i++) {
    const d = new Set();
    const k = Math.min(i, 1 + Math.floor(rand() * 3));
    while (d.size < k) d.add(Math.floor(rand() * i));
    for (const j of d) used.add(j);
    deps.push([...d].sort((a, b) => a - b));
  }
  if (n > 1) deps.push([...Array(n - 1).keys()].filter((j) => !used.has(j)));
  return deps;
}

/**
 * Writes BENCH_DIR/builds.nix: every derivation runs the static busybox (copied into the
 * store with builtins.path, so it is an input like any other and works in a sandbox) as
 * `sh -c 'echo NAME DEPS > $out'`; naming the dependencies' outputs makes them inputs and
 * references. `salt` is part of every name, so a new salt means all-new derivations.
 */
function writeExpression() {
  const bbDir = join(S.dir, 'busybox');
  mkdirSync(bbDir, { recursive: true });
  copyFileSync('/bin/busybox', join(bbDir, 'busybox')); // argv[0] must end in "busybox"
  chmodSync(join(bbDir, 'busybox'), 0o755);
  const deps = dagDeps(S.dag, S.seed);
  writeFileSync(
    join(S.dir, 'dag-deps.nix'),
    `# generated by bench/builds.mjs: node i's dependencies (indices), seed ${S.seed}\n[\n${deps
      .map((d) => `  [ ${d.join(' ')} ]`)
      .join('\n')}\n]\n`,
  );
  writeFileSync(
    EXPR,
    `# generated by bench/builds.mjs
{ salt, chainLength ? ${S.chain}, fanWidth ? ${S.fan} }:
let
  busybox = builtins.path { path = ./busybox; name = "nixyard-bench-busybox"; };
  drv = name: deps: derivation {
    name = "bench-\${salt}-\${name}";
    system = builtins.currentSystem;
    builder = "\${busybox}/busybox";
    args = [ "sh" "-c" "echo \${name} \${toString deps} > $out" ];
  };
  # 0 <- 1 <- … <- (chainLength - 1): each link depends on the previous one.
  chain = builtins.foldl' (prev: i: drv "chain-\${toString i}" (if prev == null then [ ] else [ prev ]))
    null (builtins.genList (i: i) chainLength);
  # fanWidth independent leaves and a top that depends on all of them.
  fan = drv "fan-top" (builtins.genList (i: drv "fan-\${toString i}" [ ]) fanWidth);
  # ${S.dag} nodes with seeded random edges (dag-deps.nix); the last node is the top.
  edges = import ./dag-deps.nix;
  nodes = builtins.genList
    (i: drv "dag-\${toString i}" (map (builtins.elemAt nodes) (builtins.elemAt edges i)))
    (builtins.length edges);
  dag = builtins.elemAt nodes (builtins.length edges - 1);
in
{ inherit busybox chain fan dag; }
`,
  );
}

// ---------------------------------------------------------------- targets
const url = (target) =>
  target === 'nix'
    ? `ssh-ng://root@bench-daemon?remote-program=${join(BIN, 'remote-nix-daemon')}`
    : 'ssh-ng://root@bench-nixyard';

const errFile = () => join(S.dir, 'last-client-stderr.txt');

/**
 * `nix build --eval-store auto --store URL -f builds.nix ATTR`, timed: local evaluation,
 * the .drv closure copied to the remote, the builds there. Samples the gateway's RSS.
 */
async function nixBuild(target, attr, salt, gatewayPid) {
  const args = ['build', '--eval-store', 'auto', '--store', url(target), '--no-link', '-f', EXPR];
  args.push('--argstr', 'salt', salt, '-v', attr);
  const cpu0 = gatewayPid ? cpuOf(gatewayPid) : undefined;
  const start = process.hrtime.bigint();
  const child = spawn('nix', args, { env: clientEnv, stdio: ['ignore', 'ignore', openSync(errFile(), 'w')] });
  const [code, signal] = await once(child, 'exit');
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const stderr = readFileSync(errFile(), 'utf8');
  if (code !== 0) throw new Error(`nix ${args.join(' ')} failed (${code ?? signal}):\n${stderr}`);
  const cpu1 = gatewayPid ? cpuOf(gatewayPid) : undefined;
  return {
    seconds,
    // With -v, the client prints one "building '…drv'" line per build the remote started.
    built: stderr.split('\n').filter((l) => /^building '\/nix\/store\/[^']+\.drv'/.test(l)).length,
    cpu: cpu0 && cpu1 ? cpu1.self + cpu1.children - cpu0.self - cpu0.children : undefined,
    hwm: gatewayPid ? memOf(gatewayPid)?.hwm : undefined,
  };
}

/** One timed build; checks the number of derivations the remote built. */
async function measure(label, target, attr, salt, expectBuilt) {
  // measureRun syncs first: no write-back of the previous run in this run's time.
  const r = await measureRun(target, L.usage, () =>
    nixBuild(target, attr, salt, target === 'nixyard' ? gateway.current.proc.pid : undefined),
  );
  log(
    `  ${label} ${target === 'nix' ? 'nix-daemon' : 'nixyard'}: ${r.seconds.toFixed(2)} s, ` +
      `${r.built} built, server CPU ${r.cpu?.toFixed(2) ?? '-'} s, peak RSS ${mib(r.peak)}`,
  );
  if (r.built !== expectBuilt)
    throw new Error(`${label}: ${r.built} derivations built, expected ${expectBuilt}`);
  return r;
}

/** Puts busybox on the remote (untimed), so every timed run builds only. */
function seedBusybox(target, busybox) {
  run('nix', ['copy', '--no-check-sigs', '--to', url(target), busybox], { env: clientEnv });
}

// ---------------------------------------------------------------- cases
const loadAtStart = loadavg()[0];
const runId = `${Date.now().toString(36)}`;
const rows = [];

function addRow(name, drvs, results) {
  rows.push({
    name,
    drvs,
    ...summarize(results),
    yardBase: results.baseline,
  });
}

/**
 * Fresh builds of `attr`: a fresh store per target for the case, a new salt per run (so
 * every run builds all `drvs` derivations), targets alternating.
 */
async function benchFresh(kind, attr, drvs, busybox) {
  const label = `${kind}, ${drvs} derivations`;
  log(`${label}: fresh builds, ${S.runs} run(s) per target`);
  const results = { nix: [], nixyard: [] };
  freshDaemonRemote(L, kind);
  seedBusybox('nix', busybox);
  const g = await gateway.start(kind);
  results.baseline = g.baseline;
  seedBusybox('nixyard', busybox);
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      if (target === 'nix') writeFileSync(CURRENT_REMOTE, join(REMOTES, kind));
      const salt = `${runId}-${kind}-${target}-${i}`;
      results[target].push(await measure(`${label} run ${i + 1}`, target, attr, salt, drvs));
    }
  }
  addRow(label, drvs, results);
  await gateway.stop();
  if (!S.keep) rmSync(join(REMOTES, kind), { recursive: true, force: true });
}

/**
 * No-op rebuild: the DAG is built once per target (untimed), then built again: every
 * output exists on the remote, nothing is built. The gateway is restarted (data kept)
 * after the seeding build so its peak RSS covers the no-op runs only.
 */
async function benchNoop(busybox) {
  const drvs = S.dag;
  const label = `no-op rebuild, ${drvs}-derivation DAG`;
  const salt = `${runId}-noop`;
  log(`${label}: seeding build (untimed)`);
  freshDaemonRemote(L, 'noop');
  seedBusybox('nix', busybox);
  await measure('seed', 'nix', 'dag', salt, drvs);
  await gateway.start('noop');
  seedBusybox('nixyard', busybox);
  await measure('seed', 'nixyard', 'dag', salt, drvs);
  const g = await gateway.start('noop', false);
  const results = { nix: [], nixyard: [], baseline: g.baseline };
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      if (target === 'nix') writeFileSync(CURRENT_REMOTE, join(REMOTES, 'noop'));
      results[target].push(await measure(`${label} run ${i + 1}`, target, 'dag', salt, 0));
    }
  }
  addRow(label, drvs, results);
  await gateway.stop();
  if (!S.keep) rmSync(join(REMOTES, 'noop'), { recursive: true, force: true });
}

// ---------------------------------------------------------------- main
function printResults(version) {
  const head = [
    'case',
    'nix-daemon s',
    'Nixyard s',
    'ratio',
    'server CPU s nix/yard',
    'Nixyard peak RSS (idle)',
  ];
  const body = rows.map((r) => [r.name, ...timeCells(r), `${mib(r.yardPeak)} (${mib(r.yardBase)})`]);
  console.log('');
  console.log(
    `Builds: Nixyard vs nix-daemon (${run('nix', ['--version']).trim()}), ssh-ng, ` +
      `median of ${S.runs} run(s), wall-clock seconds of \`nix build\`; ratio = Nixyard / nix-daemon`,
  );
  printTable(head, body);
  const daemonPeak = Math.max(...rows.map((r) => r.nixPeak));
  console.log(
    `nix-daemon: ${DAEMON_SETTINGS.join(', ')}; peak RSS ${mib(daemonPeak)} (largest of the daemon and its build children).\n` +
      `Nixyard: --max-jobs ${S.maxJobs} --cores ${S.cores}; peak RSS = VmHWM of the gateway process (not its build-drv children), ` +
      '(idle) = RSS after start-up.\n' +
      'server CPU: user+system seconds of the server and its build children (nix-daemon: GNU time; gateway: /proc ' +
      'utime+stime+cutime+cstime), medians.',
  );
  console.log(`gateway: ${version}`);
  // Other work on the machine skews both columns (the runs alternate, so roughly alike).
  console.log(`load average (1 min) at start ${loadAtStart.toFixed(2)}, at end ${loadavg()[0].toFixed(2)}`);
}

async function main() {
  const version = await startBench(S, L, gateway, {
    why: 'the client evaluates into the local store directly',
    setUp,
  });
  // Evaluating `busybox` adds it to the local store; its path is seeded on every remote.
  const busybox = run('nix', ['eval', '--raw', '-f', EXPR, '--argstr', 'salt', 'x', 'busybox'], {
    env: clientEnv,
  }).trim();

  // Check both targets answer before timing anything.
  await pingTargets(L, gateway, clientEnv, [url('nix')], [url('nixyard')]);

  if (S.only.includes('chain')) await benchFresh('chain', 'chain', S.chain, busybox);
  if (S.only.includes('fan')) await benchFresh('fan', 'fan', S.fan + 1, busybox);
  if (S.only.includes('noop')) await benchNoop(busybox);
  printResults(version);
}

runMain(main, { gateway, remotes: REMOTES, keep: S.keep });
