/**
 * In-memory object storage with one global, monotonic resourceVersion (as etcd's
 * revision), an event history for watch replay, and compaction that makes old
 * resourceVersions expire (410 Gone). A type that is a view of another's objects
 * (ResourceType.storage: events.k8s.io/v1 Events are core/v1 Events) reads and writes
 * those, converted; the history holds the stored form under the stored type's key.
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
 * https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
 */
import { storedKeyOf, storedOf, viewOf, type ResourceType } from './resources.js';
import { clone, type KObject } from './types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredEvent {
  readonly rv: number;
  readonly type: EventType;
  readonly typeKey: string;
  readonly object: KObject;
  /** The object before a MODIFIED/DELETED, for selector transitions. */
  readonly previous?: KObject;
}

export type StoreListener = (e: StoredEvent) => void;

export class Store {
  private rv = 1;
  private readonly objects = new Map<string, Map<string, KObject>>();
  private history: StoredEvent[] = [];
  /** Watches from a resourceVersion at or below this get 410 Gone. */
  compactedRv = 0;
  private readonly listeners = new Set<StoreListener>();

  constructor(private readonly historyLimit = 10_000) {}

  get currentRv(): number {
    return this.rv;
  }

  private bucket(typeKey: string): Map<string, KObject> {
    let b = this.objects.get(typeKey);
    if (!b) {
      b = new Map();
      this.objects.set(typeKey, b);
    }
    return b;
  }

  get(t: ResourceType, namespace: string, name: string): KObject | undefined {
    const o = this.bucket(storedKeyOf(t)).get(`${namespace}/${name}`);
    return o && viewOf(t, clone(o));
  }

  /** Objects of a type, sorted by namespace/name as etcd keys sort. */
  list(t: ResourceType, namespace?: string): KObject[] {
    const out: KObject[] = [];
    const b = this.bucket(storedKeyOf(t));
    for (const [k, o] of b) if (namespace === undefined || k.startsWith(`${namespace}/`)) out.push(o);
    return out
      .sort((a, b2) =>
        `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(
          `${b2.metadata.namespace ?? ''}/${b2.metadata.name}`,
        ),
      )
      .map((o) => viewOf(t, clone(o)));
  }

  /** Every stored object with its type key (for the garbage collector). */
  *all(): Generator<[string, KObject]> {
    for (const [k, b] of this.objects) for (const o of b.values()) yield [k, o];
  }

  dropType(typeKey: string): void {
    this.objects.delete(typeKey);
  }

  /** Writes (ADDED or MODIFIED) and stamps a new resourceVersion. */
  put(t: ResourceType, obj: KObject): KObject {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const b = this.bucket(storedKeyOf(t));
    const previous = b.get(key);
    const stored = clone(storedOf(t, obj));
    stored.metadata.resourceVersion = String(++this.rv);
    b.set(key, stored);
    this.emit({
      rv: this.rv,
      type: previous ? 'MODIFIED' : 'ADDED',
      typeKey: storedKeyOf(t),
      object: clone(stored),
      ...(previous ? { previous } : {}),
    });
    return viewOf(t, clone(stored));
  }

  remove(t: ResourceType, obj: KObject): KObject {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const b = this.bucket(storedKeyOf(t));
    const previous = b.get(key);
    b.delete(key);
    const gone = clone(previous ?? storedOf(t, obj));
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({
      rv: this.rv,
      type: 'DELETED',
      typeKey: storedKeyOf(t),
      object: clone(gone),
      ...(previous ? { previous } : {}),
    });
    return viewOf(t, gone);
  }

  private emit(e: StoredEvent): void {
    this.history.push(e);
    if (this.history.length > this.historyLimit) {
      const drop = this.history.length - this.historyLimit;
      this.compactedRv = this.history[drop - 1]!.rv;
      this.history = this.history.slice(drop);
    }
    for (const l of this.listeners) l(e);
  }

  /** Events after `rv`, or undefined when `rv` was compacted away. */
  eventsSince(rv: number): StoredEvent[] | undefined {
    if (rv < this.compactedRv) return undefined;
    return this.history.filter((e) => e.rv > rv);
  }

  /** Fault injection and tests: every resourceVersion so far becomes too old. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history = [];
  }

  subscribe(l: StoreListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
