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
// The ssh/sshd/gateway plumbing is copied from bench/transfer.mjs (its author was still
// changing it when this was written); keep the two in step by hand.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
// The gateway to measure: a snapshot of this checkout's dist/ taken at start (so a rebuild
// during the run changes nothing), unless BENCH_GATEWAY_MAIN points elsewhere.
let GATEWAY_MAIN = process.env.BENCH_GATEWAY_MAIN ? resolve(process.env.BENCH_GATEWAY_MAIN) : undefined;

// ---------------------------------------------------------------- settings
const env = process.env;
const quick = env.BENCH_QUICK === '1';
const num = (name, full, small) => {
  const v = env[name] ?? String(quick ? small : full);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
};
const S = {
  dir: resolve(env.BENCH_DIR ?? '/tmp/nixyard-bench-builds'),
  sshdPort: num('BENCH_SSHD_PORT', 22992, 22992),
  gatewayPort: num('BENCH_GATEWAY_PORT', 22993, 22993),
  chain: num('BENCH_CHAIN', 200, 50),
  fan: num('BENCH_FAN', 200, 50),
  dag: num('BENCH_DAG', 500, 100),
  seed: num('BENCH_SEED', 1, 1),
  runs: num('BENCH_RUNS', 3, 1),
  // Both servers get the same: Nixyard's own defaults are the CPU count for both.
  maxJobs: num('BENCH_MAX_JOBS', availableParallelism(), availableParallelism()),
  cores: num('BENCH_CORES', availableParallelism(), availableParallelism()),
  only: (env.BENCH_ONLY ?? 'chain,fan,noop').split(',').filter(Boolean),
  gatewayLogLevel: env.BENCH_GATEWAY_LOG_LEVEL ?? 'info',
  keep: env.BENCH_KEEP === '1',
};
for (const c of S.only) if (!['chain', 'fan', 'noop'].includes(c)) throw new Error(`unknown case ${c}`);

const NIX_CONFIG = 'substituters =\nexperimental-features = nix-command';
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
const SSH = join(S.dir, 'ssh');
const BIN = join(S.dir, 'bin');
const REMOTES = join(S.dir, 'remote');
const CURRENT_REMOTE = join(S.dir, 'current-remote-nix'); // read by the remote-program wrapper
const DAEMON_USAGE = join(S.dir, 'daemon-usage.txt'); // appended by /usr/bin/time in the wrapper
const EXPR = join(S.dir, 'builds.nix');
const clientEnv = { ...env, NIX_CONFIG, NIX_SSHOPTS: `-F ${join(SSH, 'ssh_config')}` };
delete clientEnv.NIX_REMOTE;

const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

// ---------------------------------------------------------------- helpers
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitForPort(port, what, proc) {
  for (let i = 0; i < 200; i++) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}`);
    const ok = await new Promise((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), res(true)));
      s.once('error', () => res(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not open port ${port}`);
}

/** RSS now and its high-water mark (VmHWM) of one process, in bytes. */
function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

const CLK_TCK = 100; // USER_HZ on Linux
/**
 * CPU seconds of a process: its own (user + system) and that of its children it has waited
 * for (cutime + cstime: here the `nixyard build-drv` runners and their sandboxes).
 */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return { self: (f[11] + f[12]) / CLK_TCK, children: (f[13] + f[14]) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** The daemon sessions' usage lines written by /usr/bin/time: peak RSS, CPU (with builders). */
function readDaemonUsage() {
  if (!existsSync(DAEMON_USAGE)) return [];
  return readFileSync(DAEMON_USAGE, 'utf8')
    .split('\n')
    .filter((l) => /^\d+ [\d.]+ [\d.]+$/.test(l))
    .map((l) => {
      const [kb, user, sys] = l.split(' ').map(Number);
      return { peak: kb * 1024, cpu: user + sys };
    });
}

/** Waits (up to 3 s) for /usr/bin/time to append the usage of the sessions since `before`. */
async function daemonUsage(before) {
  for (let i = 0; i < 60; i++) {
    const all = readDaemonUsage().slice(before);
    if (all.length > 0) {
      return { peak: Math.max(...all.map((u) => u.peak)), cpu: all.reduce((a, u) => a + u.cpu, 0) };
    }
    await sleep(50);
  }
  return {};
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mib = (b) => (b === undefined || Number.isNaN(b) ? '-' : `${(b / 2 ** 20).toFixed(0)} MiB`);

// ---------------------------------------------------------------- set-up
function checkPrerequisites() {
  if (process.getuid?.() !== 0) throw new Error('run as root (sshd, unshare and mount --bind need it)');
  for (const f of ['/usr/sbin/sshd', '/usr/bin/ssh', '/usr/bin/unshare', '/usr/bin/time', '/bin/busybox']) {
    if (!existsSync(f)) throw new Error(`missing ${f}`);
  }
  const main = GATEWAY_MAIN ?? join(REPO, 'dist/cli/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npx tsc -p tsconfig.build.json\` first`);
  if (env.NIX_REMOTE) throw new Error('unset NIX_REMOTE: the client evaluates into the local store directly');
}

function setUpSsh() {
  mkdirSync(SSH, { recursive: true });
  mkdirSync(BIN, { recursive: true });
  mkdirSync(REMOTES, { recursive: true });
  for (const k of ['hostkey', 'id_ed25519', 'gateway_hostkey']) {
    if (!existsSync(join(SSH, k))) run('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(SSH, k), '-N', '']);
  }
  // The same client key is root@sshd (for the real daemon) and an admin key on Nixyard.
  const pub = readFileSync(join(SSH, 'id_ed25519.pub'), 'utf8').trim();
  writeFileSync(join(SSH, 'authorized_keys'), `${pub}\n`);
  writeFileSync(join(SSH, 'gateway_authorized_keys'), `permissions="admin" ${pub}\n`);
  writeFileSync(
    join(SSH, 'sshd_config'),
    [
      `Port ${S.sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(SSH, 'hostkey')}`,
      `PidFile ${join(SSH, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(SSH, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      '',
    ].join('\n'),
  );
  // Nix 2.8 puts no port in the URL: one Host alias per server.
  const host = (alias, port) => [
    `Host ${alias}`,
    '  HostName 127.0.0.1',
    `  Port ${port}`,
    '  User root',
    `  IdentityFile ${join(SSH, 'id_ed25519')}`,
    '  IdentitiesOnly yes',
    '  StrictHostKeyChecking no',
    '  UserKnownHostsFile /dev/null',
    '  LogLevel ERROR',
  ];
  writeFileSync(
    join(SSH, 'ssh_config'),
    [...host('bench-daemon', S.sshdPort), ...host('bench-nixyard', S.gatewayPort), ''].join('\n'),
  );
  // The remote program for sshd: the real nix-daemon in a private mount namespace whose
  // /nix is the directory named in CURRENT_REMOTE, with the build settings above, under
  // /usr/bin/time for its peak RSS and CPU time (both include its build children).
  const daemonConfig = [NIX_CONFIG, ...DAEMON_SETTINGS].join('\n');
  writeFileSync(
    join(BIN, 'remote-nix-daemon'),
    `#!/bin/sh
# Runs the real nix-daemon with its own /nix (the directory named in ${CURRENT_REMOTE}).
export NIX_CONFIG="${daemonConfig}"
exec unshare -m --propagation private sh -c '
  mount --bind "$(cat ${CURRENT_REMOTE})" /nix || exit 1
  exec /usr/bin/time -a -o ${DAEMON_USAGE} -f "%M %U %S" /usr/bin/nix-daemon "$@"' sh "$@"
`,
  );
  chmodSync(join(BIN, 'remote-nix-daemon'), 0o755);
}

const children = [];
function startSshd() {
  const p = spawn(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && exec /usr/sbin/sshd -D -e -f ${join(SSH, 'sshd_config')}`,
    ],
    { stdio: ['ignore', 'ignore', openSync(join(S.dir, 'sshd.log'), 'w')] },
  );
  children.push(p);
  return waitForPort(S.sshdPort, 'sshd', p);
}

/** A fresh, empty /nix for the real daemon (Nix initialises it on first use); made current. */
function freshDaemonRemote(name) {
  const d = join(REMOTES, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(join(d, 'store'), { recursive: true });
  mkdirSync(join(d, 'var/nix'), { recursive: true });
  writeFileSync(CURRENT_REMOTE, d);
  return d;
}

let gateway; // { proc, dataDir, baseline }
/** Starts the gateway as a user would (built dist/, its own data dir); `fresh` empties the data dir first. */
async function startGateway(name, fresh = true) {
  await stopGateway(true);
  const dataDir = join(S.dir, 'gateway', name);
  if (fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const args = [
    GATEWAY_MAIN,
    'gateway',
    '--data-dir',
    dataDir,
    '--listen',
    `127.0.0.1:${S.gatewayPort}`,
    '--authorized-keys',
    join(SSH, 'gateway_authorized_keys'),
    '--host-key',
    join(SSH, 'gateway_hostkey'),
    '--max-jobs',
    String(S.maxJobs),
    '--cores',
    String(S.cores),
    '--log-level',
    S.gatewayLogLevel,
  ];
  const out = openSync(join(S.dir, `gateway-${name}.log`), 'a');
  const proc = spawn(process.execPath, args, { stdio: ['ignore', out, out], env: { ...env } });
  gateway = { proc, dataDir };
  await waitForPort(S.gatewayPort, 'gateway', proc);
  await sleep(200); // let start-up settle before taking the idle baseline
  gateway.baseline = memOf(proc.pid)?.rss;
  return gateway;
}

/** Stops the gateway; removes its data dir unless `keepData` (or BENCH_KEEP=1). */
async function stopGateway(keepData = false) {
  if (!gateway) return;
  const { proc, dataDir } = gateway;
  gateway = undefined;
  if (proc.exitCode === null) {
    proc.kill('SIGTERM');
    await Promise.race([once(proc, 'exit'), sleep(5000)]);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
  if (!keepData && !S.keep) rmSync(dataDir, { recursive: true, force: true });
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
  run('sync', []); // no write-back of the previous run in this run's time
  const before = readDaemonUsage().length;
  const r = await nixBuild(target, attr, salt, target === 'nixyard' ? gateway.proc.pid : undefined);
  if (target === 'nix') Object.assign(r, await daemonUsage(before));
  else r.peak = r.hwm;
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
  const secs = (t) => results[t].map((r) => r.seconds);
  const nix = median(secs('nix'));
  const yard = median(secs('nixyard'));
  rows.push({
    name,
    drvs,
    nix,
    yard,
    nixMin: Math.min(...secs('nix')),
    yardMin: Math.min(...secs('nixyard')),
    ratio: yard / nix,
    nixCpu: median(results.nix.map((r) => r.cpu ?? NaN)),
    yardCpu: median(results.nixyard.map((r) => r.cpu ?? NaN)),
    nixPeak: Math.max(...results.nix.map((r) => r.peak ?? 0)),
    yardPeak: Math.max(...results.nixyard.map((r) => r.peak ?? 0)),
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
  freshDaemonRemote(kind);
  seedBusybox('nix', busybox);
  const g = await startGateway(kind);
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
  await stopGateway();
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
  freshDaemonRemote('noop');
  seedBusybox('nix', busybox);
  await measure('seed', 'nix', 'dag', salt, drvs);
  await startGateway('noop');
  seedBusybox('nixyard', busybox);
  await measure('seed', 'nixyard', 'dag', salt, drvs);
  const g = await startGateway('noop', false);
  const results = { nix: [], nixyard: [], baseline: g.baseline };
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      if (target === 'nix') writeFileSync(CURRENT_REMOTE, join(REMOTES, 'noop'));
      results[target].push(await measure(`${label} run ${i + 1}`, target, 'dag', salt, 0));
    }
  }
  addRow(label, drvs, results);
  await stopGateway();
  if (!S.keep) rmSync(join(REMOTES, 'noop'), { recursive: true, force: true });
}

// ---------------------------------------------------------------- main
function printTable(version) {
  const head = [
    'case',
    'nix-daemon s',
    'Nixyard s',
    'ratio',
    'server CPU s nix/yard',
    'Nixyard peak RSS (idle)',
  ];
  const body = rows.map((r) => [
    r.name,
    `${r.nix.toFixed(2)} (min ${r.nixMin.toFixed(2)})`,
    `${r.yard.toFixed(2)} (min ${r.yardMin.toFixed(2)})`,
    `${r.ratio.toFixed(2)}x`,
    `${r.nixCpu.toFixed(2)} / ${r.yardCpu.toFixed(2)}`,
    `${mib(r.yardPeak)} (${mib(r.yardBase)})`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log('');
  console.log(
    `Builds: Nixyard vs nix-daemon (${run('nix', ['--version']).trim()}), ssh-ng, ` +
      `median of ${S.runs} run(s), wall-clock seconds of \`nix build\`; ratio = Nixyard / nix-daemon`,
  );
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
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

/** Copies dist/ (with links to node_modules and package.json) into BENCH_DIR; returns its main.js. */
function snapshotDist() {
  const snap = join(S.dir, 'gateway-dist');
  rmSync(snap, { recursive: true, force: true });
  mkdirSync(snap, { recursive: true });
  run('cp', ['-a', join(REPO, 'dist'), join(snap, 'dist')]);
  symlinkSync(join(REPO, 'node_modules'), join(snap, 'node_modules'));
  symlinkSync(join(REPO, 'package.json'), join(snap, 'package.json'));
  return join(snap, 'dist/cli/main.js');
}

/** What is being measured: the checkout's commit and when the gateway's dist/ was built. */
function gatewayVersion() {
  const commit = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const built = statSync(join(dirname(GATEWAY_MAIN), '..', 'gateway', 'ssh-server.js'), {
    throwIfNoEntry: false,
  });
  return `${GATEWAY_MAIN} (checkout ${commit.stdout.trim() || '?'}, gateway built ${built?.mtime.toISOString() ?? '?'})`;
}

async function main() {
  checkPrerequisites();
  mkdirSync(S.dir, { recursive: true });
  GATEWAY_MAIN ??= snapshotDist();
  const version = gatewayVersion();
  rmSync(DAEMON_USAGE, { force: true });
  log('settings', JSON.stringify(S));
  setUpSsh();
  writeExpression();
  await startSshd();
  // Evaluating `busybox` adds it to the local store; its path is seeded on every remote.
  const busybox = run('nix', ['eval', '--raw', '-f', EXPR, '--argstr', 'salt', 'x', 'busybox'], {
    env: clientEnv,
  }).trim();

  // Check both targets answer before timing anything.
  freshDaemonRemote('ping');
  run('nix', ['store', 'ping', '--store', url('nix')], { env: clientEnv });
  await startGateway('ping');
  run('nix', ['store', 'ping', '--store', url('nixyard')], { env: clientEnv });
  await stopGateway();

  if (S.only.includes('chain')) await benchFresh('chain', 'chain', S.chain, busybox);
  if (S.only.includes('fan')) await benchFresh('fan', 'fan', S.fan + 1, busybox);
  if (S.only.includes('noop')) await benchNoop(busybox);
  printTable(version);
}

main()
  .catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopGateway().catch(() => undefined);
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    if (!S.keep) rmSync(REMOTES, { recursive: true, force: true });
  });
