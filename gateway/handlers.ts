/** Binds the protocol sessions to one store: what the SSH server runs per channel. */
import { randomUUID } from 'node:crypto';
import type { LocalStore } from '../store/local-store.js';
import { parsePublicKey } from '../store/signatures.js';
import type { GatewayConfig } from './config.js';
import type { GatewayMetrics } from './metrics.js';
import { BuildService } from './builds/service.js';
import type { ProtocolHandlers } from './ssh-server.js';
import { runServeSession } from './serve/session.js';
import { runWorkerSession } from './worker/session.js';

/** The builds of the embedded default: `nixyard build-drv` children, with the configured limits. */
export function localBuilds(store: LocalStore, config: GatewayConfig): BuildService {
  return BuildService.local(store, {
    maxJobs: config.maxJobs,
    cores: config.cores,
    timeout: config.buildTimeout,
    maxSilentTime: config.maxSilentTime,
  });
}

export function storeHandlers(
  store: LocalStore,
  config: GatewayConfig,
  metrics?: GatewayMetrics,
  builds: BuildService = localBuilds(store, config),
): ProtocolHandlers {
  const trustedPublicKeys = config.trustedPublicKeys.map(parsePublicKey);
  const common = { store, metrics, builds, maxNarSize: config.maxNarSize, trustedPublicKeys };
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
