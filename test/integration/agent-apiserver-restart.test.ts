// The agent across a kube-apiserver restart (its own control plane, not the shared one): objects
// change just before the apiserver stops and right after it is back, the agent's watches break
// and restart, and its kernel state converges to exactly what a fresh list of the apiserver says.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.js';
import { kernelSkipReason } from '../harness/netns.js';
import {
  chainsWithPrefix,
  endpointChainName,
  serviceChainNames,
  startAgentInProcess,
  type InProcessAgent,
} from '../harness/agent-in-process.js';
import {
  createEndpointSlice,
  createNamespace,
  createService,
  deleteEndpointSlice,
  deleteNamespace,
  deleteService,
  kubeClients,
  setEndpoints,
  type KubeClients,
} from '../harness/kube.js';
import type { Protocol } from '../../src/model/types.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-apiserver-restart.test.ts: ${skipReason}`);

interface Expected {
  readonly services: Set<string>;
  readonly endpoints: Set<string>;
}

/**
 * The KUBE-SVC- and KUBE-SEP- chains a node must hold for what the apiserver has now: one
 * KUBE-SVC- per Service port with a ready endpoint, one KUBE-SEP- per such endpoint.
 */
async function expectedFromApiserver(clients: KubeClients): Promise<Expected> {
  const [serviceList, sliceList] = await Promise.all([
    clients.core.listServiceForAllNamespaces(),
    clients.discovery.listEndpointSliceForAllNamespaces(),
  ]);
  const servicePorts = new Map<string, V1Service>();
  for (const service of serviceList.items) {
    const clusterIP = service.spec?.clusterIP;
    if (clusterIP === undefined || clusterIP === 'None' || clusterIP === '') continue;
    for (const port of service.spec?.ports ?? []) {
      servicePorts.set(`${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}:${port.name ?? ''}/${port.protocol ?? 'TCP'}`, service);
    }
  }
  const services = new Set<string>();
  const endpoints = new Set<string>();
  for (const slice of sliceList.items as V1EndpointSlice[]) {
    const namespace = slice.metadata?.namespace ?? '';
    const serviceName = slice.metadata?.labels?.['kubernetes.io/service-name'];
    if (serviceName === undefined || slice.addressType !== 'IPv4') continue;
    for (const port of slice.ports ?? []) {
      const portName = port.name ?? '';
      const protocol = (port.protocol ?? 'TCP') as Protocol;
      if (!servicePorts.has(`${namespace}/${serviceName}:${portName}/${protocol}`)) continue;
      for (const endpoint of slice.endpoints) {
        if (endpoint.conditions?.ready === false) continue;
        const address = endpoint.addresses[0];
        if (address === undefined || port.port === undefined) continue;
        services.add(serviceChainNames(namespace, serviceName, portName, protocol).cluster);
        endpoints.add(endpointChainName(namespace, serviceName, portName, address, port.port, protocol));
      }
    }
  }
  return { services, endpoints };
}

describe.skipIf(skipReason !== undefined)('agent across an apiserver restart', () => {
  let controlPlane: ControlPlane;
  let clients: KubeClients;
  let node: InProcessAgent;
  let namespace: string | undefined;

  beforeAll(async () => {
    controlPlane = await startControlPlane();
    clients = kubeClients(controlPlane.kubeconfigPath);
    node = await startAgentInProcess({ kubeconfigPath: controlPlane.kubeconfigPath, syncPeriod: '5s', minSyncPeriod: '100ms' });
  });

  afterAll(async () => {
    await node?.stop();
    if (namespace !== undefined && controlPlane !== undefined) await deleteNamespace(clients, namespace).catch(() => undefined);
    await controlPlane?.stop();
  });

  async function addService(ns: string, name: string, addresses: readonly string[]): Promise<string> {
    await createService(clients.core, { namespace: ns, name, ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    const slice = await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: name, ports: [{ name: 'http', port: 8080 }], endpoints: addresses.map((address) => ({ address })),
    });
    return slice.metadata?.name ?? '';
  }

  async function converged(description: string): Promise<Expected> {
    return node.waitFor(description, async () => {
      const expected = await expectedFromApiserver(clients);
      const nat = await node.kernel('nat');
      const same = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean => a.size === b.size && [...a].every((item) => b.has(item));
      return same(chainsWithPrefix(nat, 'KUBE-SVC-'), expected.services) && same(chainsWithPrefix(nat, 'KUBE-SEP-'), expected.endpoints) ? expected : undefined;
    }, 180_000);
  }

  it('reconnects and converges to exactly what the apiserver holds', async () => {
    const ns = await createNamespace(clients.core);
    namespace = ns;
    const slices = new Map<string, string>();
    for (const [name, addresses] of [
      ['one', ['10.244.10.1']],
      ['two', ['10.244.20.1', '10.244.20.2']],
      ['three', ['10.244.30.1']],
      ['four', ['10.244.40.1']],
    ] as const) {
      slices.set(name, await addService(ns, name, addresses));
    }
    const initial = await converged('the initial objects are programmed');
    expect(initial.services.has(serviceChainNames(ns, 'four', 'http').cluster)).toBe(true);

    // Changes just before the apiserver goes away (the agent may or may not see them before it does).
    await setEndpoints(clients.discovery, ns, slices.get('two') ?? '', [{ address: '10.244.20.3' }]);
    slices.set('five', await addService(ns, 'five', ['10.244.50.1']));
    const restartsBefore = await node.metric('kube_proxy_ts_watch_restarts_total');

    await controlPlane.stopApiserver();
    await controlPlane.startApiserver();
    // Changes right after it is back, while the agent's watches are still backing off.
    await deleteService(clients.core, ns, 'one');
    await deleteEndpointSlice(clients.discovery, ns, slices.get('one') ?? '');
    await setEndpoints(clients.discovery, ns, slices.get('three') ?? '', [{ address: '10.244.30.7' }, { address: '10.244.30.8' }]);
    slices.set('six', await addService(ns, 'six', ['10.244.60.1']));

    const after = await converged('the kernel matches the apiserver after the restart');
    const restarts = await node.samples('kube_proxy_ts_watch_restarts_total');
    expect(restarts.reduce((sum, sample) => sum + sample.value, 0)).toBeGreaterThan(restartsBefore);
    // Each of the three watches broke and came back.
    expect(new Set(restarts.filter((sample) => sample.value > 0).map((sample) => sample.labels['resource']))).toEqual(
      new Set(['services', 'endpointSlices', 'node']),
    );
    expect(after.services.has(serviceChainNames(ns, 'one', 'http').cluster)).toBe(false);
    expect(after.services.has(serviceChainNames(ns, 'six', 'http').cluster)).toBe(true);
    expect(after.endpoints.has(endpointChainName(ns, 'three', 'http', '10.244.30.8', 8080))).toBe(true);
    expect(after.endpoints.has(endpointChainName(ns, 'two', 'http', '10.244.20.3', 8080))).toBe(true);
    const nat = await node.kernel('nat');
    expect(nat.chains.has(serviceChainNames(ns, 'one', 'http').cluster)).toBe(false);
    expect(nat.chains.has(endpointChainName(ns, 'three', 'http', '10.244.30.1', 8080))).toBe(false);

    // The watches are live again, not just relisted once: a later change still arrives.
    await addService(ns, 'seven', ['10.244.70.1']);
    const later = await converged('a change after the restart is programmed');
    expect(later.services.has(serviceChainNames(ns, 'seven', 'http').cluster)).toBe(true);
  });
});
