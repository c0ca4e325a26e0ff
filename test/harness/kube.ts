// Small helpers over @kubernetes/client-node for integration and e2e tests: clients from a
// kubeconfig file, builders for the objects kube-proxy consumes (Service, EndpointSlice, Node),
// create/update/delete with bounded concurrency. There is no controller-manager and no kubelet in
// the test control plane, so tests create EndpointSlices and Nodes themselves.
import { randomBytes } from 'node:crypto';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  type DiscoveryV1EndpointPort,
  type V1Endpoint,
  type V1EndpointSlice,
  type V1Node,
  type V1Service,
  type V1ServicePort,
  type V1ServiceSpec,
} from '@kubernetes/client-node';

export interface KubeClients {
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  readonly discovery: DiscoveryV1Api;
}

export function loadKubeConfig(kubeconfigPath: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  return kubeConfig;
}

export function kubeClients(source: string | KubeConfig): KubeClients {
  const kubeConfig = typeof source === 'string' ? loadKubeConfig(source) : source;
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    discovery: kubeConfig.makeApiClient(DiscoveryV1Api),
  };
}

/** True when `error` is an API error with HTTP status `code` (any status when omitted). */
export function isApiError(error: unknown, code?: number): error is ApiException<unknown> {
  return error instanceof ApiException && (code === undefined || error.code === code);
}

/** Awaits `operation`, turning a 404 into undefined. */
export async function ignoreNotFound<T>(operation: Promise<T>): Promise<T | undefined> {
  try {
    return await operation;
  } catch (error: unknown) {
    if (isApiError(error, 404)) return undefined;
    throw error;
  }
}

/** A raw authenticated GET (e.g. `/readyz?verbose`, `/metrics`) against the current cluster. */
export async function apiGet(kubeConfig: KubeConfig, path: string): Promise<{ status: number; body: string }> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const options: RequestOptions = { method: 'GET', agent: false, timeout: 10_000 };
  await kubeConfig.applyToHTTPSOptions(options);
  return new Promise((resolvePromise, reject) => {
    const request = httpsRequest(`${cluster.server}${path}`, options, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolvePromise({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${path}: timeout`)));
    request.on('error', reject);
    request.end();
  });
}

/** `prefix-` plus 6 random lowercase hex characters: a valid, collision-free object name. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Bounded concurrency

/**
 * Maps `items` through `operation` with at most `concurrency` in flight, keeping the order. On the
 * first failure no new items start; the in-flight ones finish, then the first error is thrown.
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  concurrency: number,
  operation: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await operation(items[index] as T, index);
      } catch (error: unknown) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

// ---------------------------------------------------------------------------------------------
// Namespaces

export async function createNamespace(core: CoreV1Api, name: string = uniqueName('test')): Promise<string> {
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (error: unknown) {
    if (!isApiError(error, 409)) throw error;
  }
  return name;
}

/**
 * Deletes the Services and EndpointSlices in `namespace`, then the namespace itself. Without a
 * controller-manager nobody empties or finalizes a deleted namespace, so this does both.
 */
export async function deleteNamespace(clients: KubeClients, namespace: string): Promise<void> {
  const { core, discovery } = clients;
  await ignoreNotFound(discovery.deleteCollectionNamespacedEndpointSlice({ namespace }));
  const services = await ignoreNotFound(core.listNamespacedService({ namespace }));
  await mapWithConcurrency(services?.items ?? [], 16, (service) =>
    ignoreNotFound(core.deleteNamespacedService({ namespace, name: service.metadata?.name ?? '' })),
  );
  const deleted = await ignoreNotFound(core.deleteNamespace({ name: namespace }));
  if (deleted === undefined) return;
  await ignoreNotFound(
    core.replaceNamespaceFinalize({
      name: namespace,
      body: { metadata: { name: namespace }, spec: { finalizers: [] } },
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Services

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ServicePortInput {
  readonly name?: string;
  readonly port: number;
  readonly targetPort?: number | string;
  readonly protocol?: Protocol;
  readonly nodePort?: number;
  readonly appProtocol?: string;
}

export interface ServiceInput {
  readonly namespace: string;
  readonly name: string;
  readonly type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  readonly ports: readonly ServicePortInput[];
  /** A fixed cluster IP, or 'None' for a headless Service. Allocated by the apiserver when omitted. */
  readonly clusterIP?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Any other spec field (traffic policies, externalIPs, sessionAffinity, ipFamilies...). Wins over the above. */
  readonly spec?: Partial<V1ServiceSpec>;
}

export function serviceObject(input: ServiceInput): V1Service {
  const ports: V1ServicePort[] = input.ports.map((port) => ({
    ...(port.name !== undefined ? { name: port.name } : {}),
    port: port.port,
    protocol: port.protocol ?? 'TCP',
    ...(port.targetPort !== undefined ? { targetPort: port.targetPort } : {}),
    ...(port.nodePort !== undefined ? { nodePort: port.nodePort } : {}),
    ...(port.appProtocol !== undefined ? { appProtocol: port.appProtocol } : {}),
  }));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      namespace: input.namespace,
      name: input.name,
      ...(input.labels ? { labels: { ...input.labels } } : {}),
      ...(input.annotations ? { annotations: { ...input.annotations } } : {}),
    },
    spec: {
      type: input.type ?? 'ClusterIP',
      ports,
      ...(input.clusterIP !== undefined ? { clusterIP: input.clusterIP } : {}),
      ...input.spec,
    },
  };
}

export function createService(core: CoreV1Api, input: ServiceInput): Promise<V1Service> {
  return core.createNamespacedService({ namespace: input.namespace, body: serviceObject(input) });
}

export function createServices(core: CoreV1Api, inputs: readonly ServiceInput[], concurrency = 16): Promise<V1Service[]> {
  return mapWithConcurrency(inputs, concurrency, (input) => createService(core, input));
}

/** Sets `status.loadBalancer.ingress` (what a cloud controller would do) to the given IPs. */
export async function setLoadBalancerIngress(
  core: CoreV1Api,
  namespace: string,
  name: string,
  ips: readonly string[],
): Promise<V1Service> {
  const service = await core.readNamespacedService({ namespace, name });
  service.status = { ...service.status, loadBalancer: { ingress: ips.map((ip) => ({ ip })) } };
  return core.replaceNamespacedServiceStatus({ namespace, name, body: service });
}

export async function deleteService(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  await ignoreNotFound(core.deleteNamespacedService({ namespace, name }));
}

// ---------------------------------------------------------------------------------------------
// EndpointSlices

export const serviceNameLabel = 'kubernetes.io/service-name';
export const managedByLabel = 'endpointslice.kubernetes.io/managed-by';
export const lastChangeTriggerTimeAnnotation = 'endpoints.kubernetes.io/last-change-trigger-time';
/** What kube-controller-manager's EndpointSlice controller writes into the managed-by label. */
export const controllerManagedBy = 'endpointslice-controller.k8s.io';

export interface EndpointInput {
  /** One address, or several (the API allows one per endpoint for IPs, but keeps the list type). */
  readonly address: string | readonly string[];
  /** Default true. */
  readonly ready?: boolean;
  /** Default: same as `ready`. */
  readonly serving?: boolean;
  /** Default false. */
  readonly terminating?: boolean;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly hostname?: string;
  /** Topology hints. */
  readonly forZones?: readonly string[];
  readonly forNodes?: readonly string[];
}

export interface EndpointSlicePortInput {
  readonly name?: string;
  readonly port: number;
  readonly protocol?: Protocol;
  readonly appProtocol?: string;
}

export interface EndpointSliceInput {
  readonly namespace: string;
  readonly serviceName: string;
  /** Default: `<serviceName>-` plus a server-generated suffix. */
  readonly name?: string;
  readonly addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports: readonly EndpointSlicePortInput[];
  readonly endpoints: readonly EndpointInput[];
  /** Default `endpointslice-controller.k8s.io`, as in a real cluster. */
  readonly managedBy?: string;
  /** The `last-change-trigger-time` annotation (kube-proxy's network-programming latency). Default now. */
  readonly triggerTime?: Date;
  readonly labels?: Readonly<Record<string, string>>;
}

export function endpointObject(input: EndpointInput): V1Endpoint {
  const ready = input.ready ?? true;
  const hints =
    input.forZones !== undefined || input.forNodes !== undefined
      ? {
          hints: {
            ...(input.forZones ? { forZones: input.forZones.map((name) => ({ name })) } : {}),
            ...(input.forNodes ? { forNodes: input.forNodes.map((name) => ({ name })) } : {}),
          },
        }
      : {};
  return {
    addresses: typeof input.address === 'string' ? [input.address] : [...input.address],
    conditions: { ready, serving: input.serving ?? ready, terminating: input.terminating ?? false },
    ...(input.nodeName !== undefined ? { nodeName: input.nodeName } : {}),
    ...(input.zone !== undefined ? { zone: input.zone } : {}),
    ...(input.hostname !== undefined ? { hostname: input.hostname } : {}),
    ...hints,
  };
}

export function endpointSliceObject(input: EndpointSliceInput): V1EndpointSlice {
  const ports: DiscoveryV1EndpointPort[] = input.ports.map((port) => ({
    ...(port.name !== undefined ? { name: port.name } : {}),
    port: port.port,
    protocol: port.protocol ?? 'TCP',
    ...(port.appProtocol !== undefined ? { appProtocol: port.appProtocol } : {}),
  }));
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: input.namespace,
      ...(input.name !== undefined ? { name: input.name } : { generateName: `${input.serviceName}-` }),
      labels: {
        ...input.labels,
        [serviceNameLabel]: input.serviceName,
        [managedByLabel]: input.managedBy ?? controllerManagedBy,
      },
      annotations: { [lastChangeTriggerTimeAnnotation]: (input.triggerTime ?? new Date()).toISOString() },
    },
    addressType: input.addressType ?? 'IPv4',
    ports,
    endpoints: input.endpoints.map(endpointObject),
  };
}

export function createEndpointSlice(discovery: DiscoveryV1Api, input: EndpointSliceInput): Promise<V1EndpointSlice> {
  return discovery.createNamespacedEndpointSlice({ namespace: input.namespace, body: endpointSliceObject(input) });
}

export function createEndpointSlices(
  discovery: DiscoveryV1Api,
  inputs: readonly EndpointSliceInput[],
  concurrency = 16,
): Promise<V1EndpointSlice[]> {
  return mapWithConcurrency(inputs, concurrency, (input) => createEndpointSlice(discovery, input));
}

/** Replaces the endpoints of an existing slice and stamps a new trigger time (default now). */
export async function setEndpoints(
  discovery: DiscoveryV1Api,
  namespace: string,
  name: string,
  endpoints: readonly EndpointInput[],
  triggerTime: Date = new Date(),
): Promise<V1EndpointSlice> {
  const slice = await discovery.readNamespacedEndpointSlice({ namespace, name });
  slice.endpoints = endpoints.map(endpointObject);
  slice.metadata = {
    ...slice.metadata,
    annotations: { ...slice.metadata?.annotations, [lastChangeTriggerTimeAnnotation]: triggerTime.toISOString() },
  };
  return discovery.replaceNamespacedEndpointSlice({ namespace, name, body: slice });
}

export async function deleteEndpointSlice(discovery: DiscoveryV1Api, namespace: string, name: string): Promise<void> {
  await ignoreNotFound(discovery.deleteNamespacedEndpointSlice({ namespace, name }));
}

// ---------------------------------------------------------------------------------------------
// Nodes (objects only: no kubelet runs)

export interface NodeInput {
  readonly name: string;
  /** InternalIP address(es), e.g. one IPv4 and one IPv6 for dual-stack. */
  readonly internalIP: string | readonly string[];
  readonly zone?: string;
  readonly podCIDRs?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
}

export function nodeObject(input: NodeInput): V1Node {
  const internalIPs = typeof input.internalIP === 'string' ? [input.internalIP] : [...input.internalIP];
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: input.name,
      labels: {
        'kubernetes.io/hostname': input.name,
        'kubernetes.io/os': 'linux',
        ...(input.zone !== undefined ? { 'topology.kubernetes.io/zone': input.zone } : {}),
        ...input.labels,
      },
    },
    spec: input.podCIDRs?.[0] !== undefined ? { podCIDR: input.podCIDRs[0], podCIDRs: [...input.podCIDRs] } : {},
    status: {
      addresses: [
        ...internalIPs.map((address) => ({ type: 'InternalIP', address })),
        { type: 'Hostname', address: input.name },
      ],
    },
  };
}

/** Creates the Node and makes sure its status (addresses) is stored, as a kubelet would. */
export async function createNode(core: CoreV1Api, input: NodeInput): Promise<V1Node> {
  const body = nodeObject(input);
  const created = await core.createNode({ body });
  if ((created.status?.addresses ?? []).length > 0) return created;
  return core.replaceNodeStatus({ name: input.name, body: { ...created, status: body.status } });
}

export async function deleteNode(core: CoreV1Api, name: string): Promise<void> {
  await ignoreNotFound(core.deleteNode({ name }));
}
