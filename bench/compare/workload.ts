// The benchmark's cluster: N Services with M endpoints each, generated deterministically from the
// Service's index (so a larger scale only adds indices), bulk-created with bounded concurrency, and
// the single changes the latency trials make (one endpoint replaced, one Service added, one
// Service's session affinity switched on) plus their undo, so every proxy starts from the same
// apiserver state.

import type { CoreV1Api, DiscoveryV1Api } from '@kubernetes/client-node';
import {
  createEndpointSlice,
  createNamespace,
  createNode,
  createService,
  deleteEndpointSlice,
  deleteService,
  endpointObject,
  lastChangeTriggerTimeAnnotation,
  mapWithConcurrency,
  setEndpoints,
  setLoadBalancerIngress,
  type EndpointInput,
  type EndpointSliceInput,
  type ServiceInput,
} from '../../test/harness/kube.js';
import { servicePortChainNames, servicePortEndpointChainName } from '../../src/render/names.js';
import { nftEndpointNames, nftServicePortNames } from '../../src/nftables/vocabulary.js';
import type { ProxyMode } from './node-netns.js';

export const NODE_NAME = 'bench-node';
/** The pod network; endpoint IPs are drawn from it. */
export const CLUSTER_CIDR = '172.16.0.0/12';
export const NAMESPACE_COUNT = 10;

type Protocol = 'TCP' | 'UDP';

export interface BenchPort {
  readonly name: string;
  readonly port: number;
  readonly targetPort: number;
  readonly protocol: Protocol;
}

export interface BenchService {
  readonly index: number;
  readonly namespace: string;
  readonly name: string;
  readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  readonly ports: readonly BenchPort[];
  readonly sessionAffinity: boolean;
  readonly externalTrafficPolicyLocal: boolean;
  readonly loadBalancerIP: string | undefined;
  readonly endpoints: readonly EndpointInput[];
}

/** The mix, out of every 100 Services. */
export const MIX = {
  nodePortPercent: 10,
  loadBalancerPercent: 5,
  sessionAffinityPercent: 2,
  /** Of the NodePort and LoadBalancer Services. */
  externalTrafficPolicyLocalPercent: 25,
  twoPortPercent: 20,
  udpPercent: 4,
} as const;

function ipv4(base: number, offset: number): string {
  const value = base + offset;
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

const POD_BASE = (172 << 24) + (16 << 16); // 172.16.0.0
const LB_BASE = (100 << 24) + (64 << 16); // 100.64.0.0 (shared address space, never routed here)
const CHANGED_BASE = (172 << 24) + (30 << 16); // 172.30.0.0: replacement endpoint IPs
const ADDED_BASE = (172 << 24) + (29 << 16); // 172.29.0.0: endpoints of added Services

/** Service `index` of the workload; `endpointsPerService` endpoints in one EndpointSlice. */
export function benchService(index: number, endpointsPerService: number): BenchService {
  const bucket = index % 100;
  const type =
    bucket < MIX.nodePortPercent ? 'NodePort' : bucket < MIX.nodePortPercent + MIX.loadBalancerPercent ? 'LoadBalancer' : 'ClusterIP';
  const udp = type === 'ClusterIP' && index % 25 === 7;
  const twoPorts = type === 'ClusterIP' && !udp && index % 5 === 2;
  const ports: BenchPort[] = udp
    ? [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }]
    : [
        { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
        ...(twoPorts ? [{ name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' as const }] : []),
      ];
  const externalTrafficPolicyLocal = type !== 'ClusterIP' && Math.floor(index / 100) % 4 === 0;
  const endpoints: EndpointInput[] = [];
  for (let j = 0; j < endpointsPerService; j++) {
    // One endpoint of every third Service runs on this node, so Local policies have local endpoints.
    const local = j === 0 && index % 3 === 0;
    endpoints.push({
      address: ipv4(POD_BASE, 256 + index * endpointsPerService + j),
      nodeName: local ? NODE_NAME : `node-${(index * endpointsPerService + j) % 100}`,
    });
  }
  return {
    index,
    namespace: `bench-${index % NAMESPACE_COUNT}`,
    name: `svc-${index}`,
    type,
    ports,
    sessionAffinity: index % 50 === 11,
    externalTrafficPolicyLocal,
    loadBalancerIP: type === 'LoadBalancer' ? ipv4(LB_BASE, index) : undefined,
    endpoints,
  };
}

function serviceInput(service: BenchService): ServiceInput {
  return {
    namespace: service.namespace,
    name: service.name,
    type: service.type,
    ports: service.ports.map((port) => ({ name: port.name, port: port.port, targetPort: port.targetPort, protocol: port.protocol })),
    spec: {
      ...(service.sessionAffinity ? { sessionAffinity: 'ClientIP' } : {}),
      ...(service.externalTrafficPolicyLocal ? { externalTrafficPolicy: 'Local' } : {}),
    },
  };
}

function sliceName(service: Pick<BenchService, 'name'>): string {
  return `${service.name}-slice`;
}

function sliceInput(service: BenchService, endpoints: readonly EndpointInput[] = service.endpoints): EndpointSliceInput {
  return {
    namespace: service.namespace,
    serviceName: service.name,
    name: sliceName(service),
    ports: service.ports.map((port) => ({ name: port.name, port: port.targetPort, protocol: port.protocol })),
    endpoints,
  };
}

export interface WorkloadSummary {
  readonly services: number;
  readonly servicePorts: number;
  readonly endpoints: number;
  readonly byType: Readonly<Record<string, number>>;
  readonly sessionAffinity: number;
  readonly externalTrafficPolicyLocal: number;
}

export function summarize(count: number, endpointsPerService: number): WorkloadSummary {
  const byType: Record<string, number> = {};
  let servicePorts = 0;
  let sessionAffinity = 0;
  let local = 0;
  for (let index = 0; index < count; index++) {
    const service = benchService(index, endpointsPerService);
    byType[service.type] = (byType[service.type] ?? 0) + 1;
    servicePorts += service.ports.length;
    if (service.sessionAffinity) sessionAffinity++;
    if (service.externalTrafficPolicyLocal) local++;
  }
  return { services: count, servicePorts, endpoints: count * endpointsPerService, byType, sessionAffinity, externalTrafficPolicyLocal: local };
}

export interface Clients {
  readonly core: CoreV1Api;
  readonly discovery: DiscoveryV1Api;
}

/** Creates the namespaces and the Node (node IP `nodeIP`); idempotent for the namespaces only. */
export async function createBase(clients: Clients, nodeIP: string): Promise<void> {
  for (let index = 0; index < NAMESPACE_COUNT; index++) await createNamespace(clients.core, `bench-${index}`);
  await createNode(clients.core, { name: NODE_NAME, internalIP: nodeIP, podCIDRs: ['172.16.0.0/24'] });
}

/**
 * Creates Services [from, to) and their EndpointSlices, `concurrency` requests in flight, and sets
 * the load-balancer status of the LoadBalancer ones. Returns the wall time in seconds.
 */
export async function loadServices(
  clients: Clients,
  from: number,
  to: number,
  endpointsPerService: number,
  concurrency: number,
  progress: (message: string) => void,
): Promise<number> {
  const started = performance.now();
  const indices = Array.from({ length: Math.max(0, to - from) }, (_, offset) => from + offset);
  let done = 0;
  const step = Math.max(1, Math.floor(indices.length / 5));
  await mapWithConcurrency(indices, concurrency, async (index) => {
    const service = benchService(index, endpointsPerService);
    // The slice first: a proxy then sees each Service complete, as after a controller's resync.
    await createEndpointSlice(clients.discovery, { ...sliceInput(service), triggerTime: new Date(0) });
    await createService(clients.core, serviceInput(service));
    if (service.loadBalancerIP !== undefined) {
      await setLoadBalancerIngress(clients.core, service.namespace, service.name, [service.loadBalancerIP]);
    }
    done++;
    if (done % step === 0) progress(`  created ${from + done}/${to} Services (+ slices)`);
  });
  return (performance.now() - started) / 1000;
}

/** What a trial waits for: a chain the change creates, and a string the restore payload must hold. */
export interface ChangeMarker {
  /** A chain that exists in the nat table once the change is programmed (none when the change creates no chain). */
  readonly chain: string | undefined;
  /** Text that appears in the iptables-restore input that programs the change. */
  readonly payloadText: string;
}

export type ChangeKind = 'endpoint' | 'service' | 'update';

export interface PreparedChange {
  readonly kind: ChangeKind;
  readonly serviceIndex: number | undefined;
  readonly marker: ChangeMarker;
  /** Sends the timed write; resolves to Date.now() taken just before it was sent. */
  readonly write: () => Promise<number>;
  /** Undoes the change in the apiserver (also when the write never happened). */
  readonly undo: () => Promise<void>;
}

/**
 * Replaces endpoint #1 of Service `index` with a fresh IP (`sequence` makes it unique), which
 * creates a new KUBE-SEP chain and rewrites the service's KUBE-SVC chain.
 */
export function prepareEndpointChange(clients: Clients, index: number, endpointsPerService: number, sequence: number, mode: ProxyMode): PreparedChange {
  const service = benchService(index, endpointsPerService);
  const newIP = ipv4(CHANGED_BASE, 256 + sequence);
  const changed = service.endpoints.map((endpoint, position) => (position === 1 ? { ...endpoint, address: newIP } : endpoint));
  const port = service.ports[0] as BenchPort;
  const namespace = service.namespace;
  const name = sliceName(service);
  return {
    kind: 'endpoint',
    serviceIndex: index,
    marker:
      mode === 'iptables'
        ? {
            chain: servicePortEndpointChainName(`${service.namespace}/${service.name}:${port.name}`, port.protocol, newIP, port.targetPort),
            payloadText: `--to-destination ${newIP}:${port.targetPort}`,
          }
        : {
            chain: nftEndpointNames(service.namespace, service.name, port.name, port.protocol, newIP, port.targetPort).chain,
            payloadText: `dnat to ${newIP}:${port.targetPort}`,
          },
    write: async () => {
      // Read first, so the timed part is the write alone.
      const slice = await clients.discovery.readNamespacedEndpointSlice({ namespace, name });
      const writtenAt = Date.now();
      slice.endpoints = changed.map(endpointObject);
      slice.metadata = {
        ...slice.metadata,
        annotations: { ...slice.metadata?.annotations, [lastChangeTriggerTimeAnnotation]: new Date(writtenAt).toISOString() },
      };
      await clients.discovery.replaceNamespacedEndpointSlice({ namespace, name, body: slice });
      return writtenAt;
    },
    undo: async () => {
      await setEndpoints(clients.discovery, namespace, name, service.endpoints, new Date(0));
    },
  };
}

/**
 * Adds one ClusterIP Service, timed from its write; then, as the EndpointSlice controller would a
 * few milliseconds later, its EndpointSlice. The change is programmed once both are.
 */
export function prepareServiceAdd(clients: Clients, endpointsPerService: number, sequence: number, mode: ProxyMode): PreparedChange {
  const name = `added-${sequence}`;
  const namespace = 'bench-0';
  const port: BenchPort = { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' };
  const endpoints: EndpointInput[] = Array.from({ length: endpointsPerService }, (_, j) => ({
    address: ipv4(ADDED_BASE, 256 + sequence * endpointsPerService + j),
    nodeName: `node-${j % 100}`,
  }));
  const firstIP = typeof endpoints[0]?.address === 'string' ? endpoints[0].address : '';
  return {
    kind: 'service',
    serviceIndex: undefined,
    marker:
      mode === 'iptables'
        ? { chain: servicePortChainNames(`${namespace}/${name}:${port.name}`, port.protocol).cluster, payloadText: `--to-destination ${firstIP}:${port.targetPort}` }
        : { chain: nftServicePortNames(namespace, name, port.name, port.protocol).cluster, payloadText: `dnat to ${firstIP}:${port.targetPort}` },
    write: async () => {
      const writtenAt = Date.now();
      await createService(clients.core, {
        namespace,
        name,
        ports: [{ name: port.name, port: port.port, targetPort: port.targetPort, protocol: port.protocol }],
      });
      await createEndpointSlice(clients.discovery, {
        namespace,
        serviceName: name,
        name: `${name}-slice`,
        ports: [{ name: port.name, port: port.targetPort, protocol: port.protocol }],
        endpoints,
        triggerTime: new Date(writtenAt),
      });
      return writtenAt;
    },
    undo: async () => {
      await deleteService(clients.core, namespace, name);
      await deleteEndpointSlice(clients.discovery, namespace, `${name}-slice`);
    },
  };
}

/**
 * Switches Service `index` to ClientIP session affinity (upstream's conformance test "should be able
 * to switch session affinity" does this and back): an update of an existing Service that rewrites
 * its KUBE-SVC and KUBE-SEP chains and creates none. Pick an index whose Service has no affinity
 * yet (updateServiceIndex).
 */
export function prepareServiceUpdate(clients: Clients, index: number, endpointsPerService: number, mode: ProxyMode): PreparedChange {
  const service = benchService(index, endpointsPerService);
  if (service.sessionAffinity) throw new Error(`Service ${index} already has session affinity`);
  const port = service.ports[0] as BenchPort;
  const first = service.endpoints[0];
  const address = typeof first?.address === 'string' ? first.address : '';
  const sep = servicePortEndpointChainName(`${service.namespace}/${service.name}:${port.name}`, port.protocol, address, port.targetPort);
  const endpoint = nftEndpointNames(service.namespace, service.name, port.name, port.protocol, address, port.targetPort);
  const { namespace, name } = service;
  const setAffinity = async (affinity: 'ClientIP' | 'None'): Promise<number> => {
    // Read first, so the timed part is the write alone.
    const current = await clients.core.readNamespacedService({ namespace, name });
    const writtenAt = Date.now();
    current.spec = { ...current.spec, sessionAffinity: affinity };
    if (affinity === 'None') delete current.spec.sessionAffinityConfig;
    await clients.core.replaceNamespacedService({ namespace, name, body: current });
    return writtenAt;
  };
  return {
    kind: 'update',
    serviceIndex: index,
    marker: {
      chain: undefined,
      // The apiserver defaults the timeout to 10800 s; both proxies write this rule in KUBE-SVC-* (nftables: service-*).
      payloadText:
        mode === 'iptables'
          ? `-m recent --name ${sep} --rcheck --seconds 10800 --reap -j ${sep}`
          : `ip saddr @${endpoint.affinitySet} goto ${endpoint.chain}`,
    },
    write: () => setAffinity('ClientIP'),
    undo: async () => {
      await setAffinity('None');
    },
  };
}

/**
 * What proves a full sync landed: the KUBE-SERVICES jump to the last ClusterIP Service's chain. It
 * is written with the dispatch chains, which come last when a full sync is split into parts.
 * nftables: that chain's element of the `service-ips` map (kube-proxy-ts writes the elements last).
 */
export function fullSyncMarker(count: number, endpointsPerService: number, mode: ProxyMode): ChangeMarker {
  let index = count - 1;
  while (index > 0 && benchService(index, endpointsPerService).type !== 'ClusterIP') index--;
  const service = benchService(index, endpointsPerService);
  const port = service.ports[0] as BenchPort;
  if (mode === 'nftables') {
    const chain = nftServicePortNames(service.namespace, service.name, port.name, port.protocol).cluster;
    return { chain, payloadText: `: goto ${chain}` };
  }
  const chain = servicePortChainNames(`${service.namespace}/${service.name}:${port.name}`, port.protocol).cluster;
  return { chain, payloadText: `-j ${chain}\n` };
}

/** Spread trial targets over the whole index range. */
export function trialServiceIndex(trial: number, trials: number, count: number): number {
  return Math.min(count - 1, Math.floor(((trial + 0.5) * count) / trials));
}

/**
 * The Service of update trial `trial`: the one after the endpoint trial's (whose endpoint changed),
 * skipping Services that already have session affinity; distinct for distinct trials while
 * trials <= count / 2.
 */
export function updateServiceIndex(trial: number, trials: number, count: number, endpointsPerService: number): number {
  let index = (trialServiceIndex(trial, trials, count) + 1) % count;
  while (benchService(index, endpointsPerService).sessionAffinity) index = (index + 1) % count;
  return index;
}
