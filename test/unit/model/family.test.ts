import { describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../../src/model/build.js';
import { nodeInfoFromNode } from '../../../src/model/node.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { defaultRenderContext } from '../../../src/render/types.js';
import { makeEndpoint, makeService, makeSlice } from './fixtures.js';

// The address family is a value of the model (one model per family, as upstream runs one proxier
// per family): the same objects give each family its own addresses and nothing of the other's.

const dualStack = makeService('ns', 'web', { type: 'NodePort', clusterIPs: ['10.96.0.10', 'fd00:96::10'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] });
const slices = [
  makeSlice('ns', 'web-v4', 'web', [makeEndpoint('10.244.1.5', { node: 'node-a' })], [{ name: 'http', port: 8080, protocol: 'TCP' }]),
  makeSlice('ns', 'web-v6', 'web', [makeEndpoint('fd00:244::5', { node: 'node-a' })], [{ name: 'http', port: 8080, protocol: 'TCP' }], { addressType: 'IPv6' }),
];
const nodeObject = {
  metadata: { name: 'node-a' },
  spec: { podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'] },
  status: { addresses: [{ type: 'InternalIP', address: '192.168.0.10' }, { type: 'InternalIP', address: 'fd00:1::10' }] },
};

describe('one model per address family', () => {
  it.each([
    ['IPv4', '10.96.0.10', '10.244.1.5', '192.168.0.10', '10.244.1.0/24'],
    ['IPv6', 'fd00:96::10', 'fd00:244::5', 'fd00:1::10', 'fd00:244:1::/64'],
  ] as const)('%s: cluster IPs, endpoints, node IPs and pod CIDRs of that family only', (family, clusterIP, endpointIP, nodeIP, podCIDR) => {
    const node = nodeInfoFromNode(nodeObject, { name: 'node-a', family });
    expect(node.ips).toEqual([nodeIP]);
    expect(node.podCIDRs).toEqual([podCIDR]);
    const { state, skipped } = buildDesiredState({ services: [dualStack], endpointSlices: slices, node, family });
    expect(skipped).toEqual([]);
    expect(state.family).toBe(family);
    const [servicePort] = [...state.servicePorts.values()];
    expect(servicePort?.clusterIPs).toEqual([clusterIP]);
    expect(servicePort?.reachableEndpoints.map((endpoint) => endpoint.ip)).toEqual([endpointIP]);
  });

  it('the renderer takes the family from the model: IPv6 NodePorts never answer on the loopback', () => {
    const node = nodeInfoFromNode(nodeObject, { name: 'node-a', family: 'IPv6' });
    const { state } = buildDesiredState({ services: [dualStack], endpointSlices: slices, node, family: 'IPv6' });
    const ruleSet = renderRuleSet(state, { ...defaultRenderContext, nodeIPs: node.ips });
    const trailer = ruleSet.sharedChains.find((chain) => chain.table === 'nat' && chain.name === 'KUBE-SERVICES')?.trailer ?? [];
    expect(trailer).toEqual([expect.stringContaining('-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS')]);
    // No localnet guard: route_localnet is IPv4 only.
    expect(ruleSet.staticChains.map((chain) => chain.name)).not.toContain('KUBE-FIREWALL');
    const v4 = buildDesiredState({ services: [dualStack], endpointSlices: slices, node: nodeInfoFromNode(nodeObject, { name: 'node-a' }) });
    const v4Trailer = renderRuleSet(v4.state, defaultRenderContext).sharedChains.find((chain) => chain.table === 'nat' && chain.name === 'KUBE-SERVICES')?.trailer ?? [];
    expect(v4Trailer).toEqual([expect.stringContaining('-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')]);
  });

  // kube-proxy does not read ipFamilyPolicy: the apiserver turns it into clusterIPs (and ipFamilies),
  // one per family, primary first; each proxier takes the cluster IP of its own family.
  const policies = [
    ['SingleStack IPv6', { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'], clusterIP: 'fd00:96::20', clusterIPs: ['fd00:96::20'] }, undefined, 'fd00:96::20'],
    ['PreferDualStack', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv4', 'IPv6'], clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20', 'fd00:96::20'] }, '10.96.0.20', 'fd00:96::20'],
    ['RequireDualStack, IPv6 primary', { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv6', 'IPv4'], clusterIP: 'fd00:96::20', clusterIPs: ['fd00:96::20', '10.96.0.20'] }, '10.96.0.20', 'fd00:96::20'],
    ['PreferDualStack on a single-stack IPv4 cluster', { ipFamilyPolicy: 'PreferDualStack', ipFamilies: ['IPv4'], clusterIP: '10.96.0.20', clusterIPs: ['10.96.0.20'] }, '10.96.0.20', undefined],
  ] as const;
  it.each(policies)('%s: each family proxies the cluster IP of its own family, or nothing', (_policy, spec, ipv4, ipv6) => {
    const service = makeService('ns', 'db', { ...spec, ipFamilies: [...spec.ipFamilies], clusterIPs: [...spec.clusterIPs], ports: [{ name: 'sql', port: 5432, protocol: 'TCP' }] });
    for (const [family, expected] of [['IPv4', ipv4], ['IPv6', ipv6]] as const) {
      const node = nodeInfoFromNode(nodeObject, { name: 'node-a', family });
      const { state, skipped } = buildDesiredState({ services: [service], endpointSlices: [], node, family });
      expect(skipped).toEqual([]);
      expect([...state.servicePorts.values()].map((servicePort) => servicePort.clusterIPs)).toEqual(expected === undefined ? [] : [[expected]]);
    }
  });

  it('splits externalIPs, load-balancer ingress IPs and source ranges by family, and ignores FQDN slices', () => {
    const service = makeService(
      'ns',
      'edge',
      {
        type: 'LoadBalancer',
        ipFamilyPolicy: 'RequireDualStack',
        clusterIPs: ['10.96.0.30', 'fd00:96::30'],
        externalIPs: ['192.0.2.7', '2001:db8::7'],
        loadBalancerSourceRanges: ['198.51.100.0/24', '2001:db8:1::/48'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30090 }],
      },
      { loadBalancerIngress: [{ ip: '203.0.113.9' }, { ip: '2001:db8:2::9' }, { hostname: 'lb.example' }] },
    );
    const fqdn = makeSlice('ns', 'edge-fqdn', 'edge', [{ addresses: ['backend.example'] }], undefined, { addressType: 'FQDN' });
    const expected = {
      IPv4: { externalIPs: ['192.0.2.7'], loadBalancerIPs: ['203.0.113.9'], loadBalancerSourceRanges: ['198.51.100.0/24'] },
      IPv6: { externalIPs: ['2001:db8::7'], loadBalancerIPs: ['2001:db8:2::9'], loadBalancerSourceRanges: ['2001:db8:1::/48'] },
    } as const;
    for (const family of ['IPv4', 'IPv6'] as const) {
      const node = nodeInfoFromNode(nodeObject, { name: 'node-a', family });
      const { state, skipped } = buildDesiredState({ services: [service], endpointSlices: [fqdn], node, family });
      expect(skipped).toEqual([]);
      const [servicePort] = [...state.servicePorts.values()];
      expect(servicePort).toMatchObject(expected[family]);
    }
  });
});
