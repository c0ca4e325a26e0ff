// Small V1Service / V1EndpointSlice builders for agent unit tests.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';

export function service(name: string, clusterIP: string, options: { protocol?: 'TCP' | 'UDP'; port?: number; nodePort?: number } = {}): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', creationTimestamp: new Date('2026-01-01T00:00:00Z') },
    spec: {
      type: options.nodePort !== undefined ? 'NodePort' : 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ports: [{ name: 'p', port: options.port ?? 80, protocol: options.protocol ?? 'TCP', targetPort: 8080, ...(options.nodePort !== undefined ? { nodePort: options.nodePort } : {}) }],
    },
  } as V1Service;
}

export function slice(serviceName: string, ips: readonly string[], options: { protocol?: 'TCP' | 'UDP'; node?: string } = {}): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${serviceName}-abc`, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    ports: [{ name: 'p', port: 8080, protocol: options.protocol ?? 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], nodeName: options.node ?? 'node1', conditions: { ready: true } })),
  } as V1EndpointSlice;
}
