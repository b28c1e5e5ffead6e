/** core/v1 Events as the controllers and the kubelet record them (shown by `kubectl describe`). */
import type { Api } from '../apiserver/api.js';
import { rfc3339, type KObject } from '../apiserver/types.js';

export async function recordEvent(
  api: Api,
  about: KObject,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  component: string,
): Promise<void> {
  const t = api.findType('', 'v1', 'events')!;
  const ns = about.metadata.namespace ?? 'default';
  const now = rfc3339(api.clock.now());
  await api
    .create(t, ns, {
      metadata: { generateName: `${about.metadata.name}.` },
      involvedObject: {
        apiVersion: about.apiVersion,
        kind: about.kind,
        name: about.metadata.name,
        namespace: about.metadata.namespace,
        uid: about.metadata.uid,
        resourceVersion: about.metadata.resourceVersion,
      },
      reason,
      message,
      type,
      source: { component },
      reportingComponent: component,
      reportingInstance: component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    })
    .catch(() => undefined);
}
