// What bench/transfer.mjs and bench/builds.mjs share: settings, process and /proc helpers,
// the sshd + remote-program set-up for the real Nix, the gateway under test, the table.
// Each script keeps its own cases, measurements and rows. See bench/README.md.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
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
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The checkout the benchmarks run from (dist/, node_modules/, git).
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---------------------------------------------------------------- settings
const env = process.env;
// BENCH_QUICK=1 switches every size setting to its smoke-run value.
export const quick = env.BENCH_QUICK === '1';

// A positive integer setting from the environment, else its full or quick default.
export const num = (name, full, small) => {
  const v = env[name] ?? String(quick ? small : full);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
};

// A comma-separated list setting (BENCH_ONLY, BENCH_PROTOCOLS).
export const list = (name, full) => (env[name] ?? full).split(',').filter(Boolean);

// BENCH_DIR and the two ports (gateway = sshd + 1 by default), first in the settings object.
export const serverSettings = (dir, sshdPort) => ({
  dir: resolve(env.BENCH_DIR ?? dir),
  sshdPort: num('BENCH_SSHD_PORT', sshdPort, sshdPort),
  gatewayPort: num('BENCH_GATEWAY_PORT', sshdPort + 1, sshdPort + 1),
});

// BENCH_GATEWAY_LOG_LEVEL and BENCH_KEEP, last in the settings object.
export const gatewaySettings = () => ({
  gatewayLogLevel: env.BENCH_GATEWAY_LOG_LEVEL ?? 'info',
  keep: env.BENCH_KEEP === '1',
});

// The client's and the real daemon's base Nix configuration: no substituters, `nix` command on.
export const NIX_CONFIG = 'substituters =\nexperimental-features = nix-command';

// Where things live under BENCH_DIR: keys and ssh configs, wrappers, the daemon's stores,
// and `usage`, the file /usr/bin/time in the wrappers appends the daemon's usage to.
export const layout = (dir, usageName) => ({
  ssh: join(dir, 'ssh'),
  bin: join(dir, 'bin'),
  remotes: join(dir, 'remote'),
  currentRemote: join(dir, 'current-remote-nix'), // read by the remote-program wrappers
  usage: join(dir, usageName),
});

// The client's environment: local store (no NIX_REMOTE), our NIX_CONFIG and ssh_config.
export function clientEnvFor(sshDir) {
  const e = { ...env, NIX_CONFIG, NIX_SSHOPTS: `-F ${join(sshDir, 'ssh_config')}` };
  delete e.NIX_REMOTE;
  return e;
}

// ---------------------------------------------------------------- helpers
// Progress line on stderr (stdout is for the table), with the time of day.
export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

// Runs a command to completion; its stdout, or an error with its output.
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

// Resolves after `ms` milliseconds.
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits (up to about 10 s) until 127.0.0.1:port accepts; fails early if `proc` exits.
export async function waitForPort(port, what, proc) {
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

// RSS now and its kernel high-water mark (VmHWM) of one process, in bytes.
export function memOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

const CLK_TCK = 100; // USER_HZ on Linux
// CPU seconds of a process: its own (utime + stime) and its waited-for children's (cutime + cstime).
export function cpuOf(pid) {
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

// The real daemon sessions' lines written by /usr/bin/time into `file`: peak RSS, CPU.
export function readDaemonUsage(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^\d+ [\d.]+ [\d.]+$/.test(l))
    .map((l) => {
      const [kb, user, sys] = l.split(' ').map(Number);
      return { peak: kb * 1024, cpu: user + sys };
    });
}

// Waits (up to 3 s) for the usage of the sessions since line `before`: largest peak, total CPU.
export async function daemonUsage(file, before) {
  for (let i = 0; i < 60; i++) {
    const all = readDaemonUsage(file).slice(before);
    if (all.length > 0) {
      return { peak: Math.max(...all.map((u) => u.peak)), cpu: all.reduce((a, u) => a + u.cpu, 0) };
    }
    await sleep(50);
  }
  return {};
}

// One timed run of `fn` after a `sync` (no earlier write-back in its time), with the server's
// peak: the real daemon's from its usage file, the gateway's VmHWM (`hwm`) otherwise.
export async function measureRun(target, usageFile, fn) {
  run('sync', []);
  const before = readDaemonUsage(usageFile).length;
  const r = await fn();
  if (target === 'nix') Object.assign(r, await daemonUsage(usageFile, before));
  else r.peak = r.hwm;
  return r;
}

// Median of numbers.
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Bytes as whole MiB for the table; '-' when unknown.
export const mib = (b) => (b === undefined || Number.isNaN(b) ? '-' : `${(b / 2 ** 20).toFixed(0)} MiB`);

// One table row's numbers from `{ nix: [runs], nixyard: [runs] }`: median and best seconds per
// target, ratio Nixyard / nix-daemon of the medians, median server CPU, largest server peak.
export function summarize(results) {
  const secs = (t) => results[t].map((r) => r.seconds);
  const nix = median(secs('nix'));
  const yard = median(secs('nixyard'));
  return {
    nix,
    nixMin: Math.min(...secs('nix')),
    yard,
    yardMin: Math.min(...secs('nixyard')),
    ratio: yard / nix,
    nixCpu: median(results.nix.map((r) => r.cpu ?? NaN)),
    yardCpu: median(results.nixyard.map((r) => r.cpu ?? NaN)),
    nixPeak: Math.max(...results.nix.map((r) => r.peak ?? 0)),
    yardPeak: Math.max(...results.nixyard.map((r) => r.peak ?? 0)),
  };
}

// The cells both tables share, from a summarize() row: the two times, the ratio, server CPU.
export const timeCells = (r) => [
  `${r.nix.toFixed(2)} (min ${r.nixMin.toFixed(2)})`,
  `${r.yard.toFixed(2)} (min ${r.yardMin.toFixed(2)})`,
  `${r.ratio.toFixed(2)}x`,
  `${r.nixCpu.toFixed(2)} / ${r.yardCpu.toFixed(2)}`,
];

// Prints a Markdown table padded to its widest cells (the benchmarks' stdout format).
export function printTable(head, body) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
}

// ---------------------------------------------------------------- set-up
// Fails early without root, the tools, a built gateway or with NIX_REMOTE set (`why` says why not).
export function checkPrerequisites(why) {
  if (process.getuid?.() !== 0) throw new Error('run as root (sshd, unshare and mount --bind need it)');
  for (const f of ['/usr/sbin/sshd', '/usr/bin/ssh', '/usr/bin/unshare', '/usr/bin/time', '/bin/busybox']) {
    if (!existsSync(f)) throw new Error(`missing ${f}`);
  }
  const main = env.BENCH_GATEWAY_MAIN ? resolve(env.BENCH_GATEWAY_MAIN) : join(REPO, 'dist/cli/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npx tsc -p tsconfig.build.json\` first`);
  if (env.NIX_REMOTE) throw new Error(`unset NIX_REMOTE: ${why}`);
}

// The gateway to measure: BENCH_GATEWAY_MAIN, else a copy of dist/ in `dir` (so a rebuild
// during the run changes nothing; node_modules and package.json linked).
export function gatewayMain(dir) {
  if (env.BENCH_GATEWAY_MAIN) return resolve(env.BENCH_GATEWAY_MAIN);
  const snap = join(dir, 'gateway-dist');
  rmSync(snap, { recursive: true, force: true });
  mkdirSync(snap, { recursive: true });
  run('cp', ['-a', join(REPO, 'dist'), join(snap, 'dist')]);
  symlinkSync(join(REPO, 'node_modules'), join(snap, 'node_modules'));
  symlinkSync(join(REPO, 'package.json'), join(snap, 'package.json'));
  return join(snap, 'dist/cli/main.js');
}

// What is being measured: the entry point, the checkout's commit and when its dist/ was built.
export function gatewayVersion(main) {
  const commit = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const built = statSync(join(dirname(main), '..', 'gateway', 'ssh-server.js'), { throwIfNoEntry: false });
  return `${main} (checkout ${commit.stdout.trim() || '?'}, gateway built ${built?.mtime.toISOString() ?? '?'})`;
}

// Keys, sshd_config and ssh_config (one Host alias per server) under `ssh`; creates bin and remotes.
export function setUpSsh({ ssh, bin, remotes }, sshdPort, gatewayPort) {
  mkdirSync(ssh, { recursive: true });
  mkdirSync(bin, { recursive: true });
  mkdirSync(remotes, { recursive: true });
  for (const k of ['hostkey', 'id_ed25519', 'gateway_hostkey']) {
    if (!existsSync(join(ssh, k))) run('ssh-keygen', ['-q', '-t', 'ed25519', '-f', join(ssh, k), '-N', '']);
  }
  // The same client key is root@sshd (for the real daemon) and an admin key on Nixyard
  // (trusted, so --no-check-sigs applies, like a root client of the real daemon).
  const pub = readFileSync(join(ssh, 'id_ed25519.pub'), 'utf8').trim();
  writeFileSync(join(ssh, 'authorized_keys'), `${pub}\n`);
  writeFileSync(join(ssh, 'gateway_authorized_keys'), `permissions="admin" ${pub}\n`);
  writeFileSync(
    join(ssh, 'sshd_config'),
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(ssh, 'hostkey')}`,
      `PidFile ${join(ssh, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(ssh, 'authorized_keys')}`,
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
    `  IdentityFile ${join(ssh, 'id_ed25519')}`,
    '  IdentitiesOnly yes',
    '  StrictHostKeyChecking no',
    '  UserKnownHostsFile /dev/null',
    '  LogLevel ERROR',
  ];
  writeFileSync(
    join(ssh, 'ssh_config'),
    [...host('bench-daemon', sshdPort), ...host('bench-nixyard', gatewayPort), ''].join('\n'),
  );
}

// Writes the sshd remote program bin/`name`: the real Nix `prog` in a private mount namespace
// whose /nix is the directory named in currentRemote, under /usr/bin/time appending to usage.
export function writeRemoteProgram({ bin, currentRemote, usage }, name, what, prog, nixConfig) {
  const path = join(bin, name);
  writeFileSync(
    path,
    `#!/bin/sh
# Runs the real ${what} with its own /nix (the directory named in ${currentRemote}).
export NIX_CONFIG="${nixConfig}"
exec unshare -m --propagation private sh -c '
  mount --bind "$(cat ${currentRemote})" /nix || exit 1
  exec /usr/bin/time -a -o ${usage} -f "%M %U %S" ${prog} "$@"' sh "$@"
`,
  );
  chmodSync(path, 0o755);
}

const children = [];
// Starts sshd in its own mount namespace (tmpfs /run for /run/sshd); resolves once it listens.
export function startSshd(sshDir, port, logFile) {
  const p = spawn(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && exec /usr/sbin/sshd -D -e -f ${join(sshDir, 'sshd_config')}`,
    ],
    { stdio: ['ignore', 'ignore', openSync(logFile, 'w')] },
  );
  children.push(p);
  return waitForPort(port, 'sshd', p);
}

// A fresh, empty /nix for the real daemon (Nix initialises it on first use); made current.
export function freshDaemonRemote({ remotes, currentRemote }, name) {
  const d = join(remotes, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(join(d, 'store'), { recursive: true });
  mkdirSync(join(d, 'var/nix'), { recursive: true });
  writeFileSync(currentRemote, d);
  return d;
}

// The gateway under test as a user runs it (`main`, its own data dir), one at a time.
export class Gateway {
  main; // set once known (gatewayMain)
  current; // { proc, dataDir, baseline } while one runs

  /**
   * Port, data dirs, log level and BENCH_KEEP from the settings `S`, keys from the layout `L`;
   * `extraArgs` go before --log-level; `stderrToLog` sends its stderr to the log file too
   * (else inherited); `keepDataOnRestart` keeps the previous gateway's data dir on start.
   */
  constructor(S, L, { extraArgs = [], stderrToLog = false, keepDataOnRestart = false } = {}) {
    Object.assign(this, { dir: S.dir, port: S.gatewayPort, logLevel: S.gatewayLogLevel, keep: S.keep });
    Object.assign(this, { sshDir: L.ssh, extraArgs, stderrToLog, keepDataOnRestart });
  }

  /** Starts it (stopping the previous one); `fresh` empties the data dir first; waits for the port and an idle baseline. */
  async start(name, fresh = true) {
    await this.stop(this.keepDataOnRestart);
    const dataDir = join(this.dir, 'gateway', name);
    if (fresh) rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true });
    const args = [
      this.main,
      'gateway',
      '--data-dir',
      dataDir,
      '--listen',
      `127.0.0.1:${this.port}`,
      '--authorized-keys',
      join(this.sshDir, 'gateway_authorized_keys'),
      '--host-key',
      join(this.sshDir, 'gateway_hostkey'),
      ...this.extraArgs,
      '--log-level',
      this.logLevel,
    ];
    const out = openSync(join(this.dir, `gateway-${name}.log`), 'a');
    const stdio = ['ignore', out, this.stderrToLog ? out : 'inherit'];
    const proc = spawn(process.execPath, args, { stdio, env: { ...env } });
    const g = (this.current = { proc, dataDir });
    await waitForPort(this.port, 'gateway', proc);
    await sleep(200); // let start-up settle before taking the idle baseline
    g.baseline = memOf(proc.pid)?.rss;
    return g;
  }

  /** Stops it (SIGTERM, SIGKILL after 5 s); removes its data dir unless `keepData` (or BENCH_KEEP=1). */
  async stop(keepData = false) {
    if (!this.current) return;
    const { proc, dataDir } = this.current;
    this.current = undefined;
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await Promise.race([once(proc, 'exit'), sleep(5000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    if (!keepData && !this.keep) rmSync(dataDir, { recursive: true, force: true });
  }
}

// A run's common start: checks, gateway snapshot, settings logged, ssh set up (then the
// script's own `setUp`), sshd started. Returns what is measured (gatewayVersion).
export async function startBench(S, L, gateway, { why, setUp }) {
  checkPrerequisites(why);
  mkdirSync(S.dir, { recursive: true });
  gateway.main = gatewayMain(S.dir);
  const version = gatewayVersion(gateway.main);
  rmSync(L.usage, { force: true });
  log('settings', JSON.stringify(S));
  setUpSsh(L, S.sshdPort, S.gatewayPort);
  setUp();
  await startSshd(L.ssh, S.sshdPort, join(S.dir, 'sshd.log'));
  return version;
}

// Checks both targets answer (`nix store ping` each URL) before anything is timed.
export async function pingTargets(L, gateway, clientEnv, nixUrls, nixyardUrls) {
  freshDaemonRemote(L, 'ping');
  for (const u of nixUrls) run('nix', ['store', 'ping', '--store', u], { env: clientEnv });
  await gateway.start('ping');
  for (const u of nixyardUrls) run('nix', ['store', 'ping', '--store', u], { env: clientEnv });
  await gateway.stop();
}

// Runs a benchmark's main; on error prints it and sets exit code 1; always stops the gateway
// and sshd and, unless BENCH_KEEP=1, removes the daemon's stores.
export function runMain(main, { gateway, remotes, keep }) {
  return main()
    .catch((err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    })
    .finally(async () => {
      await gateway.stop().catch(() => undefined);
      for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
      if (!keep) rmSync(remotes, { recursive: true, force: true });
    });
}
