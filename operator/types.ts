/**
 * The NixBuild resource as TypeScript sees it (crds/nixbuilds.nixyard.dev.yaml is the
 * schema) and the names the operator and chart agree on.
 */
export const GROUP = 'nixyard.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'NixBuild';
export const PLURAL = 'nixbuilds';

/** Labels and annotations the operator puts on what it creates. */
export const Label = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  nixBuild: 'nixyard.dev/nixbuild',
  drvHash: 'nixyard.dev/drv-hash',
  system: 'nixyard.dev/system',
  pool: 'nixyard.dev/pool',
  attempt: 'nixyard.dev/attempt',
} as const;

export const Annotation = {
  drvPath: 'nixyard.dev/drv-path',
} as const;

export const MANAGER = 'nixyard-operator';

export type Phase = 'Pending' | 'Scheduled' | 'Building' | 'Succeeded' | 'Failed' | 'Cancelled';

export const TERMINAL_PHASES: readonly Phase[] = ['Succeeded', 'Failed'];

export interface Quantities {
  readonly cpu?: string | number;
  readonly memory?: string | number;
}

export interface BuildResources {
  readonly requests?: Quantities;
  readonly limits?: Quantities;
}

export interface NixBuildSpec {
  readonly drvPath: string;
  readonly system: string;
  readonly requiredSystemFeatures?: readonly string[];
  readonly resources?: BuildResources;
  readonly timeoutSeconds?: number;
  readonly maxSilentTimeSeconds?: number;
  /** Undefined: no session owns it. Empty: every session left. */
  readonly requesters?: readonly string[];
  readonly keepRunning?: boolean;
  /** A derivation sent whole (BuildDerivation): its file, relative to the store volume's root. */
  readonly derivationFile?: string;
  /**
   * Check mode (`--check`, `--rebuild`): build in this scratch store (a data directory,
   * relative to the volume's root) that holds the input closure, registering nothing in
   * the real one; the gateway compares.
   */
  readonly check?: { readonly dataDir: string };
}

/** metav1.Condition. */
export interface Condition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

export interface BuildOutputRef {
  readonly name: string;
  readonly path: string;
}

export interface NixBuildStatus {
  readonly phase?: Phase;
  readonly observedGeneration?: number;
  readonly conditions?: readonly Condition[];
  readonly pool?: string;
  readonly jobName?: string;
  readonly podName?: string;
  readonly nodeName?: string;
  readonly startTime?: string;
  readonly completionTime?: string;
  readonly duration?: string;
  readonly outputs?: readonly BuildOutputRef[];
  readonly reason?: string;
  readonly message?: string;
  readonly exitCode?: number;
  readonly attempts?: number;
  readonly memoryLimit?: string;
}

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly generation?: number;
  readonly resourceVersion?: string;
  readonly creationTimestamp?: string;
  readonly deletionTimestamp?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly finalizers?: readonly string[];
}

export interface NixBuild {
  readonly apiVersion: typeof API_VERSION;
  readonly kind: typeof KIND;
  readonly metadata: ObjectMeta;
  readonly spec: NixBuildSpec;
  readonly status?: NixBuildStatus;
}
