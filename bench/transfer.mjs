#!/usr/bin/env node
// Transfer benchmark: Nixyard's gateway against a real `nix-daemon --stdio` (and
// `nix-store --serve --write`) behind sshd, same client, same machine, same run.
// Not part of `npm test`. Needs root, Linux, Debian's nix 2.8, openssh, util-linux,
// /bin/busybox (static) and a built dist/ (`npx tsc -p tsconfig.build.json`).
// Usage and what it measures: bench/README.md.
//
//   sudo node bench/transfer.mjs                 # full run (defaults below)
//   sudo BENCH_QUICK=1 node bench/transfer.mjs   # smoke run, small sizes, 1 run each
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  chmodSync,
  openSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { connect } from 'node:net';
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
  dir: resolve(env.BENCH_DIR ?? '/tmp/nixyard-bench'),
  sshdPort: num('BENCH_SSHD_PORT', 22990, 22990),
  gatewayPort: num('BENCH_GATEWAY_PORT', 22991, 22991),
  paths: num('BENCH_PATHS', 200, 20),
  mib: num('BENCH_MIB', 1024, 64),
  infoPaths: num('BENCH_INFO_PATHS', 2000, 200),
  bigMib: num('BENCH_BIG_MIB', 2048, 256),
  runs: num('BENCH_RUNS', 3, 1),
  protocols: (env.BENCH_PROTOCOLS ?? 'ssh-ng,ssh').split(',').filter(Boolean),
  only: (env.BENCH_ONLY ?? 'copy,info,big').split(',').filter(Boolean),
  gatewayLogLevel: env.BENCH_GATEWAY_LOG_LEVEL ?? 'info',
  keep: env.BENCH_KEEP === '1',
};
for (const p of S.protocols) if (p !== 'ssh-ng' && p !== 'ssh') throw new Error(`unknown protocol ${p}`);

const NIX_CONFIG = 'substituters =\nexperimental-features = nix-command';
const SSH = join(S.dir, 'ssh');
const BIN = join(S.dir, 'bin');
const REMOTES = join(S.dir, 'remote');
const CURRENT_REMOTE = join(S.dir, 'current-remote-nix'); // read by the remote-program wrappers
const DAEMON_MAXRSS = join(S.dir, 'daemon-maxrss.txt'); // appended by /usr/bin/time in the wrappers
const clientEnv = {
  ...env,
  NIX_CONFIG,
  NIX_SSHOPTS: `-F ${join(SSH, 'ssh_config')}`,
  NIX_REMOTE: '',
};
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

/** Peak RSS of a process from the kernel's own high-water mark, in bytes. */
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
/** User + system CPU seconds a process has used so far. */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
  } catch {
    return undefined;
  }
}

function readDaemonMaxRss() {
  if (!existsSync(DAEMON_MAXRSS)) return [];
  return readFileSync(DAEMON_MAXRSS, 'utf8')
    .split('\n')
    .filter((l) => /^\d+ [\d.]+ [\d.]+$/.test(l))
    .map((l) => {
      const [kb, user, sys] = l.split(' ').map(Number);
      return { peak: kb * 1024, cpu: user + sys };
    });
}

/**
 * Runs a client command, timing it; samples the gateway's RSS (every 50 ms) while it runs.
 * Returns seconds and, when a gateway pid is given, its peak RSS (VmHWM) and the largest
 * VmRSS sample.
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
    cpu: cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0,
  };
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
  if (!existsSync(main)) {
    throw new Error(`${main} is missing: run \`npx tsc -p tsconfig.build.json\` first`);
  }
  if (env.NIX_REMOTE) throw new Error('unset NIX_REMOTE: the client uses the local store directly');
}

function setUpSsh() {
  mkdirSync(SSH, { recursive: true });
  mkdirSync(BIN, { recursive: true });
  mkdirSync(REMOTES, { recursive: true });
  for (const k of ['hostkey', 'id_ed25519', 'gateway_hostkey']) {
    if (!existsSync(join(SSH, k))) run('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(SSH, k), '-N', '']);
  }
  // The same client key is root@sshd (for the real daemon) and an admin key on Nixyard
  // (trusted, so --no-check-sigs applies, like a root client of the real daemon).
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
  // Remote programs for sshd: the real Nix in a private mount namespace whose /nix is the
  // directory named in CURRENT_REMOTE, under /usr/bin/time to record its peak RSS.
  const wrapper = (prog) => `#!/bin/sh
# Runs the real ${prog} with its own /nix (the directory named in ${CURRENT_REMOTE}).
export NIX_CONFIG="${NIX_CONFIG}"
exec unshare -m --propagation private sh -c '
  mount --bind "$(cat ${CURRENT_REMOTE})" /nix || exit 1
  exec /usr/bin/time -a -o ${DAEMON_MAXRSS} -f "%M %U %S" ${prog} "$@"' sh "$@"
`;
  for (const [name, prog] of [
    ['remote-nix-daemon', '/usr/bin/nix-daemon'],
    ['remote-nix-store', '/usr/bin/nix-store'],
  ]) {
    writeFileSync(join(BIN, name), wrapper(prog));
    chmodSync(join(BIN, name), 0o755);
  }
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

/** A fresh, initialised /nix for the real daemon; made current for the wrappers. */
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
  await stopGateway();
  const dataDir = join(S.dir, 'gateway', name);
  if (fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const proc = spawn(
    process.execPath,
    [
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
      '--log-level',
      S.gatewayLogLevel,
    ],
    { stdio: ['ignore', openSync(join(S.dir, `gateway-${name}.log`), 'a'), 'inherit'], env: { ...env } },
  );
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
    freshDaemonRemote(name);
    return undefined;
  }
  return (await startGateway(name)).proc.pid;
}

async function copyTo(target, protocol, paths, label, pid) {
  return timed(label, 'nix', ['copy', '--no-check-sigs', '--to', url(target, protocol), ...paths], {
    gatewayPid: pid,
  });
}

/**
 * Waits (up to 3 s) for /usr/bin/time to append the server's max RSS and CPU time after the
 * session ended; several sessions in one command: the largest peak, the total CPU.
 */
async function daemonUsage(before) {
  for (let i = 0; i < 60; i++) {
    const all = readDaemonMaxRss().slice(before);
    if (all.length > 0) {
      return { peak: Math.max(...all.map((u) => u.peak)), cpu: all.reduce((a, u) => a + u.cpu, 0) };
    }
    await sleep(50);
  }
  return {};
}

async function measure(label, target, fn) {
  // Start every run with no dirty pages left by the previous one (its write-back would
  // otherwise land in this run's time, whichever target it belongs to).
  run('sync', []);
  const before = readDaemonMaxRss().length;
  const r = await fn();
  if (target === 'nix') Object.assign(r, await daemonUsage(before));
  else r.peak = r.hwm;
  log(
    `  ${label} ${target === 'nix' ? 'nix-daemon' : 'nixyard'}: ${r.seconds.toFixed(2)} s, ` +
      `server CPU ${r.cpu?.toFixed(2) ?? '-'} s, peak RSS ${mib(r.peak)}`,
  );
  return r;
}

// ---------------------------------------------------------------- scenarios
const rows = [];
function addRow(op, protocol, results) {
  const pick = (t) => results[t].map((r) => r.seconds);
  const peak = (t) => Math.max(...results[t].map((r) => r.peak ?? 0));
  const nix = median(pick('nix'));
  const yard = median(pick('nixyard'));
  rows.push({
    op,
    protocol,
    nix,
    nixMin: Math.min(...pick('nix')),
    yard,
    yardMin: Math.min(...pick('nixyard')),
    ratio: yard / nix,
    nixCpu: median(results.nix.map((r) => r.cpu ?? NaN)),
    yardCpu: median(results.nixyard.map((r) => r.cpu ?? NaN)),
    nixPeak: peak('nix'),
    yardPeak: peak('nixyard'),
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
      const baseline = gateway?.baseline;
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
  freshDaemonRemote(daemonDir);
  await copyTo('nix', protocol, [closure.top], 'seed');
  const pid = await freshTarget('nixyard', `info-${protocol}-nixyard`);
  const baseline = gateway.baseline;
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
  await stopGateway(true); // keep its store: the downloads read from it
  for (let i = 0; i < S.runs; i++) {
    for (const target of ['nix', 'nixyard']) {
      let pid;
      let baseline;
      if (target === 'nix') writeFileSync(CURRENT_REMOTE, nixDir);
      else {
        await stopGateway(true);
        const g = await startGateway(yardName, false); // restarted: its VmHWM covers this download only
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
  await stopGateway();
}

// ---------------------------------------------------------------- main
function printTable() {
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
    `${r.nix.toFixed(2)} (min ${r.nixMin.toFixed(2)})`,
    `${r.yard.toFixed(2)} (min ${r.yardMin.toFixed(2)})`,
    `${r.ratio.toFixed(2)}x`,
    `${r.nixCpu.toFixed(2)} / ${r.yardCpu.toFixed(2)}`,
    mib(r.nixPeak),
    `${mib(r.yardPeak)} (${mib(r.yardBase)})`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log('');
  console.log(
    `Nixyard vs nix-daemon (${run('nix', ['--version']).trim()}), median of ${S.runs} run(s), seconds; ratio = Nixyard / nix-daemon`,
  );
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
  console.log(
    'server CPU: user+system seconds of nix-daemon/nix-store (GNU time) and of the gateway process (/proc), medians.\n' +
      'peak RSS: nix-daemon/nix-store = max RSS of the server process (GNU time); gateway = VmHWM of the whole ' +
      'gateway process, restarted before each copy run (path-info: max sampled VmRSS); (idle) = RSS after start-up.',
  );
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
  const dist = statSync(join(dirname(GATEWAY_MAIN), '..', 'gateway', 'ssh-server.js'), {
    throwIfNoEntry: false,
  });
  return `${GATEWAY_MAIN} (checkout ${commit.stdout.trim() || '?'}, gateway built ${dist?.mtime.toISOString() ?? '?'})`;
}

async function main() {
  checkPrerequisites();
  mkdirSync(S.dir, { recursive: true });
  GATEWAY_MAIN ??= snapshotDist();
  const version = gatewayVersion();
  mkdirSync(S.dir, { recursive: true });
  rmSync(DAEMON_MAXRSS, { force: true });
  log('settings', JSON.stringify(S));
  setUpSsh();
  await startSshd();

  const copy = S.only.includes('copy')
    ? buildClosure('copy', S.paths, Math.max(1, Math.round((S.mib * 1024) / S.paths)))
    : undefined;
  const info = S.only.includes('info') ? buildClosure('info', S.infoPaths, 1) : undefined;
  const big = S.only.includes('big') ? buildClosure('big', 1, S.bigMib * 1024) : undefined;

  // Check both targets answer before timing anything.
  freshDaemonRemote('ping');
  for (const p of S.protocols) {
    run('nix', ['store', 'ping', '--store', url('nix', p)], { env: clientEnv });
  }
  await startGateway('ping');
  for (const p of S.protocols)
    run('nix', ['store', 'ping', '--store', url('nixyard', p)], { env: clientEnv });
  await stopGateway();

  for (const protocol of S.protocols) {
    if (copy) {
      await benchCopy(`copy --to, ${copy.count} paths, ${mib(copy.narBytes)}`, protocol, copy, 'copy');
      await stopGateway();
    }
    if (info) {
      await benchPathInfo(protocol, info);
      await stopGateway();
    }
    if (big) await benchBig(protocol, big);
  }
  printTable();
  console.log(`gateway: ${version}`);
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
