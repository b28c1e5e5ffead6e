/**
 * `startGateway(config)`: everything the embedded default needs on one machine: the
 * host key, authorized keys, the store on the data directory, and the SSH server.
 */
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Connection } from 'ssh2';
import { loadAuthorizedKeys } from './authorized-keys.js';
import type { GatewayConfig } from './config.js';
import { seedAuthorizedKeys } from './first-start.js';
import { loadOrCreateHostKey } from './host-key.js';
import { createSshServer, type ProtocolHandlers } from './ssh-server.js';
import { createHttpServer } from './http.js';
import { GatewayMetrics } from './metrics.js';

export interface RunningGateway {
  readonly host: string;
  readonly port: number;
  readonly hostPublicKey: string;
  readonly log: Logger;
  /** Port of the HTTP endpoint, if it is on. */
  readonly httpPort: number | undefined;
  close(): Promise<void>;
}

export interface GatewayDeps {
  readonly handlers: ProtocolHandlers;
  readonly log?: Logger;
  readonly metrics?: GatewayMetrics;
}

export async function startGateway(config: GatewayConfig, deps: GatewayDeps): Promise<RunningGateway> {
  const log = deps.log ?? pino({ level: config.logLevel, base: { component: 'gateway' } });
  const hostKey = await loadOrCreateHostKey(config.hostKeyFile);
  if (hostKey.generated)
    log.info({ file: config.hostKeyFile, publicKey: hostKey.publicKey }, 'generated a new host key');
  const seeded = await seedAuthorizedKeys(config.authorizedKeysFile);
  if (seeded !== undefined) {
    const msg =
      seeded > 0 ? "created authorized_keys with this user's SSH keys" : 'created an empty authorized_keys';
    log.info({ file: config.authorizedKeysFile, keys: seeded }, msg);
  }
  const initialKeys = await loadAuthorizedKeys(config.authorizedKeysFile);
  if (initialKeys.length === 0) {
    log.warn({ file: config.authorizedKeysFile }, 'no authorized keys: add a public key to let clients in');
  }

  const server = createSshServer({
    hostKey: hostKey.privateKey,
    authorizedKeys: () => loadAuthorizedKeys(config.authorizedKeysFile),
    handlers: deps.handlers,
    log,
    hostHint: config.listenPort === 22 ? config.listenHost : `${config.listenHost}:${config.listenPort}`,
    maxSessionsPerKey: config.maxSessionsPerKey,
    metrics: deps.metrics,
  });
  // Tracked so that close() ends open sessions instead of waiting for them.
  const connections = new Set<Connection>();
  server.on('connection', (client: Connection) => {
    connections.add(client);
    client.on('close', () => connections.delete(client));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listenPort, config.listenHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  log.info({ host: address.address, port: address.port, dataDir: config.dataDir }, 'gateway listening');

  const http =
    config.http && createHttpServer({ metrics: deps.metrics ?? new GatewayMetrics(), ready: () => true });
  let httpPort: number | undefined;
  if (http && config.http) {
    await http.listen({ host: config.http.host, port: config.http.port });
    httpPort = (http.server.address() as AddressInfo).port;
    log.info({ host: config.http.host, port: httpPort }, 'health and metrics listening');
  }
  return {
    host: address.address,
    port: address.port,
    hostPublicKey: hostKey.publicKey,
    log,
    httpPort,
    close: async () => {
      await Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const client of connections) client.end();
        }),
        http?.close(),
      ]);
    },
  };
}
