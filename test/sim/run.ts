/**
 * `npm run sim`: Nixyard on the simulated cluster, to try by hand. Brings up the
 * simulated API server (nodes node-amd64-0 and node-arm64-0), the NixBuild CRD, the real
 * operator and a cluster-mode gateway on loopback (test/e2e/sim-env.ts), prints how to
 * reach them, and runs until Ctrl-C.
 *
 * Node 20 runs no TypeScript: the script is `node --import ./test/sim/register.mjs
 * test/sim/run.ts` (SWC strips the types, as under jest), after `npm run build` (the
 * build pods run dist/cli/main.js).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { startNixyardSim } from '../e2e/sim-env.js';

const log = pino({ level: process.env.NIXYARD_LOG_LEVEL ?? 'info' });
const sim = await startNixyardSim({ log });
const envFile = join(sim.gateway.dir, 'env.sh');
await writeFile(
  envFile,
  [
    `export KUBECONFIG='${sim.kubeconfigPath}'`,
    `export NIX_SSHOPTS='${sim.env.NIX_SSHOPTS ?? ''}'`,
    `export NIX_CONFIG='substituters =\nexperimental-features = nix-command'`,
    '',
  ].join('\n'),
);
process.stdout.write(
  [
    '',
    'Nixyard on the simulated cluster is up.',
    `  API server:  ${sim.cluster.url} (nodes node-amd64-0, node-arm64-0; namespace ${sim.namespace})`,
    `  KUBECONFIG=${sim.kubeconfigPath}`,
    `  store URL:   ${sim.storeUrl}`,
    `  NIX_SSHOPTS='${sim.env.NIX_SSHOPTS ?? ''}'`,
    `  store data:  ${sim.store.layout.dataDir}`,
    '',
    `  . ${envFile}`,
    `  nix build --eval-store auto --store ${sim.storeUrl} -f default.nix -L`,
    `  kubectl -n ${sim.namespace} get nixbuilds    (kubectl: node dist/test/sim/tools.js, or .tools/k8s/)`,
    '',
    'Ctrl-C stops it.',
    '',
  ].join('\n'),
);
await new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});
process.stdout.write('stopping…\n');
await sim.close();
process.exit(0);
