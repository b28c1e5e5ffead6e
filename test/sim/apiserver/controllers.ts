/**
 * The control-plane controllers the API server needs to be honest about deletion:
 * - garbage collector: ownerReferences, background/foreground/orphan propagation
 *   (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents);
 * - namespace controller: a deleted namespace is Terminating until its content is gone
 *   (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/);
 * - CRD controller: NamesAccepted/Established conditions, and deleting a CRD deletes
 *   its custom resources (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#delete-a-customresourcedefinition).
 * They run after each write (coalesced), like the real ones reacting to watch events.
 */
import { Api, FINALIZER_CRD_CLEANUP, FINALIZER_FOREGROUND, FINALIZER_ORPHAN } from './api.js';
import { ApiError } from './errors.js';
import type { ResourceType } from './resources.js';
import { deepEqual, rfc3339, type Dict, type KObject, type OwnerReference } from './types.js';

function ignoreGone(e: unknown): void {
  if (e instanceof ApiError && (e.code === 404 || e.code === 409)) return;
  throw e;
}

export class ControlPlane {
  private scheduled = false;
  private running = false;
  private again = false;
  private stopped = false;

  constructor(private readonly api: Api) {
    api.react(() => this.schedule());
  }

  stop(): void {
    this.stopped = true;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.running = true;
      this.sweep()
        .catch((e: unknown) => process.emitWarning(`sim control plane: ${String(e)}`))
        .finally(() => {
          this.running = false;
          if (this.again) {
            this.again = false;
            this.schedule();
          }
        });
    });
  }

  private typeFor(o: KObject): ResourceType | undefined {
    return this.api.typeOf(o.apiVersion, o.kind);
  }

  private async removeFinalizer(t: ResourceType, o: KObject, f: string): Promise<void> {
    const cur = this.api.tryGet(t, o.metadata.namespace ?? '', o.metadata.name!);
    if (!cur || !(cur.metadata.finalizers ?? []).includes(f)) return;
    cur.metadata.finalizers = cur.metadata.finalizers!.filter((x) => x !== f);
    await this.api
      .update(t, cur.metadata.namespace ?? '', cur.metadata.name!, cur, {
        fieldManager: 'kube-controller-manager',
      })
      .catch(ignoreGone);
  }

  /** One pass over every object (the sim holds hundreds, not millions). */
  private async sweep(): Promise<void> {
    const objects: [ResourceType, KObject][] = [];
    const byUid = new Map<string, [ResourceType, KObject]>();
    for (const [, o] of this.api.store.all()) {
      const t = this.typeFor(o);
      if (!t) continue;
      objects.push([t, o]);
      byUid.set(o.metadata.uid!, [t, o]);
    }
    const dependents = new Map<string, [ResourceType, KObject, OwnerReference][]>();
    for (const [t, o] of objects)
      for (const ref of o.metadata.ownerReferences ?? []) {
        const list = dependents.get(ref.uid) ?? [];
        list.push([t, o, ref]);
        dependents.set(ref.uid, list);
      }

    for (const [t, o] of objects) {
      const meta = o.metadata;
      const ns = meta.namespace ?? '';
      if (meta.deletionTimestamp) {
        const fins = meta.finalizers ?? [];
        const deps = dependents.get(meta.uid!) ?? [];
        if (fins.includes(FINALIZER_ORPHAN)) {
          for (const [dt, d] of deps) {
            const cur = this.api.tryGet(dt, d.metadata.namespace ?? '', d.metadata.name!);
            if (!cur) continue;
            cur.metadata.ownerReferences = (cur.metadata.ownerReferences ?? []).filter(
              (r) => r.uid !== meta.uid,
            );
            if (cur.metadata.ownerReferences.length === 0) delete cur.metadata.ownerReferences;
            await this.api
              .update(dt, cur.metadata.namespace ?? '', cur.metadata.name!, cur, {
                fieldManager: 'generic-garbage-collector',
              })
              .catch(ignoreGone);
          }
          await this.removeFinalizer(t, o, FINALIZER_ORPHAN);
        } else if (fins.includes(FINALIZER_FOREGROUND)) {
          const blocking = deps.filter(([, , r]) => r.blockOwnerDeletion === true);
          for (const [dt, d] of deps)
            if (!d.metadata.deletionTimestamp)
              await this.api
                .delete(dt, d.metadata.namespace ?? '', d.metadata.name!, { propagationPolicy: 'Foreground' })
                .catch(ignoreGone);
          if (blocking.length === 0) await this.removeFinalizer(t, o, FINALIZER_FOREGROUND);
        }
        if (t.group === '' && t.kind === 'Namespace') await this.finishNamespace(t, o);
        if (t.group === 'apiextensions.k8s.io' && fins.includes(FINALIZER_CRD_CLEANUP))
          await this.cleanupCrd(t, o);
      }
      if (t.group === 'apiextensions.k8s.io' && !meta.deletionTimestamp) await this.establishCrd(t, o);

      // Dependents whose owners are all gone are collected (background).
      const refs = meta.ownerReferences ?? [];
      if (refs.length > 0 && !meta.deletionTimestamp) {
        const alive = refs.filter((r) => {
          const owner = byUid.get(r.uid);
          if (!owner) return false;
          const [ot, oo] = owner;
          return !ot.namespaced || oo.metadata.namespace === ns;
        });
        if (alive.length === 0) {
          const foreground = refs.some((r) => {
            const owner = byUid.get(r.uid);
            return owner && (owner[1].metadata.finalizers ?? []).includes(FINALIZER_FOREGROUND);
          });
          await this.api
            .delete(t, ns, meta.name!, { propagationPolicy: foreground ? 'Foreground' : 'Background' })
            .catch(ignoreGone);
        } else if (alive.length < refs.length) {
          const cur = this.api.tryGet(t, ns, meta.name!);
          if (cur) {
            cur.metadata.ownerReferences = alive;
            await this.api
              .update(t, ns, meta.name!, cur, { fieldManager: 'generic-garbage-collector' })
              .catch(ignoreGone);
          }
        }
      }
    }
  }

  private async finishNamespace(t: ResourceType, nsObj: KObject): Promise<void> {
    const name = nsObj.metadata.name!;
    let remaining = 0;
    for (const rt of this.api.allTypes()) {
      if (!rt.namespaced) continue;
      for (const o of this.api.list(rt, name).items) {
        remaining++;
        if (!o.metadata.deletionTimestamp)
          await this.api
            .delete(rt, name, o.metadata.name!, { propagationPolicy: 'Background' })
            .catch(ignoreGone);
      }
    }
    if (remaining > 0) return;
    const cur = this.api.tryGet(t, '', name);
    if (!cur) return;
    cur.spec = { ...(cur.spec as Dict), finalizers: [] };
    await this.api.update(t, '', name, cur, { fieldManager: 'namespace-controller' }).catch(ignoreGone);
  }

  private async cleanupCrd(t: ResourceType, crd: KObject): Promise<void> {
    let remaining = 0;
    for (const rt of this.api.allTypes()) {
      if (rt.crd?.crdName !== crd.metadata.name) continue;
      for (const o of this.api.list(rt, undefined).items) {
        remaining++;
        if (!o.metadata.deletionTimestamp)
          await this.api.delete(rt, o.metadata.namespace ?? '', o.metadata.name!, {}).catch(ignoreGone);
      }
    }
    if (remaining === 0) await this.removeFinalizer(t, crd, FINALIZER_CRD_CLEANUP);
  }

  private async establishCrd(t: ResourceType, crd: KObject): Promise<void> {
    const spec = crd.spec as Dict;
    const status = (crd.status as Dict | undefined) ?? {};
    const conds = (status.conditions as Dict[] | undefined) ?? [];
    if (
      conds.some((c) => c.type === 'Established' && c.status === 'True') &&
      deepEqual(status.acceptedNames, spec.names)
    )
      return;
    const now = rfc3339(this.api.clock.now());
    const versions = ((spec.versions as Dict[] | undefined) ?? [])
      .filter((v) => v.storage === true)
      .map((v) => v.name);
    const next: KObject = {
      ...crd,
      status: {
        conditions: [
          {
            type: 'NamesAccepted',
            status: 'True',
            reason: 'NoConflicts',
            message: 'no conflicts found',
            lastTransitionTime: now,
          },
          {
            type: 'Established',
            status: 'True',
            reason: 'InitialNamesAccepted',
            message: 'the initial names have been accepted',
            lastTransitionTime: now,
          },
        ],
        acceptedNames: spec.names,
        storedVersions: versions,
      },
    };
    await this.api
      .update(t, '', crd.metadata.name!, next, { subresource: 'status', fieldManager: 'kube-apiserver' })
      .catch(ignoreGone);
  }
}
