/**
 * Nodes and the scheduler's filters: nodeSelector, required node affinity, taints and
 * tolerations. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/
 * https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/
 */
import { matchesSelectorObject } from '../apiserver/selectors.js';
import type { Dict, KObject } from '../apiserver/types.js';

export interface Taint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

export interface NodeSpec {
  readonly name: string;
  /** `kubernetes.io/arch` label: amd64, arm64… */
  readonly arch?: string;
  readonly labels?: Record<string, string>;
  readonly taints?: readonly Taint[];
  /** Pods the node runs at once (status.allocatable.pods). */
  readonly maxPods?: number;
}

/** The node's CPU architecture, a Go GOARCH name (default amd64). */
export function archOf(n: NodeSpec): string {
  return n.arch ?? 'amd64';
}

export function nodeObject(n: NodeSpec, index: number, now: string): KObject {
  const arch = archOf(n);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/arch': arch,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/hostname': n.name,
        'beta.kubernetes.io/arch': arch,
        'beta.kubernetes.io/os': 'linux',
        ...n.labels,
      },
    },
    spec: { ...(n.taints?.length ? { taints: n.taints } : {}), podCIDR: `10.244.${index}.0/24` },
    status: {
      capacity: { cpu: '2', memory: '8Gi', pods: String(n.maxPods ?? 110) },
      allocatable: { cpu: '2', memory: '8Gi', pods: String(n.maxPods ?? 110) },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
      addresses: [
        { type: 'InternalIP', address: `10.0.0.${index + 10}` },
        { type: 'Hostname', address: n.name },
      ],
      nodeInfo: {
        architecture: arch,
        operatingSystem: 'linux',
        kubeletVersion: 'v1.34.0',
        kubeProxyVersion: 'v1.34.0',
        containerRuntimeVersion: 'sim://1.0.0',
        osImage: 'Nixyard simulated node',
        kernelVersion: 'sim',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    },
  };
}

function tolerates(tolerations: Dict[], taint: Taint): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return t.key === undefined || t.key === '' || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/** Why the node does not fit the pod, or undefined when it does. */
export function unfit(pod: KObject, node: KObject, running: number): string | undefined {
  const spec = pod.spec as Dict;
  const labels = node.metadata.labels ?? {};
  const ready =
    ((node.status as Dict).conditions as Dict[]).find((c) => c.type === 'Ready')?.status === 'True';
  if (!ready) return 'node(s) had untolerated taint {node.kubernetes.io/unreachable: }';
  if ((node.spec as Dict).unschedulable === true) return 'node(s) were unschedulable';
  for (const [k, v] of Object.entries((spec.nodeSelector as Record<string, string> | undefined) ?? {}))
    if (labels[k] !== v) return "node(s) didn't match Pod's node affinity/selector";
  const req = ((spec.affinity as Dict | undefined)?.nodeAffinity as Dict | undefined)
    ?.requiredDuringSchedulingIgnoredDuringExecution as Dict | undefined;
  const terms = (req?.nodeSelectorTerms as Dict[] | undefined) ?? [];
  if (terms.length > 0) {
    const ok = terms.some((term) => {
      const exprs =
        (term.matchExpressions as { key: string; operator: string; values?: string[] }[] | undefined) ?? [];
      const fields =
        (term.matchFields as { key: string; operator: string; values?: string[] }[] | undefined) ?? [];
      if (exprs.length === 0 && fields.length === 0) return false;
      return (
        matchesSelectorObject(labels, { matchExpressions: exprs }) &&
        matchesSelectorObject({ 'metadata.name': node.metadata.name! }, { matchExpressions: fields })
      );
    });
    if (!ok) return "node(s) didn't match Pod's node affinity/selector";
  }
  const tolerations = (spec.tolerations as Dict[] | undefined) ?? [];
  for (const taint of ((node.spec as Dict).taints as Taint[] | undefined) ?? []) {
    if (taint.effect === 'PreferNoSchedule') continue;
    if (!tolerates(tolerations, taint))
      return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
  }
  const max = Number(((node.status as Dict).allocatable as Dict).pods);
  if (running >= max) return 'Too many pods';
  return undefined;
}
