/** A real `redis-server` per test file, on a random loopback port, without persistence. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, createConnection } from 'node:net';
import { hashOf } from '../../nix/hash.js';
import type { PathInfo } from '../../store/path-info.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('error', () => resolve(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
  });
}

function launch(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return (async () => {
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (await answersPing(port)) return child;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    throw new Error(`redis-server did not start on port ${port}`);
  })();
}

function exited(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let child = await launch(port);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => exited(child, 'SIGKILL'),
    restart: async () => {
      child = await launch(port);
    },
    stop: () => exited(child, 'SIGTERM'),
  };
}

const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

/** A store path whose hash part encodes `n` (distinct n, distinct hash parts). */
export function pathOf(n: number, name = `p${n}`): string {
  let hash = '';
  for (let v = n; hash.length < 32; v = Math.floor(v / 32)) hash = NIX32[v % 32]! + hash;
  return `/nix/store/${hash}-${name}`;
}

export function infoOf(path: string, references: string[] = [], sigs: string[] = []): PathInfo {
  return {
    path,
    deriver: undefined,
    narHash: hashOf('sha256', path),
    narSize: path.length,
    references: [...new Set(references)].sort(),
    sigs,
    ca: undefined,
    registrationTime: 1700000000,
    ultimate: false,
  };
}
