import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../../src/model/build.js';
import { ModelStore } from '../../../src/model/store.js';
import { addresses, makeEndpoint, makeNode, makeService, makeSlice } from './fixtures.js';

const node = makeNode('node-a');
const trigger = (iso: string) => ({ annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': iso } });

function webService(name: string, extra: Record<string, unknown> = {}): V1Service {
  return makeService('ns', name, { ports: [{ name: 'http', port: 80 }, { name: 'metrics', port: 9090 }], ...extra });
}

function webSlice(name: string, ips: string[], options: { ready?: boolean; time?: string; service?: string } = {}): V1EndpointSlice {
  return makeSlice(
    'ns',
    `${name}-1`,
    options.service ?? name,
    ips.map((ip) => makeEndpoint(ip, { node: 'node-b', ready: options.ready })),
    [
      { name: 'http', port: 8080 },
      { name: 'metrics', port: 9090 },
    ],
    options.time === undefined ? {} : trigger(options.time),
  );
}

function seeded(): ModelStore {
  const store = new ModelStore(node);
  for (const name of ['a', 'b', 'c']) {
    store.upsertService(webService(name));
    store.upsertEndpointSlice(webSlice(name, ['10.244.0.1', '10.244.0.2']));
  }
  store.snapshot();
  return store;
}

describe('ModelStore', () => {
  it('recomputes only the Service whose slice changed; every other ServicePort keeps its identity', () => {
    const store = seeded();
    const before = store.snapshot().state;
    expect(store.upsertEndpointSlice(webSlice('b', ['10.244.0.1', '10.244.0.3']))).toBe(true);
    const { state, changedServicePortKeys } = store.snapshot();
    expect(changedServicePortKeys).toEqual(new Set(['ns/b:http/TCP', 'ns/b:metrics/TCP']));
    for (const [key, servicePort] of state.servicePorts) {
      if (changedServicePortKeys.has(key)) expect(servicePort).not.toBe(before.servicePorts.get(key));
      else expect(servicePort).toBe(before.servicePorts.get(key));
    }
    expect(addresses(state.servicePorts.get('ns/b:http/TCP')?.allEndpoints ?? [])).toEqual(['10.244.0.1:8080', '10.244.0.3:8080']);
    expect(state.servicePorts.size).toBe(6);
    // The previous state is not mutated by the next snapshot.
    expect(addresses(before.servicePorts.get('ns/b:http/TCP')?.allEndpoints ?? [])).toEqual(['10.244.0.1:8080', '10.244.0.2:8080']);
  });

  it('a change that does not alter a port keeps that port too (only metrics port differs)', () => {
    const store = seeded();
    const before = store.snapshot().state;
    const slice = webSlice('a', ['10.244.0.1', '10.244.0.2']);
    slice.ports = [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'metrics', port: 9191, protocol: 'TCP' },
    ];
    store.upsertEndpointSlice(slice);
    const { state, changedServicePortKeys } = store.snapshot();
    expect(changedServicePortKeys).toEqual(new Set(['ns/a:metrics/TCP']));
    expect(state.servicePorts.get('ns/a:http/TCP')).toBe(before.servicePorts.get('ns/a:http/TCP'));
  });

  it('an upsert identical in content (new resourceVersion, new trigger time) is no change at all', () => {
    const store = seeded();
    const before = store.snapshot();
    const service = webService('a');
    service.metadata = { ...service.metadata, resourceVersion: '999', annotations: { note: 'x' } };
    expect(store.upsertService(service)).toBe(false);
    expect(store.upsertEndpointSlice({ ...webSlice('a', ['10.244.0.2', '10.244.0.1'], { time: '2024-01-01T00:00:00Z' }) })).toBe(false);
    expect(store.pendingChanges()).toEqual({ services: 0, endpointSlices: 0 });
    const after = store.snapshot();
    expect(after.changedServicePortKeys.size).toBe(0);
    expect(after.state).toBe(before.state);
    expect(after.skipped).toBe(before.skipped);
    expect(after.triggerTimes).toEqual([]);
  });

  it('counts distinct pending Services and slices, and drops changes that cancel out', () => {
    const store = seeded();
    store.upsertService(webService('a', { sessionAffinity: 'ClientIP' }));
    store.upsertService(webService('a', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 5 } } }));
    store.upsertService(webService('d'));
    store.upsertEndpointSlice(webSlice('b', ['10.244.0.9']));
    expect(store.pendingChanges()).toEqual({ services: 2, endpointSlices: 1 });
    store.upsertEndpointSlice(webSlice('b', ['10.244.0.1', '10.244.0.2']));
    store.deleteService('ns', 'd');
    expect(store.pendingChanges()).toEqual({ services: 1, endpointSlices: 0 });
    store.snapshot();
    expect(store.pendingChanges()).toEqual({ services: 0, endpointSlices: 0 });
  });

  it('deletes: a Service takes its ports away, a slice takes its endpoints away', () => {
    const store = seeded();
    store.deleteService('ns', 'a');
    store.deleteEndpointSlice('ns', 'b-1');
    const { state, changedServicePortKeys } = store.snapshot();
    expect([...state.servicePorts.keys()].sort()).toEqual(['ns/b:http/TCP', 'ns/b:metrics/TCP', 'ns/c:http/TCP', 'ns/c:metrics/TCP']);
    expect(state.servicePorts.get('ns/b:http/TCP')?.allEndpoints).toEqual([]);
    expect(changedServicePortKeys).toEqual(new Set(['ns/a:http/TCP', 'ns/a:metrics/TCP', 'ns/b:http/TCP', 'ns/b:metrics/TCP']));
  });

  it('a slice relabelled to another Service leaves the first and joins the second', () => {
    const store = seeded();
    store.upsertEndpointSlice(webSlice('a', ['10.244.0.7'], { service: 'c' }));
    const { state } = store.snapshot();
    expect(state.servicePorts.get('ns/a:http/TCP')?.allEndpoints).toEqual([]);
    expect(addresses(state.servicePorts.get('ns/c:http/TCP')?.allEndpoints ?? [])).toEqual(['10.244.0.1:8080', '10.244.0.2:8080', '10.244.0.7:8080']);
  });

  it('hands a node port to the next claimant when the owner goes, and takes it back', () => {
    const store = new ModelStore(node);
    const older = makeService('ns', 'older', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { creationTimestamp: new Date('2024-01-01') });
    const newer = makeService('ns', 'newer', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { creationTimestamp: new Date('2024-02-01') });
    store.upsertService(older);
    store.upsertService(newer);
    const nodePorts = (): Record<string, number> =>
      Object.fromEntries([...store.snapshot().state.servicePorts.values()].map((servicePort) => [servicePort.key, servicePort.nodePort]));
    let snapshot = store.snapshot();
    expect(nodePorts()).toEqual({ 'ns/older:http/TCP': 30080, 'ns/newer:http/TCP': 0 });
    expect(snapshot.skipped.map((entry) => entry.reason)).toEqual(['port-clash']);

    store.deleteService('ns', 'older');
    snapshot = store.snapshot();
    expect(nodePorts()).toEqual({ 'ns/newer:http/TCP': 30080 });
    expect(snapshot.skipped).toEqual([]);

    store.upsertService(older);
    snapshot = store.snapshot();
    expect(nodePorts()).toEqual({ 'ns/older:http/TCP': 30080, 'ns/newer:http/TCP': 0 });
    expect(snapshot.changedServicePortKeys).toEqual(new Set(['ns/older:http/TCP', 'ns/newer:http/TCP']));
  });

  it('setNode: a new name re-evaluates locality; new IPs alone keep every ServicePort', () => {
    const store = new ModelStore(node);
    store.upsertService(makeService('ns', 'web', { internalTrafficPolicy: 'Local' }));
    store.upsertEndpointSlice(makeSlice('ns', 'web-1', 'web', [makeEndpoint('10.244.0.1', { node: 'node-a' }), makeEndpoint('10.244.0.2', { node: 'node-b' })]));
    const first = store.snapshot();
    expect(addresses(first.state.servicePorts.get('ns/web:http/TCP')?.localEndpoints ?? [])).toEqual(['10.244.0.1:8080']);

    expect(store.setNode(makeNode('node-a'))).toBe(false);
    expect(store.setNode({ ...node, ips: ['192.168.0.99'] })).toBe(true);
    const second = store.snapshot();
    expect(second.state.node.ips).toEqual(['192.168.0.99']);
    expect(second.changedServicePortKeys.size).toBe(0);
    expect(second.state.servicePorts.get('ns/web:http/TCP')).toBe(first.state.servicePorts.get('ns/web:http/TCP'));

    store.setNode(makeNode('node-b'));
    const third = store.snapshot();
    expect(addresses(third.state.servicePorts.get('ns/web:http/TCP')?.localEndpoints ?? [])).toEqual(['10.244.0.2:8080']);
  });

  it('returns the trigger times of changed slices once; deleting a slice drops its Service\'s pending times', () => {
    const store = seeded();
    store.upsertEndpointSlice(webSlice('a', ['10.244.0.5'], { time: '2024-03-01T00:00:01Z' }));
    store.upsertEndpointSlice(webSlice('a', ['10.244.0.6'], { time: '2024-03-01T00:00:02Z' }));
    store.upsertEndpointSlice(webSlice('b', ['10.244.0.5'], { time: '2024-03-01T00:00:03Z' }));
    store.upsertEndpointSlice(webSlice('c', ['10.244.0.5'], { time: '2024-03-01T00:00:04Z' }));
    store.deleteEndpointSlice('ns', 'c-1');
    const times = store.snapshot().triggerTimes.map((time) => time.toISOString()).sort();
    expect(times).toEqual(['2024-03-01T00:00:01.000Z', '2024-03-01T00:00:02.000Z', '2024-03-01T00:00:03.000Z']);
    expect(store.snapshot().triggerTimes).toEqual([]);
  });

  it('reports Skipped entries for the objects present now', () => {
    const store = seeded();
    store.upsertService(makeService('ns', 'broken', { clusterIPs: ['nope'] }));
    store.upsertEndpointSlice(makeSlice('ns', 'orphan', undefined, []));
    expect(store.snapshot().skipped.map((entry) => `${entry.kind} ${entry.name} ${entry.reason}`)).toEqual([
      'EndpointSlice orphan missing-service-name-label',
      'Service broken invalid-ip',
    ]);
    store.upsertService(makeService('ns', 'broken'));
    store.deleteEndpointSlice('ns', 'orphan');
    const { skipped, state } = store.snapshot();
    expect(skipped).toEqual([]);
    expect(state.servicePorts.has('ns/broken:http/TCP')).toBe(true);
  });

  it('agrees with a one-shot build after every snapshot of a random sequence of events', () => {
    // A small deterministic PRNG (mulberry32) drives upserts and deletes over a few Services and slices.
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
    const store = new ModelStore(makeNode('node-a', 'zone-a'));
    const services = new Map<string, V1Service>();
    const slices = new Map<string, V1EndpointSlice>();
    for (let step = 0; step < 400; step++) {
      const name = `s${random(6)}`;
      switch (random(5)) {
        case 0: {
          const type = (['ClusterIP', 'NodePort', 'LoadBalancer'] as const)[random(3)];
          const service = makeService(
            'ns',
            name,
            {
              type,
              internalTrafficPolicy: random(2) === 0 ? 'Local' : 'Cluster',
              externalTrafficPolicy: random(2) === 0 ? 'Local' : 'Cluster',
              ports: [{ name: 'http', port: 80, nodePort: type === 'ClusterIP' ? undefined : 30000 + random(3) }],
            },
            { creationTimestamp: new Date(Date.UTC(2024, 0, 1 + random(3))) },
          );
          services.set(name, service);
          store.upsertService(service);
          break;
        }
        case 1:
          services.delete(name);
          store.deleteService('ns', name);
          break;
        case 2:
        case 3: {
          const sliceName = `${name}-${random(2)}`;
          const endpoints = Array.from({ length: random(4) }, () =>
            makeEndpoint(`10.244.0.${random(8)}`, {
              node: `node-${'ab'[random(2)]}`,
              ready: random(3) !== 0,
              terminating: random(3) === 0,
              hints: random(2) === 0 ? ['zone-a'] : undefined,
            }),
          );
          const slice = makeSlice('ns', sliceName, name, endpoints);
          slices.set(sliceName, slice);
          store.upsertEndpointSlice(slice);
          break;
        }
        default: {
          const sliceName = `${name}-${random(2)}`;
          slices.delete(sliceName);
          store.deleteEndpointSlice('ns', sliceName);
        }
      }
      if (random(3) === 0 || step === 399) {
        const incremental = store.snapshot();
        const oneShot = buildDesiredState({ services: services.values(), endpointSlices: slices.values(), node: makeNode('node-a', 'zone-a') });
        // Plain Maps compare regardless of iteration order.
        expect(new Map(incremental.state.servicePorts)).toEqual(new Map(oneShot.state.servicePorts));
        expect(incremental.skipped).toEqual(oneShot.skipped);
      }
    }
  });
});
