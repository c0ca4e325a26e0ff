import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { serviceHealthEntries } from '../../../src/agent/service-health-entries.js';
import { buildDesiredState } from '../../../src/model/build.js';

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };

const lb: V1Service = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'lb', namespace: 'default' },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.50',
    clusterIPs: ['10.96.0.50'],
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: 32000,
    ports: [
      { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 },
      { name: 'https', port: 443, protocol: 'TCP', targetPort: 8443, nodePort: 30443 },
    ],
  },
};

type Conditions = { ready: boolean; serving: boolean; terminating: boolean };
const READY: Conditions = { ready: true, serving: true, terminating: false };
const TERMINATING: Conditions = { ready: false, serving: true, terminating: true };

function slice(endpoints: readonly { ip: string; node: string; conditions: Conditions }[]): V1EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'lb-abc', namespace: 'default', labels: { 'kubernetes.io/service-name': 'lb' } },
    addressType: 'IPv4',
    ports: [
      { name: 'http', port: 8080, protocol: 'TCP' },
      { name: 'https', port: 8443, protocol: 'TCP' },
    ],
    endpoints: endpoints.map((endpoint) => ({ addresses: [endpoint.ip], nodeName: endpoint.node, conditions: endpoint.conditions })),
  };
}

const entryFor = (endpoints: Parameters<typeof slice>[0]) =>
  serviceHealthEntries(buildDesiredState({ services: [lb], endpointSlices: [slice(endpoints)], node }).state).get('default/lb');

describe('serviceHealthEntries', () => {
  it('counts each ready local endpoint once across the Service ports', () => {
    expect(
      entryFor([
        { ip: '10.244.1.1', node: 'node1', conditions: READY },
        { ip: '10.244.1.2', node: 'node1', conditions: READY },
        { ip: '10.244.2.1', node: 'node2', conditions: READY },
      ]),
    ).toEqual({ namespace: 'default', name: 'lb', healthCheckNodePort: 32000, localEndpoints: 2 });
  });

  it('reports 0 for a node whose only local endpoints are terminating, so load balancers drain it (upstream counts ready ones)', () => {
    const endpoints = [
      { ip: '10.244.1.1', node: 'node1', conditions: TERMINATING },
      { ip: '10.244.2.1', node: 'node2', conditions: READY },
    ];
    expect(entryFor(endpoints)?.localEndpoints).toBe(0);
    // The rules still send this node's traffic to its terminating endpoint meanwhile.
    const state = buildDesiredState({ services: [lb], endpointSlices: [slice(endpoints)], node }).state;
    const http = [...state.servicePorts.values()].find((servicePort) => servicePort.portName === 'http');
    expect(http?.localEndpoints.map((endpoint) => endpoint.ip)).toEqual(['10.244.1.1']);
  });

  it('leaves out Services without a healthCheckNodePort', () => {
    const plain: V1Service = { ...lb, metadata: { name: 'plain', namespace: 'default' }, spec: { ...lb.spec, type: 'ClusterIP', externalTrafficPolicy: 'Cluster', healthCheckNodePort: undefined, clusterIP: '10.96.0.51', clusterIPs: ['10.96.0.51'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] } };
    expect(serviceHealthEntries(buildDesiredState({ services: [plain], endpointSlices: [], node }).state).size).toBe(0);
  });
});
