import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';

import { startSources, type Sources } from '../../../src/k8s/sources.js';
import type { WatchEvent } from '../../../src/k8s/watcher.js';
import { HttpApiserver, waitFor } from './http-apiserver.js';

const servicesPath = '/api/v1/services';
const slicesPath = '/apis/discovery.k8s.io/v1/endpointslices';
const nodesPath = '/api/v1/nodes';

const meta = (name: string, resourceVersion: string, namespace?: string) => ({
  name,
  resourceVersion,
  ...(namespace !== undefined ? { namespace } : {}),
});

let apiserver: HttpApiserver | undefined;
let sources: Sources | undefined;
afterEach(async () => {
  await sources?.stop();
  await apiserver?.stop();
  sources = undefined;
  apiserver = undefined;
});

function describeEvent(event: WatchEvent<{ metadata?: { name?: string } }>): string {
  return event.type === 'synced' ? 'synced' : `${event.type} ${event.object.metadata?.name ?? ''}`;
}

async function start() {
  apiserver = new HttpApiserver();
  const connection = await apiserver.start();
  apiserver.lists.set(servicesPath, { resourceVersion: '10', items: [{ metadata: meta('web', '5', 'default'), spec: { clusterIP: '10.0.0.1' } }] });
  apiserver.lists.set(nodesPath, { resourceVersion: '10', items: [{ metadata: meta('node-1', '3') }] });
  const seen = { services: [] as string[], endpointSlices: [] as string[], node: [] as string[] };
  const objects: unknown[] = [];
  sources = startSources({
    connection,
    nodeName: 'node-1',
    logger: pino({ level: 'silent' }),
    backoff: { initialMs: 10, maxMs: 50 },
    handlers: {
      service: (event) => {
        seen.services.push(describeEvent(event));
        if (event.type !== 'synced') objects.push(event.object);
      },
      endpointSlice: (event) => {
        seen.endpointSlices.push(describeEvent(event));
        if (event.type !== 'synced') objects.push(event.object);
      },
      node: (event) => {
        seen.node.push(describeEvent(event));
        if (event.type !== 'synced') objects.push(event.object);
      },
    },
  });
  return { apiserver, sources, seen, objects };
}

describe('startSources', () => {
  it('lists and watches each resource with kube-proxy selectors on both list and watch', async () => {
    const { apiserver, sources } = await start();
    apiserver.lists.set(slicesPath, { resourceVersion: '10', items: [] });
    await sources.synced;
    await waitFor(() => apiserver.watches.length === 3);
    const queries = (path: string, watch: boolean) =>
      apiserver.requests.filter((request) => request.path === path && (request.query['watch'] === 'true') === watch);

    for (const watch of [false, true]) {
      expect(queries(servicesPath, watch)[0]?.query).toMatchObject({
        labelSelector: '!service.kubernetes.io/service-proxy-name',
        fieldSelector: 'spec.clusterIP!=None',
      });
      expect(queries(slicesPath, watch)[0]?.query).toMatchObject({ labelSelector: '!service.kubernetes.io/headless' });
      expect(queries(slicesPath, watch)[0]?.query['fieldSelector']).toBeUndefined();
      expect(queries(nodesPath, watch)[0]?.query).toMatchObject({ fieldSelector: 'metadata.name=node-1' });
      expect(queries(nodesPath, watch)[0]?.query['labelSelector']).toBeUndefined();
    }
    // The first list comes from the apiserver's watch cache, as client-go's.
    expect(queries(servicesPath, false)[0]?.query).toMatchObject({ resourceVersion: '0', limit: '500' });
    expect(queries(servicesPath, true)[0]?.query).toMatchObject({ resourceVersion: '10', allowWatchBookmarks: 'true' });
  });

  it('hands the objects to each handler as sent and syncs only when all three have listed', async () => {
    const { apiserver, sources, seen, objects } = await start();
    let synced = false;
    void sources.synced.then(() => {
      synced = true;
    });
    // The EndpointSlice list fails (404) until it exists: the watcher retries with backoff.
    await waitFor(() => sources.status().endpointSlices.restarts['list-failed'] >= 1);
    expect(synced).toBe(false);
    expect(sources.status().services.synced).toBe(true);

    apiserver.lists.set(slicesPath, {
      resourceVersion: '11',
      items: [{ metadata: meta('web-abc', '6', 'default'), addressType: 'IPv4', endpoints: [] }],
    });
    await sources.synced;
    expect(seen).toEqual({ services: ['add web', 'synced'], endpointSlices: ['add web-abc', 'synced'], node: ['add node-1', 'synced'] });

    await waitFor(() => apiserver.openWatches(servicesPath).length === 1);
    apiserver.openWatches(servicesPath)[0]?.send('ADDED', { metadata: meta('api', '12', 'default'), spec: { clusterIP: '10.0.0.2' } });
    await waitFor(() => seen.services.length === 3);
    expect(seen.services[2]).toBe('add api');

    expect(objects).toContainEqual({ metadata: meta('web-abc', '6', 'default'), addressType: 'IPv4', endpoints: [] });
    expect(objects[objects.length - 1]).toEqual({ metadata: meta('api', '12', 'default'), spec: { clusterIP: '10.0.0.2' } });
  });

  it('reconnects after the connection drops and converges by relisting', async () => {
    const { apiserver, sources, seen } = await start();
    apiserver.lists.set(slicesPath, { resourceVersion: '10', items: [] });
    await sources.synced;
    await waitFor(() => apiserver.openWatches(servicesPath).length === 1);

    // While the stream is gone, "web" is deleted and "api" created.
    apiserver.lists.set(servicesPath, { resourceVersion: '20', items: [{ metadata: meta('api', '19', 'default') }] });
    apiserver.openWatches(servicesPath)[0]?.destroy();

    await waitFor(() => seen.services.length === 5);
    expect(seen.services).toEqual(['add web', 'synced', 'delete web', 'add api', 'synced']);
    const status = sources.status();
    expect(status.services.restarts['watch-failed']).toBe(1);
    expect(status.node.restarts['watch-failed']).toBe(0);
    await waitFor(() => apiserver.openWatches(servicesPath).length === 1);
    expect(apiserver.openWatches(servicesPath)[0]?.request.query['resourceVersion']).toBe('20');
    // The relist is a consistent read, in pages.
    const lists = apiserver.requests.filter((request) => request.path === servicesPath && request.query['watch'] !== 'true');
    expect(lists.map((request) => request.query['resourceVersion'] ?? 'consistent')).toEqual(['0', 'consistent']);
  });

  it('stop closes every watch', async () => {
    const { apiserver, sources } = await start();
    apiserver.lists.set(slicesPath, { resourceVersion: '10', items: [] });
    await sources.synced;
    await waitFor(() => apiserver.watches.length === 3);
    await sources.stop();
    await waitFor(() => apiserver.watches.every((watch) => watch.closed));
    expect(Object.values(sources.status()).map((status) => status.state)).toEqual(['stopped', 'stopped', 'stopped']);
  });

  it('refuses an empty node name', () => {
    expect(() =>
      startSources({
        connection: undefined as never,
        nodeName: '',
        logger: pino({ level: 'silent' }),
        handlers: { service: () => undefined, endpointSlice: () => undefined, node: () => undefined },
      }),
    ).toThrow(/nodeName/);
  });
});
