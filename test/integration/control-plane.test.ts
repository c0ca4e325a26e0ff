// Proves the test harness: the shared control plane answers and stores the objects kube-proxy
// consumes, and a private control plane keeps its data across an apiserver restart.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import {
  apiGet,
  createEndpointSlice,
  createEndpointSlices,
  createNamespace,
  createNode,
  createService,
  createServices,
  deleteNamespace,
  deleteNode,
  kubeClients,
  lastChangeTriggerTimeAnnotation,
  managedByLabel,
  serviceNameLabel,
  uniqueName,
  type KubeClients,
} from '../harness/kube.js';
import { cidrContains, familyOf, parseCidr } from '../../src/ip.js';

/**
 * Whether `address` lies in the range of its own family among `serviceRanges` (one CIDR or a
 * dual-stack pair such as `10.96.0.0/16,fd00:10:96::/112`).
 */
function inServiceRange(address: string, serviceRanges: string): boolean {
  const family = familyOf(address);
  const range = serviceRanges
    .split(',')
    .map((text) => parseCidr(text))
    .find((cidr) => cidr?.family === family);
  return range !== undefined && cidrContains(range, address);
}

describe('shared control plane', () => {
  let clients: KubeClients;
  let namespace: string;

  beforeAll(async () => {
    clients = kubeClients(inject('kubeconfigPath'));
    namespace = await createNamespace(clients.core, uniqueName('harness'));
  });

  afterAll(async () => {
    await deleteNamespace(clients, namespace);
  });

  it('answers /readyz with every check passing', async () => {
    const readyz = await apiGet(clients.kubeConfig, '/readyz?verbose');
    expect(readyz.status).toBe(200);
    expect(readyz.body).not.toContain('[-]');
    expect(readyz.body).toContain('readyz check passed');
  });

  it('stores a Service with a cluster IP allocated from the service range', async () => {
    const created = await createService(clients.core, {
      namespace,
      name: 'web',
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      spec: { internalTrafficPolicy: 'Local' },
    });
    const clusterIP = created.spec?.clusterIP ?? '';
    expect(familyOf(clusterIP)).toBe('IPv4');
    expect(inServiceRange(clusterIP, inject('serviceClusterIPRange'))).toBe(true);
    expect(inServiceRange(clusterIP, '10.96.0.0/16')).toBe(true);

    const listed = await clients.core.listNamespacedService({ namespace });
    const web = listed.items.find((service) => service.metadata?.name === 'web');
    expect(web?.spec?.clusterIP).toBe(clusterIP);
    expect(web?.spec?.ports?.[0]).toMatchObject({ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' });
    expect(web?.spec?.internalTrafficPolicy).toBe('Local');
  });

  it('allocates a RequireDualStack Service one cluster IP per family, each from its own range', async () => {
    const created = await createService(clients.core, {
      namespace,
      name: 'web-dual',
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] },
    });
    const clusterIPs = created.spec?.clusterIPs ?? [];
    expect(clusterIPs.map((ip) => familyOf(ip))).toEqual(['IPv4', 'IPv6']);
    for (const ip of clusterIPs) expect(inServiceRange(ip, inject('serviceClusterIPRange'))).toBe(true);
    expect(inServiceRange(clusterIPs[1] ?? '', 'fd00:10:96::/112')).toBe(true);
  });

  it('stores an EndpointSlice with the labels, annotation and conditions kube-proxy reads', async () => {
    const triggerTime = new Date('2026-01-02T03:04:05.678Z');
    const created = await createEndpointSlice(clients.discovery, {
      namespace,
      serviceName: 'web',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [
        { address: '10.244.1.10', nodeName: 'node-a', zone: 'zone-a', forZones: ['zone-a'] },
        { address: '10.244.2.10', nodeName: 'node-b', ready: false, serving: true, terminating: true },
      ],
      triggerTime,
    });
    expect(created.metadata?.name).toMatch(/^web-/);

    const listed = await clients.discovery.listNamespacedEndpointSlice({
      namespace,
      labelSelector: `${serviceNameLabel}=web`,
    });
    expect(listed.items).toHaveLength(1);
    const slice = listed.items[0];
    expect(slice?.metadata?.labels?.[managedByLabel]).toBe('endpointslice-controller.k8s.io');
    expect(new Date(slice?.metadata?.annotations?.[lastChangeTriggerTimeAnnotation] ?? '').getTime()).toBe(triggerTime.getTime());
    expect(slice?.ports).toEqual([{ name: 'http', port: 8080, protocol: 'TCP' }]);
    expect(slice?.endpoints).toEqual([
      {
        addresses: ['10.244.1.10'],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-a',
        zone: 'zone-a',
        hints: { forZones: [{ name: 'zone-a' }] },
      },
      {
        addresses: ['10.244.2.10'],
        conditions: { ready: false, serving: true, terminating: true },
        nodeName: 'node-b',
      },
    ]);
  });

  it('stores a Node with its InternalIP although no kubelet runs', async () => {
    const name = uniqueName('node');
    try {
      await createNode(clients.core, { name, internalIP: '192.168.50.10', zone: 'zone-a', podCIDRs: ['10.244.7.0/24'] });
      const node = await clients.core.readNode({ name });
      expect(node.status?.addresses).toContainEqual({ type: 'InternalIP', address: '192.168.50.10' });
      expect(node.metadata?.labels?.['topology.kubernetes.io/zone']).toBe('zone-a');
      expect(node.spec?.podCIDR).toBe('10.244.7.0/24');
    } finally {
      await deleteNode(clients.core, name);
    }
  });

  it('creates many objects with bounded concurrency', async () => {
    const count = 40;
    const names = Array.from({ length: count }, (_, i) => `bulk-${i}`);
    const services = await createServices(
      clients.core,
      names.map((name) => ({ namespace, name, ports: [{ port: 80 }] })),
      8,
    );
    expect(services.map((service) => service.metadata?.name)).toEqual(names);
    expect(new Set(services.map((service) => service.spec?.clusterIP)).size).toBe(count);
    await createEndpointSlices(
      clients.discovery,
      names.map((name, i) => ({
        namespace,
        serviceName: name,
        ports: [{ port: 8080 }],
        endpoints: [{ address: `10.244.3.${i + 1}` }],
      })),
      8,
    );
    const slices = await clients.discovery.listNamespacedEndpointSlice({ namespace });
    expect(slices.items.filter((slice) => slice.metadata?.name?.startsWith('bulk-'))).toHaveLength(count);
  });
});

describe('private control plane', () => {
  let controlPlane: ControlPlane | undefined;

  afterAll(async () => {
    await controlPlane?.stop();
  });

  it('keeps its objects across restartApiserver()', async () => {
    controlPlane = await startControlPlane();
    const { totalMs, certsMs, etcdMs, apiserverMs } = controlPlane.startup;
    console.info(`cold control-plane start: ${totalMs} ms (certs ${certsMs}, etcd ${etcdMs}, apiserver ${apiserverMs})`);

    const clients = kubeClients(controlPlane.kubeconfigPath);
    const created = await createService(clients.core, { namespace: 'default', name: 'survivor', ports: [{ port: 443 }] });

    const restartStartedAt = performance.now();
    await controlPlane.restartApiserver();
    console.info(`apiserver restart: ${Math.round(performance.now() - restartStartedAt)} ms`);

    expect((await controlPlane.get('/readyz')).status).toBe(200);
    const read = await clients.core.readNamespacedService({ namespace: 'default', name: 'survivor' });
    expect(read.metadata?.uid).toBe(created.metadata?.uid);
    expect(read.spec?.clusterIP).toBe(created.spec?.clusterIP);
  });

  it('reports a stopped apiserver as unreachable and serves again after startApiserver()', async () => {
    if (!controlPlane) throw new Error('previous test did not start the control plane');
    await controlPlane.stopApiserver();
    await expect(controlPlane.get('/readyz')).rejects.toThrow(/ECONNREFUSED/);
    await controlPlane.startApiserver();
    expect((await controlPlane.get('/readyz')).status).toBe(200);
  });
});
