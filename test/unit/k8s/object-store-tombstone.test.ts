import { describe, expect, it } from 'vitest';

import { ObjectStore } from '../../../src/k8s/object-store.js';

interface Big {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string>; managedFields?: { manager: string }[] };
  spec?: { payload: string };
}

const big = (name: string, resourceVersion: string): Big => ({
  apiVersion: 'v1',
  kind: 'Thing',
  metadata: { name, namespace: 'ns', resourceVersion, labels: { app: name }, managedFields: [{ manager: 'kubectl' }] },
  spec: { payload: 'x'.repeat(1000) },
});

describe('ObjectStore keeps identity only', () => {
  it('hands out the full object on add and update but keeps a metadata-only copy', () => {
    const store = new ObjectStore<Big>();
    const object = big('a', '1');
    expect(store.upsert('ns/a', object)?.object).toBe(object);
    expect(store.objects()).toEqual([{ apiVersion: 'v1', kind: 'Thing', metadata: { name: 'a', namespace: 'ns', resourceVersion: '1', labels: { app: 'a' } } }]);
    expect(store.upsert('ns/a', big('a', '1'))).toBeUndefined();
  });

  it('reports a delete found by a relist with the kept identity, and lists the new objects whole', () => {
    const store = new ObjectStore<Big>();
    store.replace([{ key: 'ns/gone', object: big('gone', '1') }, { key: 'ns/kept', object: big('kept', '2') }]);
    const changed = big('kept', '3');
    const events = store.replace([{ key: 'ns/kept', object: changed }]);
    expect(events).toEqual([
      { type: 'delete', object: { apiVersion: 'v1', kind: 'Thing', metadata: { name: 'gone', namespace: 'ns', resourceVersion: '1', labels: { app: 'gone' } } } },
      { type: 'update', object: changed },
    ]);
    expect(events[1]?.object).toBe(changed);
  });
});
