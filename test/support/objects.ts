// Builders for the API objects kube-proxy consumes (Service, EndpointSlice, Node), shared by every
// test tier: unit flows, kernel tests that feed `render`/`trace` a file, and the apiserver harness.
import type {
  DiscoveryV1EndpointPort,
  V1Endpoint,
  V1EndpointSlice,
  V1Node,
  V1Service,
  V1ServicePort,
  V1ServiceSpec,
} from '@kubernetes/client-node';

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
