import { describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../../src/model/build.js';
import { nodeInfoFromNode } from '../../../src/model/node.js';
import type { ServicePort } from '../../../src/model/types.js';
import { addresses, makeEndpoint, makeNode, makeService, makeSlice } from './fixtures.js';

const node = makeNode('node-a', 'zone-a');

function port(state: { servicePorts: ReadonlyMap<string, ServicePort> }, key: string): ServicePort {
  const servicePort = state.servicePorts.get(key);
  if (servicePort === undefined) throw new Error(`no service port ${key}; have ${[...state.servicePorts.keys()].join(', ')}`);
  return servicePort;
}

describe('buildDesiredState', () => {
  it('builds a complete ServicePort', () => {
    const { state, skipped } = buildDesiredState({
      services: [
        makeService(
          'shop',
          'web',
          {
            type: 'LoadBalancer',
            clusterIPs: ['10.96.1.1'],
            externalIPs: ['192.0.2.7'],
            ports: [{ name: 'https', port: 443, protocol: 'TCP', nodePort: 30443 }],
            externalTrafficPolicy: 'Local',
            healthCheckNodePort: 31000,
            sessionAffinity: 'ClientIP',
            loadBalancerSourceRanges: ['198.51.100.0/24'],
          },
          { loadBalancerIngress: [{ ip: '203.0.113.9' }] },
        ),
      ],
      endpointSlices: [
        makeSlice('shop', 'web-1', 'web', [makeEndpoint('10.244.1.5', { node: 'node-a', zone: 'zone-a' }), makeEndpoint('10.244.2.5', { node: 'node-b' })], [
          { name: 'https', port: 8443, protocol: 'TCP' },
        ]),
      ],
      node,
    });
    expect(skipped).toEqual([]);
    expect(state.node).toBe(node);
    const local = { ip: '10.244.1.5', port: 8443, nodeName: 'node-a', zone: 'zone-a', zoneHints: undefined, ready: true, serving: true, terminating: false, isLocal: true };
    const remote = { ip: '10.244.2.5', port: 8443, nodeName: 'node-b', zone: undefined, zoneHints: undefined, ready: true, serving: true, terminating: false, isLocal: false };
    expect(port(state, 'shop/web:https/TCP')).toEqual({
      key: 'shop/web:https/TCP',
      namespace: 'shop',
      name: 'web',
      portName: 'https',
      servicePortName: 'shop/web:https',
      protocol: 'TCP',
      type: 'LoadBalancer',
      clusterIPs: ['10.96.1.1'],
      port: 443,
      nodePort: 30443,
      externalIPs: ['192.0.2.7'],
      loadBalancerIPs: ['203.0.113.9'],
      loadBalancerSourceRanges: ['198.51.100.0/24'],
      sessionAffinity: { kind: 'ClientIP', timeoutSeconds: 10800 },
      externalTrafficPolicy: 'Local',
      internalTrafficPolicy: 'Cluster',
      healthCheckNodePort: 31000,
      allEndpoints: [local, remote],
      clusterEndpoints: [local, remote],
      localEndpoints: [local],
      reachableEndpoints: [local, remote],
    });
  });

  it('keys an unnamed port as ns/name:/PROTO and names it ns/name', () => {
    const { state } = buildDesiredState({
      services: [makeService('ns', 'dns', { ports: [{ port: 53, protocol: 'UDP' }] })],
      endpointSlices: [makeSlice('ns', 'dns-1', 'dns', [makeEndpoint('10.244.0.2')], [{ name: '', port: 53, protocol: 'UDP' }])],
      node,
    });
    const servicePort = port(state, 'ns/dns:/UDP');
    expect(servicePort.servicePortName).toBe('ns/dns');
    expect(addresses(servicePort.allEndpoints)).toEqual(['10.244.0.2:53']);
  });

  it('gives no state to headless, ExternalName, foreign-proxy and IPv6-only Services, without reporting them', () => {
    const { state, skipped } = buildDesiredState({
      services: [
        makeService('ns', 'headless', { clusterIP: 'None', clusterIPs: ['None'] }),
        makeService('ns', 'external', { type: 'ExternalName', externalName: 'db.example', clusterIP: '', clusterIPs: [] }),
        makeService('ns', 'other-proxy', {}, { labels: { 'service.kubernetes.io/service-proxy-name': 'cilium' } }),
        makeService('ns', 'v6', { clusterIPs: ['fd00::1'] }),
        makeService('ns', 'normal'),
      ],
      endpointSlices: [makeSlice('ns', 'headless-1', 'headless', [makeEndpoint('10.244.0.1')])],
      node,
    });
    expect([...state.servicePorts.keys()]).toEqual(['ns/normal:http/TCP']);
    expect(skipped).toEqual([]);
  });

  it('merges every slice of the Service (same namespace only), one endpoint per ip:port', () => {
    const { state } = buildDesiredState({
      services: [makeService('ns', 'web'), makeService('other', 'web')],
      endpointSlices: [
        makeSlice('ns', 'web-a', 'web', [makeEndpoint('10.244.0.1'), makeEndpoint('10.244.0.2')]),
        makeSlice('ns', 'web-b', 'web', [makeEndpoint('10.244.0.2'), makeEndpoint('10.244.0.3')]),
        makeSlice('other', 'web-a', 'web', [makeEndpoint('10.244.9.9')]),
        makeSlice('ns', 'api-a', 'api', [makeEndpoint('10.244.7.7')]),
      ],
      node,
    });
    expect(addresses(port(state, 'ns/web:http/TCP').allEndpoints)).toEqual(['10.244.0.1:8080', '10.244.0.2:8080', '10.244.0.3:8080']);
    expect(addresses(port(state, 'other/web:http/TCP').allEndpoints)).toEqual(['10.244.9.9:8080']);
  });

  it('matches each Service port to slice ports by name and protocol', () => {
    const { state } = buildDesiredState({
      services: [
        makeService('ns', 'dns', {
          ports: [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          ],
        }),
      ],
      endpointSlices: [
        makeSlice('ns', 'dns-1', 'dns', [makeEndpoint('10.244.0.2')], [
          { name: 'dns-tcp', port: 1053, protocol: 'TCP' },
          { name: 'dns', port: 2053, protocol: 'UDP' },
        ]),
      ],
      node,
    });
    expect(addresses(port(state, 'ns/dns:dns/UDP').allEndpoints)).toEqual(['10.244.0.2:2053']);
    expect(addresses(port(state, 'ns/dns:dns-tcp/TCP').allEndpoints)).toEqual(['10.244.0.2:1053']);
  });

  it.each([
    ['internal Local: only local endpoints', { internalTrafficPolicy: 'Local' }, [], ['10.244.0.1:8080'], ['10.244.0.1:8080']],
    ['external Local on NodePort: local for external, cluster for internal', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, ['10.244.0.1:8080', '10.244.0.2:8080'], ['10.244.0.1:8080'], ['10.244.0.1:8080', '10.244.0.2:8080']],
    ['external Local on a plain ClusterIP: no effect', { externalTrafficPolicy: 'Local' }, ['10.244.0.1:8080', '10.244.0.2:8080'], [], ['10.244.0.1:8080', '10.244.0.2:8080']],
  ] as const)('%s', (_label, spec, cluster, local, reachable) => {
    const { state } = buildDesiredState({
      services: [makeService('ns', 'web', spec as Record<string, unknown>)],
      endpointSlices: [makeSlice('ns', 'web-1', 'web', [makeEndpoint('10.244.0.1', { node: 'node-a' }), makeEndpoint('10.244.0.2', { node: 'node-b' })])],
      node,
    });
    const servicePort = port(state, 'ns/web:http/TCP');
    expect([addresses(servicePort.clusterEndpoints), addresses(servicePort.localEndpoints), addresses(servicePort.reachableEndpoints)]).toEqual([
      cluster,
      local,
      reachable,
    ]);
  });

  it('skips invalid objects with reasons and leaves the others untouched', () => {
    const good = makeService('ns', 'good');
    const goodSlice = makeSlice('ns', 'good-1', 'good', [makeEndpoint('10.244.0.1')]);
    const alone = buildDesiredState({ services: [good], endpointSlices: [goodSlice], node });
    const { state, skipped } = buildDesiredState({
      services: [
        makeService('ns', 'bad-ip', { clusterIPs: ['10.0.0.999'] }),
        good,
        makeService('ns', 'half', { ports: [{ name: 'ok', port: 80 }, { name: 'odd', port: 81, protocol: 'ICMP' }] }),
      ],
      endpointSlices: [
        makeSlice('ns', 'fqdn-1', 'good', [{ addresses: ['db.example'] }], undefined, { addressType: 'FQDN' }),
        goodSlice,
        makeSlice('ns', 'orphan', undefined, [makeEndpoint('10.244.0.9')]),
        makeSlice('ns', 'v6', 'good', [makeEndpoint('fd00::9')], undefined, { addressType: 'IPv6' }),
      ],
      node,
    });
    expect(port(state, 'ns/good:http/TCP')).toEqual(port(alone.state, 'ns/good:http/TCP'));
    expect([...state.servicePorts.keys()].sort()).toEqual(['ns/good:http/TCP', 'ns/half:ok/TCP']);
    expect(skipped.map((entry) => `${entry.kind} ${entry.namespace}/${entry.name} ${entry.reason}`)).toEqual([
      'EndpointSlice ns/orphan missing-service-name-label',
      'Service ns/bad-ip invalid-ip',
      'Service ns/half unknown-protocol',
    ]);
  });

  describe('node port clashes', () => {
    const nodePortService = (name: string, created: string, ports: { name: string; port: number; nodePort: number; protocol?: string }[]) =>
      makeService('ns', name, { type: 'NodePort', ports }, { creationTimestamp: new Date(created) });

    it('the older Service keeps the node port; the clashing port of the newer one loses only its node port', () => {
      const { state, skipped } = buildDesiredState({
        services: [
          nodePortService('newer', '2024-02-01T00:00:00Z', [
            { name: 'http', port: 80, nodePort: 30080 },
            { name: 'other', port: 81, nodePort: 30081 },
          ]),
          nodePortService('older', '2024-01-01T00:00:00Z', [{ name: 'http', port: 80, nodePort: 30080 }]),
          nodePortService('udp', '2023-01-01T00:00:00Z', [{ name: 'http', port: 80, nodePort: 30080, protocol: 'UDP' }]),
        ],
        endpointSlices: [],
        node,
      });
      expect([...state.servicePorts.keys()].sort()).toEqual(['ns/newer:http/TCP', 'ns/newer:other/TCP', 'ns/older:http/TCP', 'ns/udp:http/UDP']);
      expect(port(state, 'ns/newer:http/TCP')?.nodePort).toBe(0);
      expect(port(state, 'ns/newer:other/TCP')?.nodePort).toBe(30081);
      expect(port(state, 'ns/older:http/TCP')?.nodePort).toBe(30080);
      expect(skipped).toEqual([
        {
          kind: 'Service',
          namespace: 'ns',
          name: 'newer',
          reason: 'port-clash',
          detail: 'spec.ports[0].nodePort 30080/TCP is already used by ns/older; the port is programmed without it',
        },
      ]);
    });

    it('a tie on creation time goes to the lexically first ns/name', () => {
      const { state, skipped } = buildDesiredState({
        services: [
          nodePortService('zeta', '2024-01-01T00:00:00Z', [{ name: 'http', port: 80, nodePort: 30080 }]),
          nodePortService('alpha', '2024-01-01T00:00:00Z', [{ name: 'http', port: 80, nodePort: 30080 }]),
        ],
        endpointSlices: [],
        node,
      });
      expect(port(state, 'ns/alpha:http/TCP')?.nodePort).toBe(30080);
      expect(port(state, 'ns/zeta:http/TCP')?.nodePort).toBe(0);
      expect(skipped.map((entry) => entry.name)).toEqual(['zeta']);
    });
  });
});

describe('nodeInfoFromNode', () => {
  it('takes InternalIPs first, then ExternalIPs, IPv4 only, and the zone label', () => {
    const info = nodeInfoFromNode(
      {
        metadata: { name: 'ignored', labels: { 'topology.kubernetes.io/zone': 'zone-a', role: 'worker' } },
        status: {
          addresses: [
            { type: 'ExternalIP', address: '203.0.113.5' },
            { type: 'Hostname', address: 'node-a' },
            { type: 'InternalIP', address: 'fd00::5' },
            { type: 'InternalIP', address: '10.0.0.5' },
          ],
        },
      },
      { name: 'node-a' },
    );
    expect(info).toEqual({ name: 'node-a', ips: ['10.0.0.5', '203.0.113.5'], zone: 'zone-a', labels: { 'topology.kubernetes.io/zone': 'zone-a', role: 'worker' }, podCIDRs: [] });
  });

  it('reads the IPv4 pod CIDRs from spec.podCIDRs, else spec.podCIDR, normalised', () => {
    const withSpec = (spec: Record<string, unknown>): readonly string[] => nodeInfoFromNode({ metadata: { name: 'n' }, spec }, { name: 'n' }).podCIDRs;
    expect(withSpec({ podCIDR: '10.244.1.0/24', podCIDRs: ['fd00:10:244:1::/64', '10.244.1.7/24'] })).toEqual(['10.244.1.0/24']);
    expect(withSpec({ podCIDR: '10.244.2.0/24' })).toEqual(['10.244.2.0/24']);
    expect(withSpec({})).toEqual([]);
  });

  it('prefers configured IPs, and copes with no Node object', () => {
    expect(nodeInfoFromNode(undefined, { name: 'n', ips: ['10.1.1.1'] })).toEqual({ name: 'n', ips: ['10.1.1.1'], zone: undefined, labels: {}, podCIDRs: [] });
    expect(nodeInfoFromNode(undefined, { name: 'n' }).ips).toEqual([]);
  });
});
