// The watcher's own copy of what it has told its handler, keyed by namespace/name. client-node's
// informer cache cannot be trusted to re-announce objects after a restart, so convergence after a
// relist comes from diffing a fresh list against this store.

import type { KubernetesObject } from '@kubernetes/client-node';

export type ObjectEventType = 'add' | 'update' | 'delete';

export interface ObjectEvent<T> {
  readonly type: ObjectEventType;
  readonly object: T;
}

interface Entry<T> {
  readonly resourceVersion: string | undefined;
  readonly object: T;
}

/** `namespace/name`, or `name` for cluster-scoped objects; undefined when the object has no name. */
export function objectKey(object: KubernetesObject): string | undefined {
  const name = object.metadata?.name;
  if (name === undefined || name === '') return undefined;
  const namespace = object.metadata?.namespace;
  return namespace === undefined || namespace === '' ? name : `${namespace}/${name}`;
}

/**
 * What the store keeps of an object: identity, version and labels, not its content. The handler
 * keeps its own parsed copy; holding every listed object whole as well cost the agent ~70 MB at
 * 10,000 Services x 10 endpoints (bench/compare/memory-probe.ts). So a delete that a relist
 * discovers carries this metadata-only object.
 */
function tombstoneOf<T extends KubernetesObject>(object: T): T {
  const metadata = object.metadata;
  const kept: KubernetesObject = {
    ...(object.apiVersion !== undefined ? { apiVersion: object.apiVersion } : {}),
    ...(object.kind !== undefined ? { kind: object.kind } : {}),
    metadata: {
      ...(metadata?.name !== undefined ? { name: metadata.name } : {}),
      ...(metadata?.namespace !== undefined ? { namespace: metadata.namespace } : {}),
      ...(metadata?.uid !== undefined ? { uid: metadata.uid } : {}),
      ...(metadata?.resourceVersion !== undefined ? { resourceVersion: metadata.resourceVersion } : {}),
      ...(metadata?.labels !== undefined ? { labels: metadata.labels } : {}),
    },
  };
  return kept as T;
}

export class ObjectStore<T extends KubernetesObject> {
  private entries = new Map<string, Entry<T>>();

  get size(): number {
    return this.entries.size;
  }

  /** Metadata-only copies (see tombstoneOf). */
  objects(): T[] {
    return [...this.entries.values()].map((entry) => entry.object);
  }

  /**
   * An object arrived (watch ADDED or MODIFIED): `add` when new, `update` when its
   * resourceVersion moved, nothing when it is the version we already have (a replayed event).
   */
  upsert(key: string, object: T): ObjectEvent<T> | undefined {
    const resourceVersion = object.metadata?.resourceVersion;
    const previous = this.entries.get(key);
    if (previous !== undefined && sameVersion(previous.resourceVersion, resourceVersion)) return undefined;
    this.entries.set(key, { resourceVersion, object: tombstoneOf(object) });
    return { type: previous === undefined ? 'add' : 'update', object };
  }

  /** A watch DELETED: the event carries the final state; nothing when we never had the object. */
  delete(key: string, object: T): ObjectEvent<T> | undefined {
    if (!this.entries.delete(key)) return undefined;
    return { type: 'delete', object };
  }

  /**
   * Replace the contents with a full list and return the events that take a consumer from the
   * old view to the new one (adds and updates carry the listed objects, deletes the tombstones). Deletes come first so that a consumer never holds an old and a new
   * object side by side (two Services briefly claiming one nodePort, say).
   */
  replace(items: readonly { key: string; object: T }[]): ObjectEvent<T>[] {
    const next = new Map<string, Entry<T>>();
    const listed = new Map<string, T>();
    for (const { key, object } of items) {
      next.set(key, { resourceVersion: object.metadata?.resourceVersion, object: tombstoneOf(object) });
      listed.set(key, object);
    }
    const events: ObjectEvent<T>[] = [];
    for (const [key, entry] of this.entries) {
      if (!next.has(key)) events.push({ type: 'delete', object: entry.object });
    }
    for (const [key, entry] of next) {
      const previous = this.entries.get(key);
      const object = listed.get(key) ?? entry.object;
      if (previous === undefined) events.push({ type: 'add', object });
      else if (!sameVersion(previous.resourceVersion, entry.resourceVersion)) {
        events.push({ type: 'update', object });
      }
    }
    this.entries = next;
    return events;
  }
}

// Without a resourceVersion we cannot tell, so we report a change: a spurious update is harmless,
// a missed one is not.
function sameVersion(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && a !== '' && a === b;
}
