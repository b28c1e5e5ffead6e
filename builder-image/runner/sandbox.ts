/**
 * The bubblewrap command line for one build: a pure function of the plan.
 *
 * File system design (the record of this decision, until an ADR exists):
 * - one host directory per build, `<data>/staging/<random>/` (same volume as the store,
 *   so outputs move into the store by rename), holding `store/`, `build/` and `etc/`;
 * - `<stage>/store` is bound read-write as `/nix/store` (mode 1775, like Nix's chroot
 *   store), then every path of the input closure is bound read-only on top of it at
 *   `/nix/store/<base>` from `<data>/store/<base>`. The builder writes its outputs at
 *   their real paths, which are plain directories of `<stage>/store` on the host; so
 *   they outlive the sandbox, and anything else written there is simply never looked at
 *   (stray paths vanish with the stage directory). bwrap leaves empty mount-point stubs
 *   for the inputs in `<stage>/store`; they are ignored too;
 * - `<stage>/build` is `/build` (cwd), `/etc/{passwd,group,hosts}` are Nix's files,
 *   `/dev` minimal (bwrap `--dev`), `/proc`, an empty world-writable `/tmp`;
 * - user, pid, ipc, uts, cgroup and (unless fixed-output) net namespaces; uid 1000,
 *   gid 100, hostname `localhost`; the builder is PID 1 (`--as-pid-1`), so background
 *   processes die with it; `--die-with-parent` and a new session;
 * - the environment is exactly the build environment (`--clearenv`, `--setenv`).
 */
import { join } from 'node:path';

export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 100;

/** `/etc/passwd` as Nix 2.8 writes it in the chroot (observed). */
export function etcPasswd(buildDir: string): string {
  return (
    `root:x:0:0:Nix build user:${buildDir}:/noshell\n` +
    `nixbld:x:${SANDBOX_UID}:${SANDBOX_GID}:Nix build user:${buildDir}:/noshell\n` +
    `nobody:x:65534:65534:Nobody:/:/noshell\n`
  );
}

export const ETC_GROUP = `root:x:0:\nnixbld:!:${SANDBOX_GID}:\nnogroup:x:65534:\n`;
export const ETC_HOSTS = '127.0.0.1 localhost\n::1 localhost\n';

export interface SandboxPlan {
  readonly bwrap: string;
  /** The per-build host directory (see the header). */
  readonly stageDir: string;
  /** Physical directory of the store content (`<data>/store`). */
  readonly contentDir: string;
  readonly storeDir: string;
  readonly buildDir: string;
  /** Store paths to bind read-only (the input closure). */
  readonly inputs: readonly string[];
  /** Fixed-output: share the host network and its resolv.conf/services/hosts. */
  readonly network: boolean;
  /** Host files bound for network builds, when they exist. */
  readonly hostNetFiles: readonly string[];
  readonly env: ReadonlyMap<string, string>;
  readonly builder: string;
  readonly args: readonly string[];
  /** File descriptor number bwrap reads the seccomp filter from, if any. */
  readonly seccompFd: number | undefined;
}

export const stagePaths = (stageDir: string): { store: string; build: string; etc: string } => ({
  store: join(stageDir, 'store'),
  build: join(stageDir, 'build'),
  etc: join(stageDir, 'etc'),
});

export function bwrapArgv(plan: SandboxPlan): string[] {
  const s = stagePaths(plan.stageDir);
  const a: string[] = [plan.bwrap, '--unshare-all'];
  if (plan.network) a.push('--share-net');
  a.push(
    '--uid',
    String(SANDBOX_UID),
    '--gid',
    String(SANDBOX_GID),
    '--hostname',
    'localhost',
    '--die-with-parent',
    '--new-session',
    '--as-pid-1',
    '--clearenv',
  );
  if (plan.seccompFd !== undefined) a.push('--seccomp', String(plan.seccompFd));
  a.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp');
  a.push('--bind', s.store, plan.storeDir);
  for (const p of [...plan.inputs].sort()) {
    const base = p.slice(plan.storeDir.length + 1);
    a.push('--ro-bind', join(plan.contentDir, base), p);
  }
  a.push('--bind', s.build, plan.buildDir);
  a.push('--ro-bind', join(s.etc, 'passwd'), '/etc/passwd');
  a.push('--ro-bind', join(s.etc, 'group'), '/etc/group');
  if (plan.network) for (const f of plan.hostNetFiles) a.push('--ro-bind', f, f);
  else a.push('--ro-bind', join(s.etc, 'hosts'), '/etc/hosts');
  a.push('--remount-ro', '/');
  for (const [k, v] of [...plan.env].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
    a.push('--setenv', k, v);
  a.push('--chdir', plan.buildDir, '--', plan.builder, ...plan.args);
  return a;
}

/** Quotes for `/bin/sh -c` (the pty wrapper). */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/**
 * The command that gives the builder a pseudo-terminal for stdout+stderr, like Nix:
 * util-linux `script` allocates it; the terminal is put in raw mode (no `\n`→`\r\n`,
 * no echo) as Nix does with `cfmakeraw`; stdin is /dev/null; the seccomp filter comes
 * in on fd 3 from a file.
 */
export function ptyArgv(script: string, bwrap: readonly string[], seccompFile: string | undefined): string[] {
  const redirect = seccompFile !== undefined ? ` 3<${shQuote(seccompFile)}` : '';
  const inner = `stty raw -echo 2>/dev/null; exec ${bwrap.map(shQuote).join(' ')} </dev/null${redirect}`;
  return [script, '--quiet', '--return', '--flush', '--command', inner, '/dev/null'];
}
