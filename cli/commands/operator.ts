/** `nixyard operator`: the Kubernetes operator that builds NixBuilds as Jobs. */
import * as k8s from '@kubernetes/client-node';
import { loadOperatorConfig, operatorConfigHelp } from '../../operator/config.js';
import { OperatorError } from '../../operator/errors.js';
import { startOperator } from '../../operator/operator.js';
import type { Command } from '../command.js';

const usage = `Usage: nixyard operator [options]

Runs the Nixyard operator: it watches the NixBuild resources of one namespace and
builds each derivation as a Kubernetes Job (nixyard build-drv) on the node pool for
its system, with the shared store volume mounted, and writes the result back into the
NixBuild's status. Infrastructure failures (eviction, node loss, OOM-kill) are retried
up to --max-attempts; build failures never are. With leader election, run as many
replicas as you like: one works, the others wait for its Lease.

It reaches the API server through the in-cluster service account, or $KUBECONFIG /
~/.kube/config. /healthz, /readyz and /metrics are served on --metrics-listen.
Stops on SIGINT or SIGTERM.

Options (flags win over environment variables):
${operatorConfigHelp()}

The pools file is a JSON list (the Helm chart renders its values' pools into it):
  [{"name": "amd64", "systems": ["x86_64-linux", "i686-linux"],
    "features": ["big-parallel", "kvm"], "nodeSelector": {…}, "tolerations": […],
    "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "16Gi"}},
    "maxMemory": "64Gi", "runtimeClassName": "…", "hostUsers": false,
    "podSecurityContext": {…}, "securityContext": {…}}]
`;

export const operatorCommand: Command = {
  name: 'operator',
  usage,
  async run(argv, io) {
    let operator;
    try {
      const config = loadOperatorConfig(argv);
      const kubeConfig = new k8s.KubeConfig();
      kubeConfig.loadFromDefault();
      operator = await startOperator(config, { kubeConfig });
    } catch (e) {
      if (e instanceof OperatorError) {
        io.stderr.write(`error: ${e.message} [${e.code}]\n`);
        return 1;
      }
      throw e;
    }
    const running = operator;
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        running.log.info({ signal }, 'stopping');
        void running.close().then(() => resolve());
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  },
};
