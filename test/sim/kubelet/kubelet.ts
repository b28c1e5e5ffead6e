/**
 * The scheduler and the kubelets of every simulated node, in one object. Each pod is
 * bound to a fitting node, then its containers run as local processes: command/args/
 * env from the pod spec, volume mount paths rewritten to local directories (the
 * `volumeMap`), stdout+stderr captured for pods/log. Exit codes become container
 * states and pod phases (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/).
 *
 * Differences from a real kubelet, on purpose: no images or filesystems (a container's
 * command must name a host program, or `commands`/`images` map it to one); mount paths
 * are rewritten in argv/env/workingDir instead of bind-mounted; init containers,
 * probes and resource limits are not run or enforced (OOM-kill is a fault you inject).
 *
 * CPU architecture: every pod runs on this machine, whatever its node. A node's CPU is
 * its `arch` (NodeSpec; registered as the kubernetes.io/arch label and
 * status.nodeInfo.architecture), and the kubelet makes each container see it, as
 * qemu-user registered through binfmt_misc makes a foreign node run a program: the
 * container's environment gets SIM_NODE_ARCH=<arch> and NODE_OPTIONS gains
 * `--import` of ./cpu-arch.mjs, so that every Node process in the container reports
 * the node's CPU (process.arch, os.arch(), os.machine()) while running natively. So
 * `nixyard build-drv` on an arm64 node builds aarch64-linux derivations (their builder
 * being this machine's busybox) and refuses them on an amd64 node, as on real nodes.
 * Other programs (`uname -m`) still see this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Api } from '../apiserver/api.js';
import { ApiError, Errors } from '../apiserver/errors.js';
import type { LogOptions, LogSource, SimApiServer } from '../apiserver/server.js';
import { clone, isDict, rfc3339, type Dict, type KObject, str } from '../apiserver/types.js';
import { recordEvent } from './events.js';
import { archOf, nodeObject, unfit, type NodeSpec } from './scheduling.js';

export interface VolumeRef {
  readonly kind: 'hostPath' | 'persistentVolumeClaim';
  /** hostPath.path, or the claim name. */
  readonly source: string;
  readonly namespace: string;
  readonly pod: string;
  readonly node: string;
}

export interface KubeletOptions {
  readonly nodes: readonly NodeSpec[];
  /** Local directory for a hostPath or PVC volume (a function or a map keyed by path/claim). */
  readonly volumeMap?: ((v: VolumeRef) => string) | Readonly<Record<string, string>>;
  /** Replaces a container's command[0] by a host argv prefix, e.g. {nixyard: [node, dist/cli/main.js]}. */
  readonly commands?: Readonly<Record<string, readonly string[]>>;
  /** Default command for images whose containers set none (the image's ENTRYPOINT). */
  readonly images?: Readonly<Record<string, readonly string[]>>;
  /** Environment every container starts with (default: PATH and HOME of this process). */
  readonly baseEnv?: Readonly<Record<string, string>>;
  /** Time in ContainerCreating before the process starts (ms, default 20). */
  readonly startDelayMs?: number;
  /** Simulated ms between a node's loss and the taint manager evicting its pods (default 300 s). */
  readonly nodeLossEvictionMs?: number;
}

interface LogLine {
  ts: number;
  text: string;
}

class ContainerLog {
  lines: LogLine[] = [];
  done = false;
  private readonly waiters = new Set<() => void>();
  private partial = '';

  push(chunk: string, now: number): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const text of parts) this.lines.push({ ts: now, text });
    if (parts.length) this.wake();
  }

  end(now: number): void {
    if (this.partial !== '') this.lines.push({ ts: now, text: this.partial });
    this.partial = '';
    this.done = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  next(): Promise<void> {
    return new Promise((r) => this.waiters.add(r));
  }
}

interface Run {
  pod: KObject;
  node: string;
  procs: Map<string, ChildProcess>;
  /** container → log of each instance (restarts append). */
  logs: Map<string, ContainerLog[]>;
  oom: Set<string>;
  restarts: Map<string, number>;
  exited: Map<
    string,
    { code: number; reason: string; signal?: number; startedAt: string; finishedAt: string }
  >;
  startedAt: Map<string, string>;
  killing: boolean;
  terminal: boolean;
  tmp?: string;
}

/** Signals the container's whole process group (it runs detached, as its own "PID namespace"). */
function signal(p: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (p.pid !== undefined) process.kill(-p.pid, sig);
  } catch {
    p.kill(sig);
  }
}

/** Preloaded into a container's Node processes: they see the node's CPU (see above). */
export const CPU_ARCH_PRELOAD = fileURLToPath(new URL('./cpu-arch.mjs', import.meta.url));

/**
 * The variables through which a container on a node with CPU `arch` sees that CPU:
 * SIM_NODE_ARCH and NODE_OPTIONS (the container's own NODE_OPTIONS, plus the preload).
 */
export function cpuEnv(arch: string, nodeOptions: string | undefined): Record<string, string> {
  const preload = `--import=${pathToFileURL(CPU_ARCH_PRELOAD).href}`;
  return {
    SIM_NODE_ARCH: arch,
    NODE_OPTIONS: nodeOptions ? `${nodeOptions} ${preload}` : preload,
  };
}

function rfc3339Nano(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

export class Kubelets implements LogSource {
  private readonly runs = new Map<string, Run>();
  private readonly lost = new Set<string>();
  private busy = false;
  private again = false;
  private stopped = false;

  constructor(
    private readonly server: SimApiServer,
    private readonly options: KubeletOptions,
  ) {
    server.logSource = this;
    server.evict = (pod, del) => this.evict(pod, del);
    this.api.react((e) => {
      if (e.typeKey === '/v1/pods' || e.typeKey === '/v1/nodes') this.kick();
    });
    server.adminRoute('pods', async (_req, res, _body, url) => {
      // POST /__sim/pods/{ns}/{name}/oomkill[?container=c]
      const [, ns, name, action] = url.pathname.slice('/__sim/'.length).split('/');
      if (action !== 'oomkill' || !ns || !name) throw Errors.pathNotFound();
      await this.oomKill(ns, name, url.searchParams.get('container') ?? undefined);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
    server.adminRoute('nodes', async (_req, res, _body, url) => {
      // POST /__sim/nodes/{name}/lose
      const [, name, action] = url.pathname.slice('/__sim/'.length).split('/');
      if (action !== 'lose' || !name) throw Errors.pathNotFound();
      await this.loseNode(name);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  }

  private get api(): Api {
    return this.server.api;
  }

  async registerNodes(): Promise<void> {
    const t = this.api.findType('', 'v1', 'nodes')!;
    const now = rfc3339(this.api.clock.now());
    for (const [i, n] of this.options.nodes.entries()) await this.api.create(t, '', nodeObject(n, i, now));
  }

  stop(): void {
    this.stopped = true;
    for (const r of this.runs.values()) for (const p of r.procs.values()) signal(p, 'SIGKILL');
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    setImmediate(() => {
      this.sync()
        .catch((e: unknown) => {
          if (!(e instanceof ApiError && (e.code === 409 || e.code === 404)))
            process.emitWarning(`sim kubelet: ${str(e)}`);
        })
        .finally(() => {
          this.busy = false;
          if (this.again) {
            this.again = false;
            this.kick();
          }
        });
    });
  }

  private get podType() {
    return this.api.findType('', 'v1', 'pods')!;
  }

  private async sync(): Promise<void> {
    const pods = this.api.list(this.podType, undefined).items;
    const nodes = this.api.list(this.api.findType('', 'v1', 'nodes')!, undefined).items;
    for (const pod of pods) {
      const spec = pod.spec as Dict;
      const phase = (pod.status as Dict | undefined)?.phase as string | undefined;
      const uid = pod.metadata.uid!;
      const node = spec.nodeName as string | undefined;
      const run = this.runs.get(uid);
      if (run) run.pod = pod;
      if (pod.metadata.deletionTimestamp) {
        if (node && this.lost.has(node)) continue;
        if (run && !run.terminal) {
          if (!run.killing) this.kill(run, (pod.metadata.deletionGracePeriodSeconds ?? 30) * 1000);
          continue;
        }
        if ((pod.metadata.deletionGracePeriodSeconds ?? 0) > 0 || !node)
          await this.api
            .delete(this.podType, pod.metadata.namespace!, pod.metadata.name!, { gracePeriodSeconds: 0 })
            .catch(() => undefined);
        continue;
      }
      if (!node) {
        if (phase === 'Pending' && (spec.schedulerName ?? 'default-scheduler') === 'default-scheduler')
          await this.schedule(pod, nodes, pods);
        continue;
      }
      if (!run && phase === 'Pending' && !this.lost.has(node) && nodes.some((n) => n.metadata.name === node))
        this.start(pod, node);
    }
    for (const [uid, run] of this.runs)
      if (!pods.some((p) => p.metadata.uid === uid) && run.terminal) this.runs.delete(uid);
  }

  // ------------------------------------------------------------ scheduler
  private async schedule(pod: KObject, nodes: KObject[], pods: KObject[]): Promise<void> {
    const reasons = new Map<string, number>();
    const fits: KObject[] = [];
    for (const n of nodes) {
      const running = pods.filter(
        (p) =>
          (p.spec as Dict).nodeName === n.metadata.name &&
          !['Succeeded', 'Failed'].includes(str((p.status as Dict | undefined)?.phase)),
      ).length;
      const why = unfit(pod, n, running);
      if (why) reasons.set(why, (reasons.get(why) ?? 0) + 1);
      else fits.push(n);
    }
    const cur = clone(pod);
    const status = (cur.status as Dict) ?? {};
    const now = rfc3339(this.api.clock.now());
    if (fits.length === 0) {
      const msg = `0/${nodes.length} nodes are available: ${[...reasons].map(([r, n]) => `${n} ${r}`).join(', ')}. preemption: not eligible.`;
      const conds = ((status.conditions as Dict[] | undefined) ?? []).filter(
        (c) => c.type !== 'PodScheduled',
      );
      const prev = ((status.conditions as Dict[] | undefined) ?? []).find((c) => c.type === 'PodScheduled');
      if (prev?.message === msg) return;
      conds.push({
        type: 'PodScheduled',
        status: 'False',
        reason: 'Unschedulable',
        message: msg,
        lastProbeTime: null,
        lastTransitionTime: now,
      });
      cur.status = { ...status, conditions: conds };
      await this.api.update(this.podType, cur.metadata.namespace!, cur.metadata.name!, cur, {
        subresource: 'status',
        fieldManager: 'kube-scheduler',
      });
      await recordEvent(this.api, pod, 'Warning', 'FailedScheduling', msg, 'default-scheduler');
      return;
    }
    const load = (n: KObject): number =>
      pods.filter((p) => (p.spec as Dict).nodeName === n.metadata.name).length;
    const target = fits.sort((a, b) => load(a) - load(b))[0]!;
    (cur.spec as Dict).nodeName = target.metadata.name;
    await this.api.update(this.podType, cur.metadata.namespace!, cur.metadata.name!, cur, {
      fieldManager: 'kube-scheduler',
    });
    await recordEvent(
      this.api,
      pod,
      'Normal',
      'Scheduled',
      `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${target.metadata.name}`,
      'default-scheduler',
    );
  }

  // ------------------------------------------------------------ kubelet
  private async writeStatus(run: Run, mutate: (status: Dict, pod: KObject) => void): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const cur = this.api.tryGet(this.podType, run.pod.metadata.namespace!, run.pod.metadata.name!);
      if (!cur || cur.metadata.uid !== run.pod.metadata.uid) return;
      const status = clone((cur.status as Dict | undefined) ?? {});
      mutate(status, cur);
      cur.status = status;
      try {
        const r = await this.api.update(this.podType, cur.metadata.namespace!, cur.metadata.name!, cur, {
          subresource: 'status',
          fieldManager: 'kubelet',
        });
        run.pod = r.object;
        return;
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 409)) throw e;
      }
    }
  }

  /** The node's CPU architecture (GOARCH name), as its kubernetes.io/arch label says. */
  private nodeArch(node: string): string {
    const n = this.options.nodes.find((x) => x.name === node);
    return n ? archOf(n) : 'amd64';
  }

  private containers(pod: KObject): Dict[] {
    return ((pod.spec as Dict).containers as Dict[] | undefined) ?? [];
  }

  private setCondition(status: Dict, type: string, value: boolean, now: string, reason?: string): void {
    const conds = ((status.conditions as Dict[] | undefined) ?? []).filter((c) => c.type !== type);
    const prev = ((status.conditions as Dict[] | undefined) ?? []).find((c) => c.type === type);
    const s = value ? 'True' : 'False';
    conds.push({
      type,
      status: s,
      lastProbeTime: null,
      lastTransitionTime: prev?.status === s ? prev.lastTransitionTime : now,
      ...(reason ? { reason } : {}),
    });
    status.conditions = conds;
  }

  private containerStatuses(run: Run, now: string): Dict[] {
    return this.containers(run.pod).map((c) => {
      const name = str(c.name);
      const ex = run.exited.get(name);
      const started = run.startedAt.get(name);
      const state: Dict = ex
        ? {
            terminated: {
              exitCode: ex.code,
              reason: ex.reason,
              ...(ex.signal ? { signal: ex.signal } : {}),
              startedAt: ex.startedAt,
              finishedAt: ex.finishedAt,
              containerID: `sim://${run.pod.metadata.uid}-${name}`,
            },
          }
        : started
          ? { running: { startedAt: started } }
          : { waiting: { reason: 'ContainerCreating' } };
      void now;
      return {
        name,
        image: c.image,
        imageID: `sim://${str(c.image)}`,
        ready: !ex && !!started,
        started: !ex && !!started,
        restartCount: run.restarts.get(name) ?? 0,
        state,
        lastState: {},
        ...(started || ex ? { containerID: `sim://${run.pod.metadata.uid}-${name}` } : {}),
      };
    });
  }

  private start(pod: KObject, node: string): void {
    const run: Run = {
      pod,
      node,
      procs: new Map(),
      logs: new Map(),
      oom: new Set(),
      restarts: new Map(),
      exited: new Map(),
      startedAt: new Map(),
      killing: false,
      terminal: false,
    };
    this.runs.set(pod.metadata.uid!, run);
    const nodeIndex = this.options.nodes.findIndex((n) => n.name === node);
    void (async () => {
      const now = rfc3339(this.api.clock.now());
      await this.writeStatus(run, (s) => {
        s.hostIP = `10.0.0.${nodeIndex + 10}`;
        s.hostIPs = [{ ip: s.hostIP }];
        s.startTime = now;
        this.setCondition(s, 'PodScheduled', true, now);
        this.setCondition(s, 'Initialized', true, now);
        this.setCondition(s, 'PodReadyToStartContainers', true, now);
        this.setCondition(s, 'ContainersReady', false, now, 'ContainersNotReady');
        this.setCondition(s, 'Ready', false, now, 'ContainersNotReady');
        s.containerStatuses = this.containerStatuses(run, now);
      });
      await new Promise((r) => setTimeout(r, this.options.startDelayMs ?? 20));
      if (run.killing || this.lost.has(node)) return;
      let mounts: Map<string, string>;
      try {
        mounts = await this.prepareVolumes(run);
      } catch (e) {
        await this.writeStatus(run, (s) => {
          s.containerStatuses = this.containers(run.pod).map((c) => ({
            name: c.name,
            image: c.image,
            imageID: '',
            ready: false,
            started: false,
            restartCount: 0,
            state: { waiting: { reason: 'CreateContainerConfigError', message: (e as Error).message } },
            lastState: {},
          }));
        });
        return;
      }
      for (const c of this.containers(run.pod)) this.spawnContainer(run, c, mounts);
      const startedNow = rfc3339(this.api.clock.now());
      await this.writeStatus(run, (s) => {
        s.phase = 'Running';
        s.podIP = `10.244.${nodeIndex}.${(this.runs.size % 250) + 2}`;
        s.podIPs = [{ ip: s.podIP }];
        const allUp = this.containers(run.pod).every(
          (c) => run.startedAt.has(str(c.name)) && !run.exited.has(str(c.name)),
        );
        this.setCondition(s, 'ContainersReady', allUp, startedNow);
        this.setCondition(s, 'Ready', allUp, startedNow);
        s.containerStatuses = this.containerStatuses(run, startedNow);
      });
      for (const c of this.containers(run.pod))
        await recordEvent(
          this.api,
          run.pod,
          'Normal',
          'Started',
          `Started container ${str(c.name)}`,
          'kubelet',
        );
    })().catch((e: unknown) => process.emitWarning(`sim kubelet start: ${str(e)}`));
  }

  private volumeDir(v: Dict, run: Run): string | undefined {
    const map = this.options.volumeMap;
    let ref: VolumeRef | undefined;
    if (isDict(v.hostPath))
      ref = {
        kind: 'hostPath',
        source: str(v.hostPath.path),
        namespace: run.pod.metadata.namespace!,
        pod: run.pod.metadata.name!,
        node: run.node,
      };
    if (isDict(v.persistentVolumeClaim))
      ref = {
        kind: 'persistentVolumeClaim',
        source: str(v.persistentVolumeClaim.claimName),
        namespace: run.pod.metadata.namespace!,
        pod: run.pod.metadata.name!,
        node: run.node,
      };
    if (!ref) return undefined;
    if (typeof map === 'function') return map(ref);
    const dir = map?.[ref.source];
    if (dir === undefined)
      throw new Error(`volume "${str(v.name)}": no local directory mapped for ${ref.kind} ${ref.source}`);
    return dir;
  }

  /** Volume name → local directory (hostPath/PVC mapped, emptyDir/configMap/secret materialised). */
  private async prepareVolumes(run: Run): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const ns = run.pod.metadata.namespace!;
    for (const v of ((run.pod.spec as Dict).volumes as Dict[] | undefined) ?? []) {
      const name = str(v.name);
      const mapped = this.volumeDir(v, run);
      if (mapped !== undefined) {
        await mkdir(mapped, { recursive: true });
        out.set(name, mapped);
        continue;
      }
      run.tmp ??= await mkdtemp(join(tmpdir(), `sim-pod-${run.pod.metadata.name}-`));
      const dir = join(run.tmp, name);
      await mkdir(dir, { recursive: true });
      if (isDict(v.configMap) || isDict(v.secret)) {
        const secret = isDict(v.secret);
        const ref = (secret ? v.secret : v.configMap) as Dict;
        const t = this.api.findType('', 'v1', secret ? 'secrets' : 'configmaps')!;
        const refName = str(secret ? ref.secretName : ref.name);
        const obj = this.api.tryGet(t, ns, refName);
        if (!obj) {
          if (ref.optional === true) continue;
          throw new Error(`${secret ? 'secret' : 'configmap'} "${refName}" not found`);
        }
        for (const [k, val] of Object.entries((obj.data as Record<string, string> | undefined) ?? {}))
          await writeFile(join(dir, k), secret ? Buffer.from(val, 'base64') : val);
      }
      out.set(name, dir);
    }
    return out;
  }

  private env(run: Run, c: Dict): Record<string, string> {
    const env: Record<string, string> = {
      ...(this.options.baseEnv ?? {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/',
      }),
    };
    env.HOSTNAME = run.pod.metadata.name!;
    const ns = run.pod.metadata.namespace!;
    const lookup = (
      plural: string,
      name: string,
      key: string,
      b64: boolean,
      optional: boolean,
    ): string | undefined => {
      const o = this.api.tryGet(this.api.findType('', 'v1', plural)!, ns, name);
      const v = (o?.data as Record<string, string> | undefined)?.[key];
      if (v === undefined) {
        if (optional) return undefined;
        throw new Error(
          `couldn't find key ${key} in ${plural === 'secrets' ? 'Secret' : 'ConfigMap'} ${ns}/${name}`,
        );
      }
      return b64 ? Buffer.from(v, 'base64').toString('utf8') : v;
    };
    for (const ef of (c.envFrom as Dict[] | undefined) ?? []) {
      const cm = ef.configMapRef as Dict | undefined;
      const sec = ef.secretRef as Dict | undefined;
      const t = this.api.findType('', 'v1', cm ? 'configmaps' : 'secrets')!;
      const o = this.api.tryGet(t, ns, str((cm ?? sec)?.name));
      for (const [k, v] of Object.entries((o?.data as Record<string, string> | undefined) ?? {}))
        env[`${str(ef.prefix ?? '')}${k}`] = sec ? Buffer.from(v, 'base64').toString('utf8') : v;
    }
    for (const e of (c.env as Dict[] | undefined) ?? []) {
      const name = str(e.name);
      if (e.value !== undefined) {
        env[name] = str(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
        continue;
      }
      const vf = (e.valueFrom as Dict | undefined) ?? {};
      if (isDict(vf.fieldRef)) {
        const path = str(vf.fieldRef.fieldPath);
        const p = run.pod;
        const values: Record<string, string | undefined> = {
          'metadata.name': p.metadata.name,
          'metadata.namespace': p.metadata.namespace,
          'metadata.uid': p.metadata.uid,
          'spec.nodeName': run.node,
          'spec.serviceAccountName': (p.spec as Dict).serviceAccountName as string | undefined,
          'status.podIP': (p.status as Dict | undefined)?.podIP as string | undefined,
          'status.hostIP': (p.status as Dict | undefined)?.hostIP as string | undefined,
        };
        const lm = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
        env[name] = lm
          ? ((p.metadata[lm[1]!] as Record<string, string> | undefined)?.[lm[2]!] ?? '')
          : (values[path] ?? '');
      } else if (isDict(vf.secretKeyRef)) {
        const r = vf.secretKeyRef;
        const v = lookup('secrets', str(r.name), str(r.key), true, r.optional === true);
        if (v !== undefined) env[name] = v;
      } else if (isDict(vf.configMapKeyRef)) {
        const r = vf.configMapKeyRef;
        const v = lookup('configmaps', str(r.name), str(r.key), false, r.optional === true);
        if (v !== undefined) env[name] = v;
      }
    }
    return env;
  }

  private spawnContainer(run: Run, c: Dict, volumes: Map<string, string>): void {
    const name = str(c.name);
    const mounts = ((c.volumeMounts as Dict[] | undefined) ?? [])
      .map((m) => {
        const base = volumes.get(str(m.name));
        return {
          path: str(m.mountPath).replace(/\/+$/, ''),
          dir: base && (m.subPath ? join(base, str(m.subPath)) : base),
        };
      })
      .filter((m): m is { path: string; dir: string } => m.dir !== undefined)
      .sort((a, b) => b.path.length - a.path.length);
    const rewrite = (s: string): string => {
      for (const m of mounts) {
        const esc = m.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        s = s.replace(
          new RegExp(`(^|[=:,\\s])${esc}(?=/|$|[:,\\s])`, 'g'),
          (_x, pre: string) => `${pre}${m.dir}`,
        );
      }
      return s;
    };
    let log: ContainerLog;
    try {
      const env = this.env(run, c);
      for (const k of Object.keys(env)) env[k] = rewrite(env[k]!);
      Object.assign(env, cpuEnv(this.nodeArch(run.node), env.NODE_OPTIONS));
      const expand = (s: string): string =>
        s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
      let argv = [
        ...((c.command as string[] | undefined) ?? this.options.images?.[str(c.image)] ?? []),
        ...((c.args as string[] | undefined) ?? []),
      ]
        .map(expand)
        .map(rewrite);
      const first = argv[0];
      if (first === undefined)
        throw new Error(`image "${str(c.image)}" has no command known to the simulated kubelet`);
      const mapped = this.options.commands?.[first];
      if (mapped) argv = [...mapped, ...argv.slice(1)];
      const cwd = c.workingDir ? rewrite(str(c.workingDir)) : (run.tmp ?? tmpdir());
      log = new ContainerLog();
      const logs = run.logs.get(name) ?? [];
      logs.push(log);
      run.logs.set(name, logs);
      const proc = spawn(argv[0]!, argv.slice(1), {
        env,
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      run.procs.set(name, proc);
      run.startedAt.set(name, rfc3339(this.api.clock.now()));
      run.exited.delete(name);
      const onData = (d: Buffer): void => log.push(d.toString('utf8'), this.api.clock.now());
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      let spawnError: Error | undefined;
      proc.on('error', (e) => {
        spawnError = e;
        log.push(`${e.message}\n`, this.api.clock.now());
      });
      proc.on('close', (code, signal) => {
        log.end(this.api.clock.now());
        run.procs.delete(name);
        const sig = signal ? ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 }[signal as string] ?? 1) : undefined;
        const exitCode = spawnError ? 128 : (code ?? 128 + (sig ?? 0));
        const reason = run.oom.has(name)
          ? 'OOMKilled'
          : spawnError
            ? 'StartError'
            : exitCode === 0
              ? 'Completed'
              : 'Error';
        run.oom.delete(name);
        run.exited.set(name, {
          code: exitCode,
          reason,
          ...(sig ? { signal: sig } : {}),
          startedAt: run.startedAt.get(name)!,
          finishedAt: rfc3339(this.api.clock.now()),
        });
        void this.containerExited(run, c, volumes).catch((e: unknown) =>
          process.emitWarning(`sim kubelet exit: ${str(e)}`),
        );
      });
    } catch (e) {
      log = new ContainerLog();
      log.push(`${(e as Error).message}\n`, this.api.clock.now());
      log.end(this.api.clock.now());
      run.logs.set(name, [...(run.logs.get(name) ?? []), log]);
      const now = rfc3339(this.api.clock.now());
      run.startedAt.set(name, now);
      run.exited.set(name, { code: 128, reason: 'StartError', startedAt: now, finishedAt: now });
      void this.containerExited(run, c, volumes);
    }
  }

  private async containerExited(run: Run, c: Dict, volumes: Map<string, string>): Promise<void> {
    if (this.lost.has(run.node)) return;
    const name = str(c.name);
    const policy = str((run.pod.spec as Dict).restartPolicy ?? 'Always');
    const ex = run.exited.get(name)!;
    const restart = !run.killing && (policy === 'Always' || (policy === 'OnFailure' && ex.code !== 0));
    const now = rfc3339(this.api.clock.now());
    if (restart) {
      const last = {
        terminated: {
          exitCode: ex.code,
          reason: ex.reason,
          startedAt: ex.startedAt,
          finishedAt: ex.finishedAt,
        },
      };
      run.restarts.set(name, (run.restarts.get(name) ?? 0) + 1);
      await this.writeStatus(run, (s) => {
        s.containerStatuses = this.containerStatuses(run, now).map((cs) =>
          cs.name === name
            ? {
                ...cs,
                lastState: last,
                state: {
                  waiting: {
                    reason: 'CrashLoopBackOff',
                    message: `back-off restarting failed container ${name}`,
                  },
                },
              }
            : cs,
        );
      });
      setTimeout(() => {
        if (!run.killing && !this.stopped) this.spawnContainer(run, c, volumes);
      }, 50).unref();
      return;
    }
    const all = this.containers(run.pod);
    const done = all.every((x) => run.exited.has(str(x.name)));
    if (done) run.terminal = true;
    await this.writeStatus(run, (s) => {
      s.containerStatuses = this.containerStatuses(run, now);
      this.setCondition(s, 'ContainersReady', false, now, done ? 'PodCompleted' : 'ContainersNotReady');
      this.setCondition(s, 'Ready', false, now, done ? 'PodCompleted' : 'ContainersNotReady');
      if (done) {
        s.phase = all.every((x) => run.exited.get(str(x.name))!.code === 0) ? 'Succeeded' : 'Failed';
        this.setCondition(s, 'PodReadyToStartContainers', false, now);
      }
    });
    if (done && run.killing) this.kick();
  }

  private kill(run: Run, graceMs: number): void {
    run.killing = true;
    if (run.procs.size === 0) {
      if (!run.terminal) {
        run.terminal = true;
        void this.writeStatus(run, (s) => {
          const now = rfc3339(this.api.clock.now());
          for (const c of this.containers(run.pod))
            if (!run.exited.has(str(c.name)))
              run.exited.set(str(c.name), {
                code: 137,
                reason: 'ContainerStatusUnknown',
                startedAt: now,
                finishedAt: now,
              });
          s.containerStatuses = this.containerStatuses(run, now);
          s.phase = 'Failed';
        }).then(() => this.kick());
      }
      return;
    }
    for (const p of run.procs.values()) signal(p, 'SIGTERM');
    this.api.clock.after(graceMs, () => {
      for (const p of run.procs.values()) signal(p, 'SIGKILL');
    });
  }

  // ------------------------------------------------------------ faults
  /** The container is killed as by the kernel OOM killer: exit 137, reason OOMKilled. */
  async oomKill(namespace: string, name: string, container?: string): Promise<void> {
    const pod = this.api.get(this.podType, namespace, name);
    const run = this.runs.get(pod.metadata.uid!);
    if (!run) throw Errors.badRequest(`pod ${name} is not running`);
    const c = container ?? str(this.containers(pod)[0]?.name);
    const p = run.procs.get(c);
    if (!p) throw Errors.badRequest(`container ${c} is not running`);
    run.oom.add(c);
    signal(p, 'SIGKILL');
    await new Promise<void>((r) => p.once('close', () => r()));
  }

  /** Eviction API: DisruptionTarget condition, then graceful deletion. */
  async evict(pod: KObject, del: { gracePeriodSeconds?: number }): Promise<void> {
    const t = this.podType;
    const cur = clone(pod);
    const status = (cur.status as Dict | undefined) ?? {};
    const now = rfc3339(this.api.clock.now());
    const conds = ((status.conditions as Dict[] | undefined) ?? []).filter(
      (c) => c.type !== 'DisruptionTarget',
    );
    conds.push({
      type: 'DisruptionTarget',
      status: 'True',
      reason: 'EvictionByEvictionAPI',
      message: 'Eviction API: evicting',
      lastProbeTime: null,
      lastTransitionTime: now,
    });
    cur.status = { ...status, conditions: conds };
    await this.api.update(t, cur.metadata.namespace!, cur.metadata.name!, cur, {
      subresource: 'status',
      fieldManager: 'kube-apiserver',
    });
    await this.api.delete(
      t,
      cur.metadata.namespace!,
      cur.metadata.name!,
      del.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: del.gracePeriodSeconds } : {},
    );
  }

  /**
   * The node stops reporting: Ready=Unknown and the unreachable taints at once; its
   * processes die with it. After `nodeLossEvictionMs` of simulated time the taint
   * manager marks its pods DisruptionTarget and deletes them, and — the kubelet being
   * gone — pod GC sets them Failed and removes them (as once the node is out of service).
   */
  async loseNode(name: string): Promise<void> {
    const nt = this.api.findType('', 'v1', 'nodes')!;
    const node = this.api.get(nt, '', name);
    this.lost.add(name);
    for (const run of this.runs.values())
      if (run.node === name) for (const p of run.procs.values()) signal(p, 'SIGKILL');
    const now = rfc3339(this.api.clock.now());
    const status = clone(node.status as Dict);
    status.conditions = ((status.conditions as Dict[] | undefined) ?? []).map((c) =>
      c.type === 'Ready'
        ? {
            ...c,
            status: 'Unknown',
            reason: 'NodeStatusUnknown',
            message: 'Kubelet stopped posting node status.',
            lastTransitionTime: now,
          }
        : c,
    );
    await this.api.update(
      nt,
      '',
      name,
      { ...node, status },
      { subresource: 'status', fieldManager: 'node-lifecycle-controller' },
    );
    const n2 = this.api.get(nt, '', name);
    (n2.spec as Dict).taints = [
      ...(((n2.spec as Dict).taints as Dict[] | undefined) ?? []),
      { key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule', timeAdded: now },
      { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: now },
    ];
    await this.api.update(nt, '', name, n2, { fieldManager: 'node-lifecycle-controller' });
    this.api.clock.after(this.options.nodeLossEvictionMs ?? 300_000, () => void this.evictLostNode(name));
  }

  private async evictLostNode(name: string): Promise<void> {
    const t = this.podType;
    for (const pod of this.api.list(t, undefined, { fieldSelector: `spec.nodeName=${name}` }).items) {
      const phase = (pod.status as Dict | undefined)?.phase;
      const now = rfc3339(this.api.clock.now());
      const cur = clone(pod);
      const status = (cur.status as Dict | undefined) ?? {};
      const conds = ((status.conditions as Dict[] | undefined) ?? []).filter(
        (c) => c.type !== 'DisruptionTarget' && c.type !== 'Ready',
      );
      conds.push({
        type: 'DisruptionTarget',
        status: 'True',
        reason: 'DeletionByTaintManager',
        message: 'Taint manager: deleting due to NoExecute taint',
        lastProbeTime: null,
        lastTransitionTime: now,
      });
      conds.push({
        type: 'Ready',
        status: 'False',
        reason: 'NodeLost',
        lastProbeTime: null,
        lastTransitionTime: now,
      });
      const terminal = phase === 'Succeeded' || phase === 'Failed';
      cur.status = {
        ...status,
        conditions: conds,
        ...(terminal
          ? {}
          : {
              phase: 'Failed',
              reason: 'NodeLost',
              message: `Node ${name} which was running pod ${pod.metadata.name} is unresponsive`,
            }),
        containerStatuses: this.containers(pod).map((c) => ({
          name: c.name,
          image: c.image,
          imageID: '',
          ready: false,
          started: false,
          restartCount: 0,
          state: {
            terminated: {
              exitCode: 137,
              reason: 'ContainerStatusUnknown',
              message: 'The container could not be located when the pod was terminated',
              startedAt: now,
              finishedAt: now,
            },
          },
          lastState: {},
        })),
      };
      await this.api
        .update(t, cur.metadata.namespace!, cur.metadata.name!, cur, {
          subresource: 'status',
          fieldManager: 'pod-garbage-collector',
        })
        .catch(() => undefined);
      await this.api
        .delete(t, cur.metadata.namespace!, cur.metadata.name!, { gracePeriodSeconds: 0 })
        .catch(() => undefined);
    }
  }

  // ------------------------------------------------------------ pods/log
  async stream(
    pod: KObject,
    container: string,
    opts: LogOptions,
    out: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    const run = this.runs.get(pod.metadata.uid!);
    const instances = run?.logs.get(container) ?? [];
    const log = opts.previous ? instances[instances.length - 2] : instances[instances.length - 1];
    if (!log) {
      if (opts.previous)
        throw Errors.badRequest(
          `previous terminated container "${container}" in pod "${pod.metadata.name}" not found`,
        );
      throw Errors.badRequest(
        `container "${container}" in pod "${pod.metadata.name}" is waiting to start: ContainerCreating`,
      );
    }
    out.writeHead(200, {
      'Content-Type': 'text/plain',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    out.flushHeaders();
    const since =
      opts.sinceTime ??
      (opts.sinceSeconds !== undefined ? this.api.clock.now() - opts.sinceSeconds * 1000 : undefined);
    let bytes = 0;
    const emit = (l: LogLine): boolean => {
      if (since !== undefined && l.ts < since) return true;
      const text = `${opts.timestamps ? `${rfc3339Nano(l.ts)} ` : ''}${l.text}\n`;
      if (opts.limitBytes !== undefined && bytes + text.length > opts.limitBytes) {
        out.write(text.slice(0, opts.limitBytes - bytes));
        return false;
      }
      bytes += text.length;
      out.write(text);
      return true;
    };
    let i = opts.tailLines !== undefined ? Math.max(0, log.lines.length - opts.tailLines) : 0;
    // One listener for the whole follow (one per line would pile up on the signal).
    const aborted = new Promise((r) => signal.addEventListener('abort', r, { once: true }));
    for (;;) {
      for (; i < log.lines.length; i++) if (!emit(log.lines[i]!)) return void out.end();
      if (!opts.follow || log.done || signal.aborted) break;
      await Promise.race([log.next(), aborted]);
    }
    out.end();
  }
}
