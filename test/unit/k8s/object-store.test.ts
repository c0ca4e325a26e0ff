import { describe, expect, it } from 'vitest';

import { ObjectStore, objectKey } from '../../../src/k8s/object-store.js';

type Thing = { metadata: { name?: string; namespace?: string; resourceVersion?: string } };
const thing = (name: string, resourceVersion?: string, namespace?: string): Thing => ({
  metadata: { name, ...(namespace !== undefined ? { namespace } : {}), ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
});
const summary = (events: { type: string; object: Thing }[]) =>
  events.map((event) => `${event.type} ${event.object.metadata.name}`);

describe('objectKey', () => {
  it('is namespace/name, or name for cluster-scoped objects', () => {
    expect(objectKey(thing('a', '1', 'ns'))).toBe('ns/a');
    expect(objectKey(thing('node-1'))).toBe('node-1');
    expect(objectKey({ metadata: {} })).toBeUndefined();
    expect(objectKey({})).toBeUndefined();
  });
});

describe('ObjectStore', () => {
  it('upsert: add, update on a new version, nothing for the same version', () => {
    const store = new ObjectStore<Thing>();
    expect(store.upsert('a', thing('a', '1'))?.type).toBe('add');
    expect(store.upsert('a', thing('a', '1'))).toBeUndefined();
    expect(store.upsert('a', thing('a', '2'))?.type).toBe('update');
    expect(store.size).toBe(1);
  });

  it('treats objects without a resourceVersion as changed', () => {
    const store = new ObjectStore<Thing>();
    store.upsert('a', thing('a'));
    expect(store.upsert('a', thing('a'))?.type).toBe('update');
  });

  it('delete of an unknown key is nothing', () => {
    const store = new ObjectStore<Thing>();
    expect(store.delete('a', thing('a', '1'))).toBeUndefined();
    store.upsert('a', thing('a', '1'));
    expect(store.delete('a', thing('a', '2'))?.type).toBe('delete');
    expect(store.size).toBe(0);
  });

  it('replace: deletes first, then adds and updates; unchanged objects produce nothing', () => {
    const store = new ObjectStore<Thing>();
    store.replace([
      { key: 'gone', object: thing('gone', '1') },
      { key: 'same', object: thing('same', '2') },
      { key: 'changed', object: thing('changed', '3') },
    ]);
    const events = store.replace([
      { key: 'new', object: thing('new', '9') },
      { key: 'same', object: thing('same', '2') },
      { key: 'changed', object: thing('changed', '8') },
    ]);
    expect(summary(events)).toEqual(['delete gone', 'add new', 'update changed']);
    expect(store.objects().map((object) => object.metadata.name)).toEqual(['new', 'same', 'changed']);
  });
});
