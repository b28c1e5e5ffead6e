/** Binds the protocol sessions to one store: what the SSH server runs per channel. */
import { randomUUID } from 'node:crypto';
import type { LocalStore } from '../store/local-store.js';
import { parsePublicKey } from '../store/signatures.js';
import type { GatewayConfig } from './config.js';
import type { GatewayMetrics } from './metrics.js';
import type { ProtocolHandlers } from './ssh-server.js';
import { runServeSession } from './serve/session.js';
import { runWorkerSession } from './worker/session.js';

export function storeHandlers(
  store: LocalStore,
  config: GatewayConfig,
  metrics?: GatewayMetrics,
): ProtocolHandlers {
  const trustedPublicKeys = config.trustedPublicKeys.map(parsePublicKey);
  const common = { store, metrics, maxNarSize: config.maxNarSize, trustedPublicKeys };
  return {
    worker: (channel, who, log) =>
      runWorkerSession(channel, {
        ...common,
        who,
        log,
        sessionId: randomUUID(),
        limits: { maxListCount: config.maxPathsPerRequest },
      }),
    serve: (channel, who, write, log) =>
      runServeSession(channel, { ...common, who, log, write, sessionId: randomUUID() }),
  };
}
