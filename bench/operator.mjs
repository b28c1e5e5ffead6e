#!/usr/bin/env node
/**
 * Operator benchmark: BENCH_COUNT NixBuilds (default 1,000) created at once against the
 * simulated cluster (test/sim), with no-op build pods (/bin/true). Measures, per NixBuild,
 * the time from its creation (stored by the API server) to its Job's creation (stored),
 * the time until all Jobs exist, and the operator's peak memory (VmHWM of its process).
 *
 * The operator runs as a child process from dist/ (`node dist/cli/main.js operator`), as
 * in a pod; the simulated cluster runs in this process. test/sim is TypeScript, so it is
 * compiled here (tsc, no type check) into a temporary directory first. See bench/README.md
 * ("Operator benchmark").
 *
 *   npx tsc -p tsconfig.build.json && node bench/operator.mjs
 *
 * Progress goes to stderr, the results to stdout.
 */
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const COUNT = Number(process.env.BENCH_COUNT ?? 1000);
/** Seconds to wait for all Jobs, then for all NixBuilds to finish. */
const JOBS_TIMEOUT_S = Number(process.env.BENCH_JOBS_TIMEOUT ?? 900);
const SETTLE_TIMEOUT_S = Number(process.env.BENCH_SETTLE_TIMEOUT ?? 900);
/** Also wait for every NixBuild to reach Succeeded/Failed (0: stop once all Jobs exist). */
const SETTLE = process.env.BENCH_SETTLE !== '0';
const NS = 'builds';
const SAMPLE_MS = 50;
const run = promisify(execFile);

const log = (msg) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** A fake but well-formed .drv path per index (nix base32 hash part). */
function drvPath(i) {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let x = BigInt(i) * 0x9e3779b97f4a7c15n + 0x1234567n;
  let hash = '';
  for (let k = 0; k < 32; k++) {
    hash += alphabet[Number(x % 32n)];
    x = (x / 32n) ^ (BigInt(k + 1) * 0x5bd1e995n);
  }
  return `/nix/store/${hash}-bench-${i}.drv`;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx];
}

/** VmRSS/VmHWM in KiB and utime+stime in seconds of a process. */
async function procStats(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  return { rss: kib('VmRSS'), hwm: kib('VmHWM'), cpu: ticks / 100 };
}

const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;
const ms = (v) => `${v.toFixed(0)} ms`;
const s = (v) => `${(v / 1000).toFixed(2)} s`;

/** Request classes: "VERB resource[/sub]" from the sim's request log. */
function classify(r) {
  const watch = /[?&]watch=(true|1)/.test(r.query);
  const m =
    /^\/apis?\/(?:[^/]+\/)?v1[^/]*\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(r.path) ??
    /^\/apis?\/(?:[^/]+\/)?v1[^/]*\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(r.path);
  if (!m) return `${r.method} ${r.path}`;
  const [, resource, name, sub] = m;
  let verb = r.method;
  if (r.method === 'GET') verb = watch ? 'WATCH' : name ? 'GET' : 'LIST';
  return `${verb} ${resource}${sub ? `/${sub}` : ''}`;
}

function countRequests(requests) {
  const counts = new Map();
  for (const r of requests) {
    if (r.userAgent === 'nixyard-bench') continue;
    const k = classify(r);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]);
}

async function main() {
  const cli = join(ROOT, 'dist/cli/main.js');
  if (!existsSync(cli))
    throw new Error('dist/cli/main.js is missing: run npx tsc -p tsconfig.build.json first');
  const dir = await mkdtemp(join(tmpdir(), 'nixyard-bench-operator-'));
  const cleanup = [];
  try {
    // test/sim is TypeScript: emit it as ES modules (no type check), resolving its
    // dependencies through a node_modules symlink to the repository's.
    log('compiling test/sim');
    const t0c = performance.now();
    await run(process.execPath, [
      join(ROOT, 'node_modules/typescript/bin/tsc'),
      '--outDir',
      join(dir, 'sim'),
      '--rootDir',
      ROOT,
      '--target',
      'ES2022',
      '--module',
      'NodeNext',
      '--moduleResolution',
      'NodeNext',
      '--skipLibCheck',
      '--noCheck',
      '--types',
      'node',
      join(ROOT, 'test/sim/cluster.ts'),
    ]);
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    log(`compiled in ${s(performance.now() - t0c)}`);
    const { startSimCluster } = await import(pathToFileURL(join(dir, 'sim/test/sim/cluster.js')).href);
    const { nixBuildName } = await import(pathToFileURL(join(ROOT, 'dist/operator/names.js')).href);

    const cluster = await startSimCluster({
      namespaces: [NS],
      nodes: [{ name: 'node-amd64-0', arch: 'amd64' }],
      volumeMap: { 'nixyard-store': join(dir, 'store') },
      // No-op build pods: `nixyard build-drv …` runs as `/bin/true build-drv …`.
      commands: { nixyard: ['/bin/true'] },
    });
    cleanup.push(() => cluster.close());
    const { server } = cluster;
    const api = async (method, path, body) => {
      const res = await fetch(cluster.url + path, {
        method,
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'nixyard-bench' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return JSON.parse(text);
    };
    const crd = parseYaml(await readFile(join(ROOT, 'crds/nixbuilds.nixyard.dev.yaml'), 'utf8'));
    await api('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    const nbPath = `/apis/nixyard.dev/v1alpha1/namespaces/${NS}/nixbuilds`;
    for (let i = 0; ; i++) {
      try {
        await api('GET', nbPath);
        break;
      } catch (e) {
        if (i > 100) throw e;
        await sleep(50);
      }
    }

    // Time each request spends in the sim API server (arrival to the response's end; not
    // watches), to tell the sim's share of a reconcile from the operator's own.
    const served = new Map(); // class → durations (ms)
    let timing = false;
    const handle = server.handle.bind(server);
    server.handle = (req, res) => {
      const t = performance.now();
      if (timing && req.headers['user-agent'] !== 'nixyard-bench')
        res.once('finish', () => {
          const u = new URL(req.url ?? '/', 'http://sim');
          const k = classify({ method: req.method ?? '', path: u.pathname, query: u.search });
          if (k.startsWith('WATCH')) return;
          let list = served.get(k);
          if (!list) served.set(k, (list = []));
          list.push(performance.now() - t);
        });
      return handle(req, res);
    };

    // Timestamps at the API server's store, in this process's clock.
    const created = new Map(); // NixBuild name → ms
    const jobAt = new Map(); // NixBuild name → ms (first Job)
    const jobsOf = new Map(); // NixBuild name → Jobs ever created (1 unless retried or duplicated)
    const doneAt = new Map(); // NixBuild name → ms (phase Succeeded/Failed)
    const phases = new Map();
    let lastEvent = 0;
    server.api.store.subscribe((e) => {
      const now = performance.now();
      const o = e.object;
      if (o.kind !== 'Lease') lastEvent = now;
      if (o.kind === 'NixBuild') {
        if (e.type === 'ADDED') created.set(o.metadata.name, now);
        const phase = o.status?.phase;
        if (phase) phases.set(o.metadata.name, phase);
        if ((phase === 'Succeeded' || phase === 'Failed') && !doneAt.has(o.metadata.name))
          doneAt.set(o.metadata.name, now);
      } else if (o.kind === 'Job' && e.type === 'ADDED') {
        const owner = o.metadata.labels?.['nixyard.dev/nixbuild'];
        if (owner && !jobAt.has(owner)) jobAt.set(owner, now);
        if (owner) jobsOf.set(owner, (jobsOf.get(owner) ?? 0) + 1);
      }
    });

    // The operator, as in its pod: leader election on, default queue and relist settings.
    const poolsFile = join(dir, 'pools.json');
    await writeFile(
      poolsFile,
      JSON.stringify([{ name: 'amd64', systems: ['x86_64-linux'], features: [], resources: {} }]),
    );
    const metricsPort = await freePort();
    const opLog = join(dir, 'operator.log');
    const fd = openSync(opLog, 'w');
    const operator = spawn(
      process.execPath,
      [
        cli,
        'operator',
        `--namespace=${NS}`,
        '--image=ghcr.io/nixyard/nixyard:bench',
        '--redis-url=redis://redis:6379',
        `--metrics-listen=127.0.0.1:${metricsPort}`,
        `--pools-file=${poolsFile}`,
      ],
      {
        env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath, POD_NAME: 'operator-bench' },
        stdio: ['ignore', fd, fd],
      },
    );
    closeSync(fd);
    let exited = false;
    let stopping = false;
    operator.on('exit', (code, sig) => {
      exited = true;
      if (!stopping) log(`operator exited early: ${code ?? sig}`);
    });
    cleanup.push(async () => {
      stopping = true;
      if (!exited) {
        operator.kill('SIGTERM');
        await Promise.race([once(operator, 'exit'), sleep(10_000)]);
        if (!exited) operator.kill('SIGKILL');
      }
    });
    const metricsUrl = `http://127.0.0.1:${metricsPort}`;
    const tStart = performance.now();
    for (;;) {
      if (exited) throw new Error(`the operator exited; see its log:\n${await readFile(opLog, 'utf8')}`);
      const ok = await fetch(`${metricsUrl}/readyz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      if (performance.now() - tStart > 30_000) throw new Error('the operator did not become ready in 30 s');
      await sleep(50);
    }
    await sleep(1000); // let start-up settle (Lease renewals, the first relists)
    const idle = await procStats(operator.pid);
    log(`operator ready (pid ${operator.pid}), VmRSS ${mib(idle.rss)}, VmHWM ${mib(idle.hwm)}`);

    let maxRss = idle.rss;
    const sampler = setInterval(() => {
      procStats(operator.pid)
        .then((p) => {
          maxRss = Math.max(maxRss, p.rss);
        })
        .catch(() => {});
    }, SAMPLE_MS);
    cleanup.push(async () => clearInterval(sampler));

    const reqBase = server.requests.length;
    const loadStart = loadavg();
    timing = true;
    // Event-loop delay of this process: a request waits that long before the sim sees it.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const cpuBase = process.cpuUsage();
    const names = [];
    for (let i = 0; i < COUNT; i++) names.push(nixBuildName(drvPath(i)));
    log(`creating ${COUNT} NixBuilds at once`);
    const tCreate = performance.now();
    await Promise.all(
      names.map((name, i) =>
        api('POST', nbPath, {
          apiVersion: 'nixyard.dev/v1alpha1',
          kind: 'NixBuild',
          metadata: { name },
          spec: { drvPath: drvPath(i), system: 'x86_64-linux' },
        }),
      ),
    );
    const tCreated = performance.now();
    log(`all created in ${s(tCreated - tCreate)}`);

    const deadline = tCreate + JOBS_TIMEOUT_S * 1000;
    let lastReport = tCreate;
    while (jobAt.size < COUNT && performance.now() < deadline) {
      await sleep(20);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        log(`${jobAt.size}/${COUNT} Jobs after ${s(lastReport - tCreate)}`);
      }
    }
    const tJobs = Math.max(...jobAt.values());
    const delay = (h) =>
      `p50 ${(h.percentile(50) / 1e6).toFixed(0)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(0)} ms, ` +
      `max ${(h.max / 1e6).toFixed(0)} ms`;
    const loopAtJobs = delay(loopDelay);
    const atJobs = {
      op: await procStats(operator.pid),
      maxRss,
      sim: process.cpuUsage(cpuBase),
      requests: server.requests.slice(reqBase),
      metrics: await fetch(`${metricsUrl}/metrics`).then((r) => r.text()),
    };
    log(`${jobAt.size}/${COUNT} Jobs; the last after ${s(tJobs - tCreate)}`);

    let atSettle;
    let tSettle = NaN;
    if (SETTLE) {
      const settleDeadline = performance.now() + SETTLE_TIMEOUT_S * 1000;
      while (doneAt.size < COUNT && performance.now() < settleDeadline) {
        await sleep(50);
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          log(`${doneAt.size}/${COUNT} NixBuilds finished after ${s(lastReport - tCreate)}`);
        }
      }
      tSettle = doneAt.size ? Math.max(...doneAt.values()) : NaN;
      // Quiet period: until no write for 2 s (events, TTL patches after the last status).
      while (performance.now() - lastEvent < 2000) await sleep(100);
      atSettle = {
        op: await procStats(operator.pid),
        maxRss,
        sim: process.cpuUsage(cpuBase),
        requests: server.requests.slice(reqBase),
        metrics: await fetch(`${metricsUrl}/metrics`).then((r) => r.text()),
      };
      log(`${doneAt.size}/${COUNT} NixBuilds finished`);
    }
    const opLogText = await readFile(opLog, 'utf8');

    // ------------------------------------------------------------ report
    const lat = names
      .filter((n) => jobAt.has(n) && created.has(n))
      .map((n) => jobAt.get(n) - created.get(n))
      .sort((a, b) => a - b);
    const firstCreated = Math.min(...created.values());
    const lastCreated = Math.max(...created.values());
    const out = [];
    const p = (line = '') => out.push(line);
    const metric = (text, name) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name) && !l.startsWith('#'))
        .map((l) => l.replace(/^nixyard_operator_/, ''))
        .join('; ') || '(none)';
    p(`# Operator benchmark: ${COUNT} NixBuilds at once, no-op pods`);
    p();
    p(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
    p(`load average at start: ${loadStart.map((v) => v.toFixed(2)).join(' ')}`);
    p(
      `load average at end: ${loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')}`,
    );
    p();
    p(`creates (${COUNT} POSTs in parallel): ${s(tCreated - tCreate)} until all answered;`);
    p(`  stored from +${ms(firstCreated - tCreate)} to +${ms(lastCreated - tCreate)}`);
    p(`Jobs: ${jobAt.size}/${COUNT}; the last ${s(tJobs - tCreate)} after the first POST`);
    p(
      `NixBuild stored → its Job stored: p50 ${ms(quantile(lat, 0.5))}, p90 ${ms(quantile(lat, 0.9))}, ` +
        `p99 ${ms(quantile(lat, 0.99))}, max ${ms(lat[lat.length - 1] ?? NaN)}, min ${ms(lat[0] ?? NaN)}`,
    );
    p(`Job creation rate: ${(jobAt.size / ((tJobs - firstCreated) / 1000)).toFixed(1)} Jobs/s`);
    const extra = [...jobsOf.values()].filter((n) => n > 1);
    p(
      `Jobs created: ${[...jobsOf.values()].reduce((a, n) => a + n, 0)} for ${jobsOf.size} NixBuilds ` +
        `(${extra.length} with more than one: retries or duplicates)`,
    );
    if (SETTLE) {
      const byPhase = new Map();
      for (const ph of phases.values()) byPhase.set(ph, (byPhase.get(ph) ?? 0) + 1);
      p(
        `finished (Succeeded/Failed): ${doneAt.size}/${COUNT}; the last ${s(tSettle - tCreate)} after the first POST; ` +
          `phases: ${[...byPhase].map(([k, v]) => `${k} ${v}`).join(', ')}`,
      );
    }
    p();
    p('operator process (child; /proc/PID/status, /proc/PID/stat):');
    p(`  idle after start-up: VmRSS ${mib(idle.rss)}, VmHWM ${mib(idle.hwm)}, CPU ${idle.cpu.toFixed(2)} s`);
    p(
      `  at all Jobs created: VmHWM ${mib(atJobs.op.hwm)} (max sampled VmRSS ${mib(atJobs.maxRss)}), ` +
        `VmRSS ${mib(atJobs.op.rss)}, CPU ${(atJobs.op.cpu - idle.cpu).toFixed(2)} s during the burst`,
    );
    if (atSettle)
      p(
        `  at all finished + 2 s quiet: VmHWM ${mib(atSettle.op.hwm)}, VmRSS ${mib(atSettle.op.rss)}, ` +
          `CPU ${(atSettle.op.cpu - idle.cpu).toFixed(2)} s since the burst`,
      );
    const simCpu = (u) => ((u.user + u.system) / 1e6).toFixed(2);
    p(
      `simulated cluster (this process) CPU: ${simCpu(atJobs.sim)} s until all Jobs` +
        (atSettle ? `, ${simCpu(atSettle.sim)} s until finished` : ''),
    );
    p();
    const table = (title, requests) => {
      const counts = countRequests(requests);
      const total = counts.reduce((a, [, n]) => a + n, 0);
      p(`${title}: ${total} requests (${(total / COUNT).toFixed(1)} per NixBuild)`);
      for (const [k, n] of counts) p(`  ${String(n).padStart(7)}  ${k}`);
    };
    table('operator API requests until all Jobs existed', atJobs.requests);
    if (atSettle) table('operator API requests until all finished', atSettle.requests);
    p(`sim event-loop delay until all Jobs: ${loopAtJobs}`);
    if (atSettle) p(`sim event-loop delay until finished: ${delay(loopDelay)}`);
    p();
    p('time in the sim API server per operator request (all requests of the run, watches excluded):');
    for (const [k, list] of [...served].sort((a, b) => b[1].length - a[1].length)) {
      const sorted = [...list].sort((a, b) => a - b);
      const sum = sorted.reduce((a, b) => a + b, 0);
      p(
        `  ${k.padEnd(22)} n ${String(sorted.length).padStart(6)}  mean ${(sum / sorted.length).toFixed(1)} ms  ` +
          `p50 ${quantile(sorted, 0.5).toFixed(1)}  p99 ${quantile(sorted, 0.99).toFixed(1)}  sum ${s(sum)}`,
      );
    }
    p();
    for (const [when, snap] of [
      ['at all Jobs', atJobs],
      ['at finish', atSettle],
    ]) {
      if (!snap) continue;
      p(`operator metrics ${when}:`);
      for (const name of [
        'nixyard_operator_reconcile_total',
        'nixyard_operator_reconcile_duration_seconds_sum',
        'nixyard_operator_reconcile_duration_seconds_count',
        'nixyard_operator_jobs_created_total',
        'nixyard_operator_watch_restarts_total',
      ])
        p(`  ${metric(snap.metrics, name)}`);
    }
    const warns = opLogText.split('\n').filter((l) => /"level":(40|50)/.test(l));
    p(`operator log: ${opLogText.split('\n').length - 1} lines, ${warns.length} warnings/errors`);
    for (const w of warns.slice(0, 5)) p(`  ${w.slice(0, 300)}`);
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    for (const f of cleanup.reverse()) await f().catch((e) => log(`cleanup: ${e}`));
    if (process.env.BENCH_KEEP) log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

await main();
