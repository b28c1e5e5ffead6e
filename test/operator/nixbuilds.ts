/** NixBuilds in one namespace of a simulated cluster, as the operator's cluster tests make and watch them. */
import type * as k8s from '@kubernetes/client-node';
import { nixBuildName } from '../../operator/names.js';
import type { NixBuild } from '../../operator/types.js';
import { waitFor } from '../sim/support.js';
import { HASH } from './fixtures.js';

/** A .drv path unique to `name` (the name's length in the hash keeps them apart). */
export const testDrv = (name: string): string =>
  `/nix/store/${HASH.slice(0, 28)}${name.length.toString().padStart(4, '0')}-${name}.drv`;

export interface NixBuilds {
  /** Creates the NixBuild of `testDrv(name)` as a gateway would; returns its object name. */
  readonly create: (name: string, spec?: Partial<NixBuild['spec']>) => Promise<string>;
  readonly get: (name: string) => Promise<NixBuild>;
  /** Waits until the NixBuild is in phase `want`. */
  readonly phase: (name: string, want: string, ms?: number) => Promise<NixBuild>;
}

export function nixBuilds(custom: k8s.CustomObjectsApi, namespace: string): NixBuilds {
  const api = { group: 'nixyard.dev', version: 'v1alpha1', namespace, plural: 'nixbuilds' };
  const get = async (name: string): Promise<NixBuild> =>
    (await custom.getNamespacedCustomObject({ ...api, name })) as NixBuild;
  return {
    async create(name, spec = {}) {
      const drvPath = testDrv(name);
      const body = {
        apiVersion: 'nixyard.dev/v1alpha1',
        kind: 'NixBuild',
        metadata: { name: nixBuildName(drvPath) },
        spec: { drvPath, system: 'x86_64-linux', ...spec },
      };
      await custom.createNamespacedCustomObject({ ...api, body });
      return body.metadata.name;
    },
    get,
    phase: (name, want, ms = 15_000) =>
      waitFor(
        `${name} ${want}`,
        async () => {
          const nb = await get(name);
          return nb.status?.phase === want ? nb : undefined;
        },
        ms,
      ),
  };
}
