/** Builders of NixBuilds, Jobs and Pods in the states the API server reports them. */
import type { V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node';
import type { PoolConfig } from '../../operator/pools.js';
import type { JobSettings } from '../../operator/job-builder.js';
import type { Policy } from '../../operator/plan.js';
import {
  API_VERSION,
  KIND,
  type NixBuild,
  type NixBuildSpec,
  type NixBuildStatus,
} from '../../operator/types.js';

export const HASH = '0c9x4s6khn8mi4rzsn3hbcn5ppyq8ppc';
export const DRV = `/nix/store/${HASH}-hello-2.12.1.drv`;

export function nixBuild(
  spec: Partial<NixBuildSpec> = {},
  status?: NixBuildStatus,
  meta: { name?: string; generation?: number } = {},
): NixBuild {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: meta.name ?? `${HASH}-hello-2-12-1`,
      namespace: 'builds',
      uid: '6f1c7a52-3d64-4d3e-9a53-8d2b4f0c1e11',
      generation: meta.generation ?? 1,
      creationTimestamp: '2026-11-25T10:00:00Z',
    },
    spec: { drvPath: DRV, system: 'x86_64-linux', ...spec },
    ...(status ? { status } : {}),
  };
}

export const pools = {
  amd64: {
    name: 'amd64',
    systems: ['x86_64-linux', 'i686-linux'],
    features: ['big-parallel', 'nixos-test', 'benchmark'],
    nodeSelector: {},
    tolerations: [],
    resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '8Gi' } },
    maxMemory: '32Gi',
    podLabels: {},
    podAnnotations: {},
  },
  arm: {
    name: 'arm',
    systems: ['aarch64-linux'],
    features: ['big-parallel'],
    nodeSelector: { 'nixyard.dev/pool': 'arm', 'node.kubernetes.io/instance-type': 'c7g.4xlarge' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'nix-arm64', effect: 'NoSchedule' }],
    resources: { requests: { cpu: '4', memory: '8Gi' }, limits: { cpu: '8', memory: '16Gi' } },
    runtimeClassName: 'gvisor',
    priorityClassName: 'nix-builds',
    buildDirSizeLimit: '50Gi',
    podLabels: { team: 'ci' },
    podAnnotations: { 'cluster-autoscaler.kubernetes.io/safe-to-evict': 'false' },
    podSecurityContext: { fsGroup: 30000, seccompProfile: { type: 'Unconfined' } },
    securityContext: { privileged: false, capabilities: { add: ['SYS_ADMIN'] }, procMount: 'Unmasked' },
    hostUsers: false,
  },
  kvm: {
    name: 'kvm',
    systems: ['x86_64-linux'],
    features: ['kvm', 'nixos-test', 'big-parallel'],
    nodeSelector: { 'devices.kubevirt.io/kvm': 'true' },
    tolerations: [{ key: 'nixyard.dev/kvm', operator: 'Exists', effect: 'NoSchedule' }],
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'nixyard.dev/kvm', operator: 'In', values: ['yes'] }] },
          ],
        },
      },
    },
    resources: { limits: { memory: '64Gi' } },
    podSecurityContext: {},
    securityContext: { privileged: true },
    hostUsers: true,
    podLabels: {},
    podAnnotations: {},
  },
} satisfies Record<string, PoolConfig>;

export const jobSettings: JobSettings = {
  image: 'ghcr.io/nixyard/nixyard:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  storeClaim: 'nixyard-store',
  storeMountPath: '/var/lib/nixyard',
  redis: { url: 'redis://nixyard-redis:6379' },
};

export const policy: Policy = {
  pools: [pools.amd64, pools.arm, pools.kvm],
  job: jobSettings,
  maxAttempts: 3,
  ttlSecondsAfterFinished: 3600,
};

export const NOW = new Date('2026-11-25T10:05:00.000Z');

export function withStatus(job: V1Job, conditions: Partial<V1JobCondition>[], extra: object = {}): V1Job {
  return {
    ...job,
    metadata: { ...job.metadata, uid: 'job-uid' },
    status: {
      startTime: new Date('2026-11-25T10:00:01Z'),
      conditions: conditions.map((c) => ({ status: 'True', type: 'Complete', ...c })),
      ...extra,
    },
  };
}

type PodState =
  | { kind: 'unscheduled'; message?: string }
  | { kind: 'creating'; node?: string; waiting?: string }
  | { kind: 'running'; node?: string }
  | {
      kind: 'terminated';
      node?: string;
      exitCode: number;
      reason?: string;
      message?: string;
      signal?: number;
    }
  | { kind: 'disrupted'; reason: string; node?: string; exitCode?: number };

export function pod(job: V1Job, state: PodState): V1Pod {
  const name = `${job.metadata!.name!}-x7k2p`;
  const node = 'node' in state && state.node !== undefined ? state.node : 'worker-amd64-1';
  const spec = {
    ...structuredClone(job.spec!.template.spec!),
    ...(state.kind === 'unscheduled' ? {} : { nodeName: node }),
  };
  const started = new Date('2026-11-25T10:00:10Z');
  const base: V1Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'builds' }, spec };
  switch (state.kind) {
    case 'unscheduled':
      return {
        ...base,
        status: {
          phase: 'Pending',
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message:
                state.message ??
                "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            },
          ],
        },
      };
    case 'creating':
      return {
        ...base,
        status: {
          phase: 'Pending',
          containerStatuses: [
            {
              name: 'build',
              image: 'x',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: state.waiting ?? 'ContainerCreating' } },
            },
          ],
        },
      };
    case 'running':
      return {
        ...base,
        status: {
          phase: 'Running',
          startTime: started,
          containerStatuses: [
            {
              name: 'build',
              image: 'x',
              imageID: '',
              ready: true,
              restartCount: 0,
              state: { running: { startedAt: started } },
            },
          ],
        },
      };
    case 'terminated':
      return {
        ...base,
        status: {
          phase: state.exitCode === 0 ? 'Succeeded' : 'Failed',
          startTime: started,
          containerStatuses: [
            {
              name: 'build',
              image: 'x',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: {
                terminated: {
                  exitCode: state.exitCode,
                  startedAt: started,
                  finishedAt: new Date('2026-11-25T10:01:33Z'),
                  ...(state.reason ? { reason: state.reason } : {}),
                  ...(state.message ? { message: state.message } : {}),
                  ...(state.signal !== undefined ? { signal: state.signal } : {}),
                },
              },
            },
          ],
        },
      };
    case 'disrupted':
      return {
        ...base,
        status: {
          phase: 'Failed',
          startTime: started,
          conditions: [
            { type: 'DisruptionTarget', status: 'True', reason: state.reason, message: 'drained' },
          ],
          containerStatuses: [
            {
              name: 'build',
              image: 'x',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: state.exitCode ?? 143, reason: 'Error', startedAt: started } },
            },
          ],
        },
      };
  }
}
