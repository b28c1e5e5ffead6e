/**
 * Writes a kubeconfig for the simulated API server: plain HTTP on loopback, so
 * `insecure-skip-tls-verify: true` (client-node 1.4.0 refuses http:// without it,
 * NOTES.md §2.2) and a static token that the server ignores.
 */
import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';

export interface KubeconfigOptions {
  readonly server: string;
  readonly namespace?: string;
  readonly cluster?: string;
  readonly user?: string;
  readonly token?: string;
}

export function kubeconfigYaml(o: KubeconfigOptions): string {
  const cluster = o.cluster ?? 'nixyard-sim';
  const user = o.user ?? 'sim-admin';
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: { server: o.server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: user, user: { token: o.token ?? 'sim-token' } }],
    contexts: [{ name: cluster, context: { cluster, user, namespace: o.namespace ?? 'default' } }],
    'current-context': cluster,
    preferences: {},
  });
}

export async function writeKubeconfig(path: string, o: KubeconfigOptions): Promise<string> {
  await writeFile(path, kubeconfigYaml(o), { mode: 0o600 });
  return path;
}
