/**
 * Gateway replicas as real processes (`node dist/cli/main.js gateway`) sharing one data
 * directory and one Redis, each on its own loopback port, with one ssh_config naming
 * them; and a worker-protocol client that talks to a replica through the real `ssh`
 * (`nix-daemon --stdio`), for ops no Nix command keeps open (AddTempRoot).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocalStore } from '../../store/local-store.js';
import { makeClientKey, type ClientKey } from './gateway-harness.js';
import { WorkerClient } from './worker-client.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface Replica {
  readonly name: string;
  readonly port: number;
  readonly process: ChildProcess;
  /** Everything it printed (JSON log lines). */
  output(): string;
  /** SIGTERM, and wait for it to exit. */
  stop(): Promise<void>;
  /** SIGKILL (a crashed pod), and wait for it to be gone. */
  kill(): Promise<void>;
}

export interface ReplicaOptions {
  readonly name: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly authorizedKeys: string;
  readonly redisUrl: string;
  /** Seconds (--redis-ttl). */
  readonly ttl: number;
  readonly extraArgs?: readonly string[];
  /** Added to its environment (which otherwise never names a Redis). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Starts `nixyard gateway` and resolves once it listens (its port read from its log). */
export function startReplica(o: ReplicaOptions): Promise<Replica> {
  const args = [
    MAIN,
    'gateway',
    '--data-dir',
    o.dataDir,
    '--listen',
    '127.0.0.1:0',
    '--authorized-keys',
    o.authorizedKeys,
    '--host-key',
    join(o.dir, `host-key-${o.name}`),
    '--redis-url',
    o.redisUrl,
    '--redis-ttl',
    String(o.ttl),
    '--log-level',
    'info',
    ...(o.extraArgs ?? []),
  ];
  const env = { ...process.env };
  delete env.NIXYARD_REDIS_URL;
  Object.assign(env, o.env);
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr.on('data', (c: Buffer) => (text += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return new Promise<Replica>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`replica ${o.name} did not start:\n${text}`));
    }, 20_000);
    const onData = (): void => {
      const m = /"port":(\d+)[^\n]*"msg":"gateway listening"/.exec(text);
      if (!m) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      resolve({
        name: o.name,
        port: Number(m[1]),
        process: child,
        output: () => text,
        stop: () => end('SIGTERM'),
        kill: () => end('SIGKILL'),
      });
    };
    child.stdout.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`replica ${o.name} exited before listening:\n${text}`));
    });
  });
}

/** An ssh_config with one host alias per replica, all with `key`. */
export async function writeReplicaSshConfig(
  file: string,
  replicas: readonly Pick<Replica, 'name' | 'port'>[],
  key: ClientKey,
): Promise<void> {
  const blocks = replicas.map((r) =>
    [
      `Host ${r.name}`,
      `  HostName 127.0.0.1`,
      `  Port ${r.port}`,
      `  User nixyard`,
      `  IdentityFile ${key.privateKeyFile}`,
      `  IdentitiesOnly yes`,
      `  StrictHostKeyChecking no`,
      `  UserKnownHostsFile /dev/null`,
      `  LogLevel ERROR`,
      '',
    ].join('\n'),
  );
  await writeFile(file, blocks.join('\n'));
}

/** A fresh admin key in a new authorized_keys file. */
export async function replicaKeys(dir: string): Promise<{ key: ClientKey; authorizedKeys: string }> {
  const key = await makeClientKey(dir, 'client');
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, `permissions="read,write,build,admin" ${key.publicKey}\n`);
  return { key, authorizedKeys };
}

/**
 * A `WorkerClient` whose server end is a real gateway reached by `ssh -F sshConfig host
 * nix-daemon --stdio`; `close()` ends ssh's input, and the session with it.
 */
export function sshWorkerClient(sshConfig: string, host: string): WorkerClient {
  return new WorkerClient({
    store: undefined as unknown as LocalStore, // not used: the server is remote
    start: (server) => {
      const ssh = spawn('ssh', ['-F', sshConfig, host, 'nix-daemon', '--stdio'], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      server.pipe(ssh.stdin);
      ssh.stdout.pipe(server);
      return new Promise<void>((resolve) => ssh.once('close', () => resolve()));
    },
  });
}
