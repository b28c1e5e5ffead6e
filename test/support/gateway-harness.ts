/**
 * A gateway on loopback for integration tests, reached by the real OpenSSH client and
 * the real nix: a temp data dir, a fresh client key in authorized_keys, an ssh_config
 * that points at the gateway's port, and the environment nix needs (`NIX_SSHOPTS`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadGatewayConfig, type GatewayConfig } from '../../gateway/config.js';
import { startGateway, type RunningGateway } from '../../gateway/gateway.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { storeHandlers } from '../../gateway/handlers.js';
import type { ProtocolHandlers } from '../../gateway/ssh-server.js';
import { LocalStore } from '../../store/local-store.js';

const run = promisify(execFile);

export interface ClientKey {
  readonly privateKeyFile: string;
  readonly publicKey: string;
}

export interface GatewayHarness {
  readonly gateway: RunningGateway;
  readonly dir: string;
  readonly dataDir: string;
  readonly sshConfig: string;
  /** `ssh-ng://nixyard@gateway` with the key of `permissions` (default key when omitted). */
  readonly storeUrl: string;
  readonly legacyUrl: string;
  /** Environment for child processes: NIX_SSHOPTS, NIX_CONFIG, no NIX_REMOTE. */
  readonly env: NodeJS.ProcessEnv;
  /** A second key with the given permissions option, and an ssh_config host alias for it. */
  addKey(alias: string, permissions: string | undefined): Promise<ClientKey>;
  stop(): Promise<void>;
}

export async function makeClientKey(dir: string, name: string): Promise<ClientKey> {
  const privateKeyFile = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', privateKeyFile]);
  const { stdout } = await run('cat', [`${privateKeyFile}.pub`]);
  return { privateKeyFile, publicKey: stdout.trim() };
}

function hostBlock(alias: string, port: number, key: string): string {
  return [
    `Host ${alias}`,
    `  HostName 127.0.0.1`,
    `  Port ${port}`,
    `  User nixyard`,
    `  IdentityFile ${key}`,
    `  IdentitiesOnly yes`,
    `  StrictHostKeyChecking no`,
    `  UserKnownHostsFile /dev/null`,
    `  LogLevel ERROR`,
    '',
  ].join('\n');
}

export interface StoreGatewayHarness extends GatewayHarness {
  readonly store: LocalStore;
}

/**
 * The real thing: a LocalStore in the harness's data dir, served by `storeHandlers`
 * with the configuration the gateway parsed from `extraArgs`.
 */
export async function startStoreGateway(extraArgs: string[] = []): Promise<StoreGatewayHarness> {
  let store: LocalStore | undefined;
  const harness = await startGatewayHarness(
    (config, metrics) => {
      if (store === undefined) throw new Error('store not opened yet');
      return storeHandlers(store, config, metrics);
    },
    extraArgs,
    async (dataDir) => {
      store = await LocalStore.open({ dataDir });
    },
  );
  if (store === undefined) throw new Error('store not opened');
  return { ...harness, store };
}

export async function startGatewayHarness(
  handlersFor: ProtocolHandlers | ((config: GatewayConfig, metrics: GatewayMetrics) => ProtocolHandlers),
  extraArgs: string[] = [],
  beforeStart?: (dataDir: string) => Promise<void>,
): Promise<GatewayHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'nixyard-gw-'));
  const dataDir = join(dir, 'data');
  const main = await makeClientKey(dir, 'client');
  const authorizedKeysFile = join(dir, 'authorized_keys');
  const authorized = [`permissions="read,write,build,admin" ${main.publicKey}`];
  await writeFile(authorizedKeysFile, `${authorized.join('\n')}\n`);
  const config = loadGatewayConfig(
    ['--data-dir', dataDir, '--listen', '127.0.0.1:0', '--authorized-keys', authorizedKeysFile, ...extraArgs],
    {},
  );
  const log = pino({ level: process.env.NIXYARD_TEST_LOG ?? 'silent' });
  await beforeStart?.(dataDir);
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const handlers = typeof handlersFor === 'function' ? handlersFor(config, metrics) : handlersFor;
  const gateway = await startGateway(config, { handlers, log, metrics });
  const sshConfig = join(dir, 'ssh_config');
  const blocks = [hostBlock('gateway', gateway.port, main.privateKeyFile)];
  await writeFile(sshConfig, blocks.join('\n'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NIX_SSHOPTS: `-F ${sshConfig}`,
    NIX_CONFIG: 'substituters =\nexperimental-features = nix-command',
  };
  delete env.NIX_REMOTE;
  return {
    gateway,
    dir,
    dataDir,
    sshConfig,
    storeUrl: 'ssh-ng://gateway',
    legacyUrl: 'ssh://gateway',
    env,
    async addKey(alias, permissions) {
      const key = await makeClientKey(dir, alias);
      authorized.push(
        permissions === undefined ? key.publicKey : `permissions="${permissions}" ${key.publicKey}`,
      );
      await writeFile(authorizedKeysFile, `${authorized.join('\n')}\n`);
      blocks.push(hostBlock(alias, gateway.port, key.privateKeyFile));
      await writeFile(sshConfig, blocks.join('\n'));
      return key;
    },
    async stop() {
      await gateway.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
