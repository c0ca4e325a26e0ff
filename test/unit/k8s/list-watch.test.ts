import type { V1Service } from '@kubernetes/client-node';
import type { ApiConnection } from '../../../src/k8s/connection.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { apiserverSource, decodeWatchEvent, listQuery, type ListPageRequest, type RawWatchEvent } from '../../../src/k8s/list-watch.js';
import { HttpApiserver, waitFor } from './http-apiserver.js';

const service = (name: string, resourceVersion: string) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', resourceVersion, creationTimestamp: '2024-05-01T10:00:00Z' },
  spec: { clusterIP: '10.0.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' }] },
});

describe('decodeWatchEvent', () => {
  it('hands on objects as the apiserver sent them, as lists do', () => {
    const sent = service('a', '5');
    const event = decodeWatchEvent<V1Service>('ADDED', sent);
    expect(event).toEqual({ type: 'ADDED', object: sent });
    expect(decodeWatchEvent('MODIFIED', 'not an object')).toMatchObject({ type: 'ERROR', code: undefined });
  });

  it('reads bookmarks and in-stream errors; ignores unknown phases', () => {
    expect(decodeWatchEvent('BOOKMARK', { kind: 'Service', metadata: { resourceVersion: '77' } })).toEqual({
      type: 'BOOKMARK',
      resourceVersion: '77',
    });
    expect(decodeWatchEvent('ERROR', { kind: 'Status', code: 410, message: 'too old' })).toEqual({
      type: 'ERROR',
      code: 410,
      message: 'too old',
    });
    expect(decodeWatchEvent('ERROR', 'garbage')).toMatchObject({ type: 'ERROR', code: undefined });
    expect(decodeWatchEvent('SOMETHING', {})).toBeUndefined();
  });
});

const selectors = { labelSelector: '!service.kubernetes.io/service-proxy-name', fieldSelector: 'spec.clusterIP!=None' };
/** Never asked: these tests answer list pages themselves. */
const unused: ApiConnection = { server: 'http://127.0.0.1:9', requestOptions: async () => ({}) };

describe('apiserverSource list', () => {
  it('lists first from the watch cache (resourceVersion=0), then relists consistently, in pages', async () => {
    const requests: ListPageRequest[] = [];
    const pages: unknown[] = [
      { items: [{ metadata: { name: 'a' } }], metadata: { continue: 'first-2', resourceVersion: '9' } },
      { items: [{ metadata: { name: 'b' } }], metadata: { resourceVersion: '9' } },
      { items: [{ metadata: { name: 'a' } }], metadata: { continue: 'page-2', resourceVersion: '10' } },
      { items: [{ metadata: { name: 'c' } }], metadata: { resourceVersion: '10' } },
    ];
    const source = apiserverSource<V1Service>({
      connection: unused,
      path: '/api/v1/services',
      ...selectors,
      pageSize: 1,
      listPage: async (request) => {
        requests.push(request);
        const page = pages.shift();
        if (page === undefined) throw new Error('too many pages');
        return page;
      },
    });
    const first = await source.list();
    expect(first.items.map((item) => item.metadata?.name)).toEqual(['a', 'b']);
    expect(first.resourceVersion).toBe('9');
    const relist = await source.list();
    expect(relist.items.map((item) => item.metadata?.name)).toEqual(['a', 'c']);
    expect(relist.resourceVersion).toBe('10');
    expect(requests).toEqual([
      { ...selectors, limit: 1, resourceVersion: '0' },
      { ...selectors, limit: 1, continue: 'first-2' },
      { ...selectors, limit: 1 },
      { ...selectors, limit: 1, continue: 'page-2' },
    ]);
  });

  it('refuses a list without a resourceVersion or without items; accepts "items": null', async () => {
    const answer = (body: unknown) =>
      apiserverSource<V1Service>({ connection: unused, path: '/api/v1/services', listPage: async () => body }).list();
    await expect(answer({ items: [] })).rejects.toThrow(/no resourceVersion/);
    await expect(answer({ kind: 'Status', metadata: { resourceVersion: '3' } })).rejects.toThrow(/no items/);
    await expect(answer({ items: null, metadata: { resourceVersion: '3' } })).resolves.toEqual({ items: [], resourceVersion: '3' });
  });

  it('builds the query from the request', () => {
    expect(listQuery('/api/v1/services', {})).toBe('/api/v1/services');
    expect(listQuery('/api/v1/services', { labelSelector: 'a!=b', limit: 500, continue: 'x=' })).toBe('/api/v1/services?labelSelector=a%21%3Db&limit=500&continue=x%3D');
  });
});

describe('apiserverSource over HTTP', () => {
  let apiserver: HttpApiserver;
  beforeEach(() => {
    apiserver = new HttpApiserver();
  });
  afterEach(async () => {
    await apiserver.stop();
  });

  describe('list', () => {
    it('GETs the collection with the selectors and parses the JSON body', async () => {
      const connection = await apiserver.start();
      apiserver.lists.set('/api/v1/services', { items: [service('a', '5')], resourceVersion: '5' });
      const source = apiserverSource<V1Service>({ connection, path: '/api/v1/services', ...selectors });
      expect(await source.list()).toEqual({ items: [service('a', '5')], resourceVersion: '5' });
      expect(apiserver.requests).toEqual([{ path: '/api/v1/services', query: { ...selectors, limit: '500', resourceVersion: '0' } }]);
    });

    it('fails with the status code and the apiserver message', async () => {
      const connection = await apiserver.start();
      const source = apiserverSource<V1Service>({ connection, path: '/api/v1/nothing' });
      await expect(source.list()).rejects.toMatchObject({ statusCode: 404, message: expect.stringMatching(/GET \/api\/v1\/nothing: HTTP 404/) });
    });
  });

  describe('watch', () => {
    async function open(onEnd: (error: unknown) => void = () => undefined) {
      const connection = await apiserver.start();
      const events: RawWatchEvent<V1Service>[] = [];
      const source = apiserverSource<V1Service>({
        connection,
        path: '/api/v1/services',
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
      expect(events[0]).toEqual({ type: 'ADDED', object: service('a', '43') });
      expect(events.slice(1)).toEqual([
        { type: 'BOOKMARK', resourceVersion: '44' },
        { type: 'ERROR', code: 410, message: 'too old resource version' },
      ]);
      stream?.end();
      await waitFor(() => ends.length === 1);
      expect(ends).toEqual([undefined]);
    });

    it('joins an event split across writes, and ends on a line that is not JSON, once', async () => {
      const ends: unknown[] = [];
      const { events } = await open((error) => ends.push(error));
      await waitFor(() => apiserver.watches.length === 1);
      const stream = apiserver.watches[0];
      const line = JSON.stringify({ type: 'MODIFIED', object: service('b', '50') });
      stream?.write(line.slice(0, 17));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(events).toEqual([]);
      stream?.write(`${line.slice(17)}\n{"type": "ADDED", "obj`);
      await waitFor(() => events.length === 1);
      expect(events[0]).toEqual({ type: 'MODIFIED', object: service('b', '50') });
      stream?.write('ect": nonsense}\n');
      await waitFor(() => ends.length === 1);
      expect(String(ends[0])).toContain('not a JSON event');
      // The agent closed the stream; nothing more is reported.
      await waitFor(() => stream?.closed === true);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(ends).toHaveLength(1);
      expect(events).toHaveLength(1);
    });

    it('reports a dropped connection as an error', async () => {
      const ends: unknown[] = [];
      await open((error) => ends.push(error));
      await waitFor(() => apiserver.watches.length === 1);
      apiserver.watches[0]?.destroy();
      await waitFor(() => ends.length === 1);
      expect(ends[0]).toBeInstanceOf(Error);
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
});
