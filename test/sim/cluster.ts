/**
 * A whole simulated cluster: the API server on loopback, the control-plane
 * controllers, the Job controller, the scheduler and kubelets of the given nodes, and
 * a kubeconfig for it. `npm run sim` and the operator/gateway tests build on this.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimApiServer, type SimApiServerOptions } from './apiserver/server.js';
import { writeKubeconfig } from './kubeconfig.js';
import { JobController } from './kubelet/job-controller.js';
import { Kubelets, type KubeletOptions } from './kubelet/kubelet.js';
import type { NodeSpec } from './kubelet/scheduling.js';

export interface SimClusterOptions extends SimApiServerOptions, Omit<KubeletOptions, 'nodes'> {
  /** Default: one amd64 node `node-amd64-0` and one arm64 node `node-arm64-0`. */
  readonly nodes?: readonly NodeSpec[];
  /** Namespaces created at start besides default, kube-system, kube-public, kube-node-lease. */
  readonly namespaces?: readonly string[];
  /** Where to write the kubeconfig (default: a fresh temp dir). */
  readonly kubeconfigPath?: string;
  /** Fixed port (default: any free port). */
  readonly port?: number;
}

export interface SimCluster {
  readonly kubeconfigPath: string;
  readonly url: string;
  readonly server: SimApiServer;
  readonly kubelets: Kubelets;
  readonly jobs: JobController;
  close(): Promise<void>;
}

export const DEFAULT_NODES: readonly NodeSpec[] = [
  { name: 'node-amd64-0', arch: 'amd64' },
  { name: 'node-arm64-0', arch: 'arm64' },
];

export async function startSimCluster(options: SimClusterOptions = {}): Promise<SimCluster> {
  const server = new SimApiServer(options);
  const url = await server.listen(options.port ?? 0);
  const nsType = server.api.findType('', 'v1', 'namespaces')!;
  for (const ns of [
    'default',
    'kube-system',
    'kube-public',
    'kube-node-lease',
    ...(options.namespaces ?? []),
  ])
    await server.api.create(nsType, '', { metadata: { name: ns } });
  const saType = server.api.findType('', 'v1', 'serviceaccounts')!;
  await server.api.create(saType, 'default', { metadata: { name: 'default' } });
  const jobs = new JobController(server.api);
  const kubelets = new Kubelets(server, { ...options, nodes: options.nodes ?? DEFAULT_NODES });
  await kubelets.registerNodes();
  const dir = options.kubeconfigPath ? undefined : await mkdtemp(join(tmpdir(), 'nixyard-sim-'));
  const kubeconfigPath = await writeKubeconfig(options.kubeconfigPath ?? join(dir!, 'kubeconfig'), {
    server: url,
  });
  return {
    kubeconfigPath,
    url,
    server,
    kubelets,
    jobs,
    async close() {
      jobs.stop();
      kubelets.stop();
      await server.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
