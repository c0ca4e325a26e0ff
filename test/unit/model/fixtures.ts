// Builders for the API objects the model tests feed in. Defaults describe the most ordinary case
// (a ClusterIP Service with one named TCP port; one IPv4 slice for it) so each test states only
// what it is about.
import type { V1Endpoint, V1EndpointSlice, V1Service, V1ServicePort, V1ServiceSpec } from '@kubernetes/client-node';
import type { NodeInfo } from '../../../src/model/types.js';

export interface ObjectExtras {
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
  readonly creationTimestamp?: Date;
}

export function makeService(
  namespace: string,
  name: string,
  spec: Partial<V1ServiceSpec> = {},
  extras: ObjectExtras & { readonly loadBalancerIngress?: { ip?: string; hostname?: string; ipMode?: string }[] } = {},
): V1Service {
  const ports: V1ServicePort[] = spec.ports ?? [{ name: 'http', port: 80, protocol: 'TCP' }];
  return {
    metadata: {
      namespace,
      name,
      labels: extras.labels,
      annotations: extras.annotations,
      creationTimestamp: extras.creationTimestamp,
    },
    spec: { clusterIP: '10.96.0.10', clusterIPs: spec.clusterIP === undefined ? ['10.96.0.10'] : undefined, type: 'ClusterIP', ...spec, ports },
    status: extras.loadBalancerIngress === undefined ? {} : { loadBalancer: { ingress: extras.loadBalancerIngress } },
  };
}

export interface EndpointOptions {
  readonly node?: string;
  readonly zone?: string;
  readonly hints?: readonly string[];
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export function makeEndpoint(ip: string, options: EndpointOptions = {}): V1Endpoint {
  return {
    addresses: [ip],
    conditions: { ready: options.ready, serving: options.serving, terminating: options.terminating },
    nodeName: options.node,
    zone: options.zone,
    hints: options.hints === undefined ? undefined : { forZones: options.hints.map((zone) => ({ name: zone })) },
  };
}

export const httpPort = { name: 'http', port: 8080, protocol: 'TCP' };

export function makeSlice(
  namespace: string,
  name: string,
  serviceName: string | undefined,
  endpoints: V1Endpoint[],
  ports: { name?: string; port?: number; protocol?: string }[] = [httpPort],
  extras: ObjectExtras & { readonly addressType?: string } = {},
): V1EndpointSlice {
  const labels: Record<string, string> = { ...(extras.labels ?? {}) };
  if (serviceName !== undefined) labels['kubernetes.io/service-name'] = serviceName;
  return {
    metadata: { namespace, name, labels, annotations: extras.annotations },
    addressType: extras.addressType ?? 'IPv4',
    endpoints,
    ports,
  };
}

export function makeNode(name = 'node-a', zone?: string): NodeInfo {
  return { name, ips: ['192.168.0.10'], zone, labels: zone === undefined ? {} : { 'topology.kubernetes.io/zone': zone }, podCIDRs: [] };
}

/** "ip:port" of each endpoint, for compact assertions. */
export function addresses(endpoints: readonly { ip: string; port: number }[]): string[] {
  return endpoints.map((endpoint) => `${endpoint.ip}:${endpoint.port}`);
}
