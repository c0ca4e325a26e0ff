import { KubeConfig, V1Service, type KubernetesListObject } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { clientNodeSource, decodeWatchEvent, type ListPageRequest, type RawWatchEvent } from '../../../src/k8s/list-watch.js';
import { HttpApiserver, waitFor } from './http-apiserver.js';

const service = (name: string, resourceVersion: string) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', resourceVersion, creationTimestamp: '2024-05-01T10:00:00Z' },
  spec: { clusterIP: '10.0.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' }] },
});

describe('decodeWatchEvent', () => {
  it('decodes objects into client-node models, as list calls return them', () => {
    const event = decodeWatchEvent<V1Service>('ADDED', service('a', '5'), 'V1Service');
    expect(event?.type).toBe('ADDED');
    const object = event?.type === 'ADDED' ? event.object : undefined;
    expect(object).toBeInstanceOf(V1Service);
    expect(object?.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(object?.spec?.ports?.[0]?.targetPort).toBe('http');
  });

  it('reads bookmarks and in-stream errors; ignores unknown phases', () => {
    expect(decodeWatchEvent('BOOKMARK', { kind: 'Service', metadata: { resourceVersion: '77' } }, 'V1Service')).toEqual({
      type: 'BOOKMARK',
      resourceVersion: '77',
    });
    expect(decodeWatchEvent('ERROR', { kind: 'Status', code: 410, message: 'too old' }, 'V1Service')).toEqual({
      type: 'ERROR',
      code: 410,
      message: 'too old',
    });
    expect(decodeWatchEvent('ERROR', 'garbage', 'V1Service')).toMatchObject({ type: 'ERROR', code: undefined });
    expect(decodeWatchEvent('SOMETHING', {}, 'V1Service')).toBeUndefined();
  });
});

describe('clientNodeSource list', () => {
  it('sends the selectors with every page and follows continue tokens', async () => {
    const requests: ListPageRequest[] = [];
    const pages: KubernetesListObject<V1Service>[] = [
      { items: [{ metadata: { name: 'a' } }], metadata: { _continue: 'page-2', resourceVersion: '10' } },
      { items: [{ metadata: { name: 'b' } }], metadata: { resourceVersion: '10' } },
    ];
    const source = clientNodeSource<V1Service>({
      kubeConfig: new KubeConfig(),
      path: '/api/v1/services',
      typeName: 'V1Service',
      labelSelector: '!service.kubernetes.io/service-proxy-name',
      fieldSelector: 'spec.clusterIP!=None',
      pageSize: 1,
      listPage: async (request) => {
        requests.push(request);
        const page = pages.shift();
        if (page === undefined) throw new Error('too many pages');
        return page;
      },
    });
    const result = await source.list();
    expect(result.items.map((item) => item.metadata?.name)).toEqual(['a', 'b']);
    expect(result.resourceVersion).toBe('10');
    const selectors = { labelSelector: '!service.kubernetes.io/service-proxy-name', fieldSelector: 'spec.clusterIP!=None', limit: 1 };
    expect(requests).toEqual([selectors, { ...selectors, _continue: 'page-2' }]);
  });

  it('refuses a list without a resourceVersion', async () => {
    const source = clientNodeSource<V1Service>({
      kubeConfig: new KubeConfig(),
      path: '/api/v1/services',
      typeName: 'V1Service',
      listPage: async () => ({ items: [] }),
    });
    await expect(source.list()).rejects.toThrow(/no resourceVersion/);
  });
});

describe('clientNodeSource watch over HTTP', () => {
  let apiserver: HttpApiserver;
  beforeEach(() => {
    apiserver = new HttpApiserver();
  });
  afterEach(async () => {
    await apiserver.stop();
  });

  async function open(onEnd: (error: unknown) => void = () => undefined) {
    const kubeConfig = await apiserver.start();
    const events: RawWatchEvent<V1Service>[] = [];
    const source = clientNodeSource<V1Service>({
      kubeConfig,
      path: '/api/v1/services',
      typeName: 'V1Service',
      labelSelector: '!service.kubernetes.io/service-proxy-name',
      fieldSelector: 'spec.clusterIP!=None',
      listPage: async () => ({ items: [], metadata: { resourceVersion: '1' } }),
    });
    const handle = await source.watch({ resourceVersion: '42', timeoutSeconds: 200 }, (event) => events.push(event), onEnd);
    return { events, handle };
  }

  it('asks for bookmarks, the server timeout and the same selectors as the list', async () => {
    await open();
    await waitFor(() => apiserver.watches.length === 1);
    expect(apiserver.watches[0]?.request).toEqual({
      path: '/api/v1/services',
      query: {
        watch: 'true',
        resourceVersion: '42',
        allowWatchBookmarks: 'true',
        timeoutSeconds: '200',
        labelSelector: '!service.kubernetes.io/service-proxy-name',
        fieldSelector: 'spec.clusterIP!=None',
      },
    });
  });

  it('streams decoded events and reports a clean end as undefined', async () => {
    const ends: unknown[] = [];
    const { events } = await open((error) => ends.push(error));
    await waitFor(() => apiserver.watches.length === 1);
    const stream = apiserver.watches[0];
    stream?.send('ADDED', service('a', '43'));
    stream?.send('BOOKMARK', { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: '44' } });
    stream?.send('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' });
    await waitFor(() => events.length === 3);
    expect(events[0]?.type === 'ADDED' && events[0].object).toBeInstanceOf(V1Service);
    expect(events.slice(1)).toEqual([
      { type: 'BOOKMARK', resourceVersion: '44' },
      { type: 'ERROR', code: 410, message: 'too old resource version' },
    ]);
    stream?.end();
    await waitFor(() => ends.length === 1);
    expect(ends).toEqual([undefined]);
  });

  it('reports an HTTP error status with its code', async () => {
    apiserver.failNextWatch = 410;
    const ends: unknown[] = [];
    await open((error) => ends.push(error));
    await waitFor(() => ends.length === 1);
    expect(ends[0]).toMatchObject({ statusCode: 410 });
  });

  it('abort closes the stream on the server side', async () => {
    const { handle } = await open();
    await waitFor(() => apiserver.watches.length === 1);
    handle.abort();
    await waitFor(() => apiserver.watches[0]?.closed === true);
  });
});
