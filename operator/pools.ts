/**
 * Node pools: which systems and features each serves, and how its build pods are placed
 * and confined. They come from the Helm values (`pools:`), rendered as JSON into a
 * ConfigMap that the operator reads with --pools-file.
 */
import type {
  V1Affinity,
  V1PodSecurityContext,
  V1SecurityContext,
  V1Toleration,
} from '@kubernetes/client-node';
import { OperatorError, OperatorErrorCode } from './errors.js';
import { isQuantity } from './quantity.js';
import type { BuildResources } from './types.js';

export interface PoolConfig {
  readonly name: string;
  /** Nix systems built here (x86_64-linux, i686-linux, aarch64-linux, …). */
  readonly systems: readonly string[];
  /** Nix system features the nodes offer (kvm, big-parallel, nixos-test, benchmark). */
  readonly features: readonly string[];
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly tolerations: readonly V1Toleration[];
  readonly affinity?: V1Affinity;
  readonly runtimeClassName?: string;
  readonly priorityClassName?: string;
  /** Defaults for builds that do not ask for their own. */
  readonly resources: BuildResources;
  /** The highest memory limit an OOM-kill may raise a build to; no retry beyond it. */
  readonly maxMemory?: string;
  /** Size limit of the build directory (an emptyDir at /tmp). */
  readonly buildDirSizeLimit?: string;
  /** false: the pod gets its own user namespace (what the bwrap sandbox needs by default). */
  readonly hostUsers?: boolean;
  readonly podSecurityContext?: V1PodSecurityContext;
  readonly securityContext?: V1SecurityContext;
  readonly podLabels: Readonly<Record<string, string>>;
  readonly podAnnotations: Readonly<Record<string, string>>;
}

/** Nix system → `kubernetes.io/arch` of the nodes that run it (Linux only). */
const ARCH: Readonly<Record<string, string>> = {
  'x86_64-linux': 'amd64',
  'i686-linux': 'amd64',
  'aarch64-linux': 'arm64',
  'armv7l-linux': 'arm',
  'armv6l-linux': 'arm',
  'riscv64-linux': 'riscv64',
  'powerpc64le-linux': 'ppc64le',
  's390x-linux': 's390x',
};

export function archOfSystem(system: string): string | undefined {
  return ARCH[system];
}

export type PoolChoice =
  | { readonly ok: true; readonly pool: PoolConfig; readonly arch: string }
  | {
      readonly ok: false;
      readonly reason: 'NoPoolForSystem' | 'MissingSystemFeatures';
      readonly message: string;
    };

/**
 * The first pool that serves the system with every required feature. The refusal reads
 * like Nix's own when a machine cannot build a derivation.
 */
export function choosePool(
  pools: readonly PoolConfig[],
  drvPath: string,
  system: string,
  requiredFeatures: readonly string[] = [],
): PoolChoice {
  const arch = archOfSystem(system);
  const forSystem = arch === undefined ? [] : pools.filter((p) => p.systems.includes(system));
  const pool = forSystem.find((p) => requiredFeatures.every((f) => p.features.includes(f)));
  if (pool && arch) return { ok: true, pool, arch };
  const wanted = `a '${system}' with features {${[...requiredFeatures].sort().join(', ')}}`;
  const offered = pools
    .map((p) => `${p.name} (${p.systems.join(', ')}; features {${p.features.join(', ')}})`)
    .join(', ');
  return {
    ok: false,
    reason: forSystem.length === 0 ? 'NoPoolForSystem' : 'MissingSystemFeatures',
    message:
      `${wanted} is required to build '${drvPath}', but no Nixyard pool offers it` +
      (pools.length ? `; pools: ${offered}` : '; no pools are configured'),
  };
}

function fail(message: string, context: Record<string, string> = {}): never {
  throw new OperatorError(OperatorErrorCode.POOLS_INVALID, message, context);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringArray(v: unknown, where: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) fail(`${where} must be a list of strings`);
  return v;
}

function stringMap(v: unknown, where: string): Record<string, string> {
  if (v === undefined) return {};
  if (!isRecord(v) || !Object.values(v).every((s) => typeof s === 'string'))
    fail(`${where} must map strings to strings`);
  return v as Record<string, string>;
}

function optionalRecord<T>(v: unknown, where: string): T | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) fail(`${where} must be an object`);
  return v as T;
}

function resources(v: unknown, where: string): BuildResources {
  const r = optionalRecord<Record<string, unknown>>(v, where) ?? {};
  for (const key of Object.keys(r)) {
    if (key !== 'requests' && key !== 'limits') fail(`${where}.${key} is not a field (requests, limits)`);
    const q = optionalRecord<Record<string, unknown>>(r[key], `${where}.${key}`) ?? {};
    for (const [res, value] of Object.entries(q)) {
      if (res !== 'cpu' && res !== 'memory')
        fail(`${where}.${key}.${res}: only cpu and memory are supported`);
      if (!isQuantity(value)) fail(`${where}.${key}.${res} is not a quantity: ${JSON.stringify(value)}`);
    }
  }
  return r;
}

const POOL_FIELDS = new Set([
  'name',
  'systems',
  'features',
  'nodeSelector',
  'tolerations',
  'affinity',
  'runtimeClassName',
  'priorityClassName',
  'resources',
  'maxMemory',
  'buildDirSizeLimit',
  'hostUsers',
  'podSecurityContext',
  'securityContext',
  'podLabels',
  'podAnnotations',
]);

/** Checks the pools document (a JSON array, or `{pools: [...]}`) and fills in defaults. */
export function parsePools(doc: unknown): PoolConfig[] {
  const list = isRecord(doc) ? doc.pools : doc;
  if (!Array.isArray(list)) fail('the pools file must hold a list of pools (or {"pools": [...]})');
  const names = new Set<string>();
  return list.map((raw: unknown, i): PoolConfig => {
    const where = `pools[${i}]`;
    if (!isRecord(raw)) fail(`${where} must be an object`);
    for (const key of Object.keys(raw))
      if (!POOL_FIELDS.has(key)) fail(`${where}.${key} is not a pool field`);
    const name = raw.name;
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
      fail(`${where}.name must be a DNS label (lowercase letters, digits, '-')`);
    if (names.has(name)) fail(`pool name '${name}' appears twice`, { pool: name });
    names.add(name);
    const systems = stringArray(raw.systems, `${where}.systems`);
    if (systems.length === 0) fail(`${where}.systems must name at least one system`, { pool: name });
    for (const s of systems)
      if (archOfSystem(s) === undefined)
        fail(`${where}: Kubernetes nodes cannot build '${s}' (known: ${Object.keys(ARCH).join(', ')})`, {
          pool: name,
        });
    const tolerations = raw.tolerations ?? [];
    if (!Array.isArray(tolerations) || !tolerations.every(isRecord))
      fail(`${where}.tolerations must be a list`);
    for (const key of ['maxMemory', 'buildDirSizeLimit'] as const)
      if (raw[key] !== undefined && !isQuantity(raw[key])) fail(`${where}.${key} is not a quantity`);
    for (const key of ['runtimeClassName', 'priorityClassName'] as const)
      if (raw[key] !== undefined && typeof raw[key] !== 'string') fail(`${where}.${key} must be a string`);
    if (raw.hostUsers !== undefined && typeof raw.hostUsers !== 'boolean')
      fail(`${where}.hostUsers must be a boolean`);
    const pool: PoolConfig = {
      name,
      systems,
      features: stringArray(raw.features, `${where}.features`),
      nodeSelector: stringMap(raw.nodeSelector, `${where}.nodeSelector`),
      tolerations: tolerations,
      resources: resources(raw.resources, `${where}.resources`),
      podLabels: stringMap(raw.podLabels, `${where}.podLabels`),
      podAnnotations: stringMap(raw.podAnnotations, `${where}.podAnnotations`),
      ...pick(raw, where, ['affinity', 'podSecurityContext', 'securityContext']),
      ...(raw.runtimeClassName !== undefined ? { runtimeClassName: raw.runtimeClassName as string } : {}),
      ...(raw.priorityClassName !== undefined ? { priorityClassName: raw.priorityClassName as string } : {}),
      ...quantityField(raw, 'maxMemory'),
      ...quantityField(raw, 'buildDirSizeLimit'),
      ...(raw.hostUsers !== undefined ? { hostUsers: raw.hostUsers } : {}),
    };
    return pool;
  });
}

function quantityField<K extends string>(raw: Record<string, unknown>, key: K): Partial<Record<K, string>> {
  const v = raw[key];
  return isQuantity(v) ? ({ [key]: String(v) } as Partial<Record<K, string>>) : {};
}

function pick(raw: Record<string, unknown>, where: string, keys: readonly string[]): Record<string, object> {
  const out: Record<string, object> = {};
  for (const key of keys) {
    const v = optionalRecord<object>(raw[key], `${where}.${key}`);
    if (v !== undefined) out[key] = v;
  }
  return out;
}
