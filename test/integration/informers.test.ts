// The k8s sources against a real kube-apiserver: kube-proxy's selectors filter what the handlers
// see, and across apiserver restarts (with objects changing around them) the handlers' view
// converges to what a fresh list returns.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

import type { KubernetesObject, V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import type { ApiConnection } from '../../src/k8s/connection.js';
import {
  endpointSliceLabelSelector,
  nodeFieldSelector,
  serviceFieldSelector,
  serviceLabelSelector,
  startSources,
  type SourceName,
  type Sources,
} from '../../src/k8s/sources.js';
import { restartReasons, type WatchEvent } from '../../src/k8s/watcher.js';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  createEndpointSlice,
  createNamespace,
  createNode,
  createService,
  deleteEndpointSlice,
  deleteNamespace,
  deleteNode,
  deleteService,
  kubeClients,
  setEndpoints,
  uniqueName,
  type KubeClients,
} from '../harness/kube.js';

const logger = pino({ level: process.env['KUBE_PROXY_TS_TEST_LOG'] ?? 'silent' });

/** What the handlers were told: key -> resourceVersion, per resource. */
class View {
  readonly services = new Map<string, string>();
  readonly endpointSlices = new Map<string, string>();
  readonly node = new Map<string, string>();
  readonly syncs: Record<SourceName, number> = { services: 0, endpointSlices: 0, node: 0 };

  handler<T extends KubernetesObject>(name: SourceName) {
    return (event: WatchEvent<T>): void => {
      if (event.type === 'synced') {
        this.syncs[name] += 1;
        return;
      }
      const key = keyOf(event.object);
      if (event.type === 'delete') this[name].delete(key);
      else this[name].set(key, event.object.metadata?.resourceVersion ?? '');
    };
  }
}

function keyOf(object: KubernetesObject): string {
  const namespace = object.metadata?.namespace;
  return namespace ? `${namespace}/${object.metadata?.name ?? ''}` : (object.metadata?.name ?? '');
}

function asMap(items: readonly KubernetesObject[]): Map<string, string> {
  return new Map(items.map((item) => [keyOf(item), item.metadata?.resourceVersion ?? '']));
}

/** A fresh list with the sources' own selectors: what the view must converge to. */
async function truth(clients: KubeClients, nodeName: string): Promise<Record<SourceName, Map<string, string>>> {
  const [services, endpointSlices, node] = await Promise.all([
    clients.core.listServiceForAllNamespaces({ labelSelector: serviceLabelSelector, fieldSelector: serviceFieldSelector }),
    clients.discovery.listEndpointSliceForAllNamespaces({ labelSelector: endpointSliceLabelSelector }),
    clients.core.listNode({ fieldSelector: nodeFieldSelector(nodeName) }),
  ]);
  return { services: asMap(services.items), endpointSlices: asMap(endpointSlices.items), node: asMap(node.items) };
}

function sorted(map: ReadonlyMap<string, string>): [string, string][] {
  return [...map.entries()].sort(([a], [b]) => a.localeCompare(b));
}

async function eventually(check: () => Promise<void> | void, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function expectConverged(view: View, clients: KubeClients, nodeName: string): Promise<void> {
  await eventually(async () => {
    const expected = await truth(clients, nodeName);
    expect(sorted(view.services)).toEqual(sorted(expected.services));
    expect(sorted(view.endpointSlices)).toEqual(sorted(expected.endpointSlices));
    expect(sorted(view.node)).toEqual(sorted(expected.node));
  });
}

function abnormalRestarts(sources: Sources, name: SourceName): number {
  const { restarts } = sources.status()[name];
  return restartReasons.reduce((sum, reason) => sum + restarts[reason], 0);
}

function service(namespace: string, name: string, extra: Partial<Parameters<typeof createService>[1]> = {}) {
  return { namespace, name, ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...extra };
}

function slice(namespace: string, serviceName: string, name: string, address: string, labels?: Record<string, string>) {
  return {
    namespace,
    serviceName,
    name,
    ports: [{ name: 'http', port: 8080 }],
    endpoints: [{ address, nodeName: 'somewhere' }],
    ...(labels ? { labels } : {}),
  };
}

/**
 * A TCP pass-through between the sources and the apiserver, so a test can cut the network
 * ('refuse': connections reset) or make it silently swallow everything ('blackhole': connections
 * stay open, nothing flows — the half-open case only a watchdog notices) while the apiserver
 * itself keeps changing.
 */
class TcpProxy {
  private mode: 'forward' | 'refuse' | 'blackhole' = 'forward';
  private readonly pairs = new Set<{ client: Socket; upstream: Socket | undefined; held: boolean }>();
  private readonly server: Server;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  refuse(): void {
    this.mode = 'refuse';
    for (const pair of this.pairs) this.drop(pair);
  }

  blackhole(): void {
    this.mode = 'blackhole';
    for (const pair of this.pairs) {
      pair.held = true;
      if (pair.upstream) {
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.upstream.pause();
      }
      pair.client.pause();
    }
  }

  /** Back to normal; connections held by a blackhole are reset, as a recovering network would. */
  forward(): void {
    this.mode = 'forward';
    for (const pair of this.pairs) if (pair.held) this.drop(pair);
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) this.drop(pair);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.on('error', () => undefined);
    if (this.mode === 'refuse') {
      client.destroy();
      return;
    }
    const pair = { client, upstream: undefined as Socket | undefined, held: this.mode === 'blackhole' };
    this.pairs.add(pair);
    client.on('close', () => this.drop(pair));
    if (pair.held) {
      client.pause();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => this.drop(pair));
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private drop(pair: { client: Socket; upstream: Socket | undefined; held: boolean }): void {
    this.pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}

/** The same credentials, sent to the proxy in front of the apiserver. */
function throughProxy(connection: ApiConnection, port: number): ApiConnection {
  return { server: `https://127.0.0.1:${port}`, requestOptions: () => connection.requestOptions() };
}

function watchdogRestarts(sources: Sources): number {
  const status = sources.status();
  return Math.min(status.services.restarts.watchdog, status.endpointSlices.restarts.watchdog, status.node.restarts.watchdog);
}

describe('sources on the shared control plane', () => {
  let clients: KubeClients;
  let namespace: string;
  let nodeName: string;
  let otherNode: string;
  let sources: Sources | undefined;
  const view = new View();

  beforeAll(async () => {
    const loaded = loadKubeConfig({ kubeconfigPath: inject('kubeconfigPath'), env: {} });
    if (!loaded.ok) throw new Error(loaded.detail);
    clients = kubeClients(inject('kubeconfigPath'));
    namespace = await createNamespace(clients.core, uniqueName('informers'));
    nodeName = uniqueName('node');
    otherNode = uniqueName('node');
    await createNode(clients.core, { name: nodeName, internalIP: '192.0.2.10' });
    await createNode(clients.core, { name: otherNode, internalIP: '192.0.2.11' });
    sources = startSources({
      connection: loaded.connection,
      nodeName,
      logger,
      handlers: { service: view.handler<V1Service>('services'), endpointSlice: view.handler<V1EndpointSlice>('endpointSlices'), node: view.handler<V1Node>('node') },
    });
    await sources.synced;
  });

  afterAll(async () => {
    await sources?.stop();
    await deleteNamespace(clients, namespace);
    await deleteNode(clients.core, nodeName);
    await deleteNode(clients.core, otherNode);
  });

  it('lists what exists: this Node only, and the default kubernetes Service', async () => {
    expect([...view.node.keys()]).toEqual([nodeName]);
    expect(view.services.has('default/kubernetes')).toBe(true);
    await eventually(() => expect(sources?.status().services).toMatchObject({ synced: true, state: 'watching' }));
  });

  it('streams adds, updates and deletes, applying kube-proxy selectors', async () => {
    const web = await createService(clients.core, service(namespace, 'web'));
    await createService(clients.core, service(namespace, 'dns', { clusterIP: 'None' }));
    await createService(clients.core, service(namespace, 'elsewhere', { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }));
    await createEndpointSlice(clients.discovery, slice(namespace, 'web', 'web-1', '10.1.0.1'));
    await createEndpointSlice(clients.discovery, slice(namespace, 'dns', 'dns-1', '10.1.0.2', { 'service.kubernetes.io/headless': '' }));

    await eventually(() => {
      expect(view.services.get(`${namespace}/web`)).toBe(web.metadata?.resourceVersion);
      expect(view.endpointSlices.has(`${namespace}/web-1`)).toBe(true);
    });
    expect(view.services.has(`${namespace}/dns`)).toBe(false);
    expect(view.services.has(`${namespace}/elsewhere`)).toBe(false);
    expect(view.endpointSlices.has(`${namespace}/dns-1`)).toBe(false);
    expect(view.node.has(otherNode)).toBe(false);

    const updated = await setEndpoints(clients.discovery, namespace, 'web-1', [{ address: '10.1.0.9' }]);
    await eventually(() => expect(view.endpointSlices.get(`${namespace}/web-1`)).toBe(updated.metadata?.resourceVersion));
    await deleteService(clients.core, namespace, 'web');
    await eventually(() => expect(view.services.has(`${namespace}/web`)).toBe(false));

    await expectConverged(view, clients, nodeName);
    expect(sources?.status().services.handlerErrors).toBe(0);
  });
});

describe('sources across restarts and partitions (private control plane)', () => {
  let controlPlane: ControlPlane | undefined;
  let proxy: TcpProxy | undefined;
  let clients: KubeClients;
  let sources: Sources | undefined;
  const namespace = 'churn';
  const nodeName = 'node-a';
  const view = new View();

  beforeAll(async () => {
    controlPlane = await startControlPlane();
    const loaded = loadKubeConfig({ kubeconfigPath: controlPlane.kubeconfigPath, env: {} });
    if (!loaded.ok) throw new Error(loaded.detail);
    // The test's own writes and lists go straight to the apiserver; only the sources use the proxy.
    clients = kubeClients(controlPlane.kubeconfigPath);
    const target = new URL(controlPlane.server);
    proxy = new TcpProxy({ host: target.hostname, port: Number(target.port) });
    const proxyPort = await proxy.listen();
    await createNamespace(clients.core, namespace);
    await createNode(clients.core, { name: nodeName, internalIP: '192.0.2.20' });
    for (let i = 0; i < 5; i += 1) {
      await createService(clients.core, service(namespace, `svc-${i}`));
      await createEndpointSlice(clients.discovery, slice(namespace, `svc-${i}`, `svc-${i}-a`, `10.2.0.${i + 1}`));
    }
    sources = startSources({
      connection: throughProxy(loaded.connection, proxyPort),
      nodeName,
      logger,
      // Fast enough for a test: retries every <= 2 s; watches renew every 3-4 s (exercising the
      // resume-from-resourceVersion path against a real server), so 8 s of silence means a hang.
      backoff: { initialMs: 200, maxMs: 2_000 },
      watchTimeoutSeconds: 4,
      watchdogMs: 8_000,
      handlers: { service: view.handler<V1Service>('services'), endpointSlice: view.handler<V1EndpointSlice>('endpointSlices'), node: view.handler<V1Node>('node') },
    });
    await sources.synced;
  });

  afterAll(async () => {
    await sources?.stop();
    await proxy?.close();
    await controlPlane?.stop();
  });

  async function relabelNode(value: string): Promise<void> {
    const node = await clients.core.readNode({ name: nodeName });
    node.metadata = { ...node.metadata, labels: { ...node.metadata?.labels, change: value } };
    await clients.core.replaceNode({ name: nodeName, body: node });
  }

  it('reconnects after each apiserver restart and converges to a fresh list', async () => {
    if (controlPlane === undefined || sources === undefined) throw new Error('not started');
    await expectConverged(view, clients, nodeName);

    for (let round = 0; round < 2; round += 1) {
      const restartsBefore = abnormalRestarts(sources, 'services');
      await controlPlane.stopApiserver();
      await controlPlane.startApiserver();
      // Change things as soon as it is back, racing the watchers' reconnect.
      await deleteService(clients.core, namespace, `svc-${round}`);
      await deleteEndpointSlice(clients.discovery, namespace, `svc-${round}-a`);
      await setEndpoints(clients.discovery, namespace, 'svc-4-a', [{ address: `10.2.1.${round + 1}` }]);
      await createService(clients.core, service(namespace, `new-${round}`));
      await createEndpointSlice(clients.discovery, slice(namespace, `new-${round}`, `new-${round}-a`, `10.2.2.${round + 1}`));
      await relabelNode(`restart-${round}`);

      await expectConverged(view, clients, nodeName);
      expect(abnormalRestarts(sources, 'services')).toBeGreaterThan(restartsBefore);
    }

    await controlPlane.restartApiserver();
    await createService(clients.core, service(namespace, 'after-restart'));
    await expectConverged(view, clients, nodeName);

    const status = sources.status();
    for (const name of ['services', 'endpointSlices', 'node'] as const) {
      expect(abnormalRestarts(sources, name), name).toBeGreaterThan(0);
      expect(status[name]).toMatchObject({ synced: true, handlerErrors: 0 });
    }
    expect(view.services.has(`${namespace}/svc-0`)).toBe(false);
    expect(view.services.has(`${namespace}/new-1`)).toBe(true);
  });

  it('catches up by relisting what changed while the network was cut', async () => {
    if (proxy === undefined || sources === undefined) throw new Error('not started');
    const syncsBefore = { ...view.syncs };
    proxy.refuse();
    // Nothing of this can reach the sources while the network is down.
    await deleteService(clients.core, namespace, 'svc-2');
    await deleteEndpointSlice(clients.discovery, namespace, 'svc-2-a');
    await setEndpoints(clients.discovery, namespace, 'svc-3-a', [{ address: '10.2.3.3' }]);
    await createService(clients.core, service(namespace, 'while-cut'));
    await relabelNode('while-cut');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(view.services.has(`${namespace}/svc-2`)).toBe(true);
    expect(view.services.has(`${namespace}/while-cut`)).toBe(false);

    proxy.forward();
    await expectConverged(view, clients, nodeName);
    for (const name of ['services', 'endpointSlices', 'node'] as const) {
      expect(view.syncs[name], name).toBeGreaterThan(syncsBefore[name]);
    }
    expect(view.services.has(`${namespace}/svc-2`)).toBe(false);
  });

  it('the watchdog restarts watches that hang silently, then converges', async () => {
    if (proxy === undefined || sources === undefined) throw new Error('not started');
    const before = watchdogRestarts(sources);
    proxy.blackhole();
    await deleteService(clients.core, namespace, 'svc-3');
    await createEndpointSlice(clients.discovery, slice(namespace, 'while-cut', 'while-cut-a', '10.2.4.4'));
    await eventually(() => expect(watchdogRestarts(sources as Sources)).toBeGreaterThan(before), 30_000);
    expect(view.services.has(`${namespace}/svc-3`)).toBe(true);

    proxy.forward();
    await expectConverged(view, clients, nodeName);
    expect(view.services.has(`${namespace}/svc-3`)).toBe(false);
    expect(view.endpointSlices.has(`${namespace}/while-cut-a`)).toBe(true);
    const status = sources.status();
    expect(status.services.renewals + status.endpointSlices.renewals + status.node.renewals).toBeGreaterThan(0);
    logger.info({ status }, 'sources status at the end');
  });
});
