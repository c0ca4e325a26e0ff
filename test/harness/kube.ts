// Small helpers over @kubernetes/client-node for integration and e2e tests: clients from a
// kubeconfig file, create/update/delete with bounded concurrency (the object builders live in
// test/support/objects.ts and are re-exported here). There is no controller-manager and no kubelet
// in the test control plane, so tests create EndpointSlices and Nodes themselves.
import { randomBytes } from 'node:crypto';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  type V1EndpointSlice,
  type V1Node,
  type V1Service,
} from '@kubernetes/client-node';
import {
  endpointObject,
  endpointSliceObject,
  lastChangeTriggerTimeAnnotation,
  nodeObject,
  serviceObject,
  type EndpointInput,
  type EndpointSliceInput,
  type NodeInput,
  type ServiceInput,
} from '../support/objects.js';

export * from '../support/objects.js';

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
