// NodePorts, external IPs, load balancers and external traffic policy, checked against the
// expected output of the equivalent upstream proxier_test.go cases (TestNodePort,
// TestLoadBalancer, TestHealthCheckNodePort, TestNonLocalExternalIPs,
// TestExternalTrafficPolicyLocal, Test{En,Dis}ableLocalhostNodePortsIPv4*).
import { describe, expect, it } from 'vitest';
import { nodePortAddressesAllowLoopback } from '../../../src/render/static.js';
import { localTrafficFromBridge, localTrafficFromInterfacePrefix } from '../../../src/render/types.js';
import { chainNames, endpoint, expectUpstream, lines, render, renderOne, servicePort, testContext } from './fixtures.js';

const filterHead = (kubeletFirewall: boolean): string => `
*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
${kubeletFirewall ? ':KUBE-FIREWALL - [0:0]\n-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP' : ''}
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`;

const natHead = `
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE`;

const nodePortsTrailer =
  '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS';

describe('NodePort', () => {
  it('matches upstream TestNodePort', () => {
    const sp = servicePort({ nodePort: 3001, endpoints: [endpoint('10.180.0.1')] });
    expectUpstream(
      render([sp]),
      `${filterHead(true)}
COMMIT
${natHead}
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
${nodePortsTrailer}
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT`,
    );
  });

  it('with localhostNodePorts off: keeps 127.0.0.0/8 out of KUBE-NODEPORTS and drops the KUBE-FIREWALL copy (TestDisableLocalhostNodePortsIPv4)', () => {
    const sp = servicePort({
      clusterIP: '10.69.0.10',
      nodePort: 30001,
      externalTrafficPolicy: 'Local',
      endpoints: [endpoint('10.244.0.1'), endpoint('10.244.2.1', { isLocal: true })],
    });
    expectUpstream(
      render([sp], { ...testContext, localTraffic: undefined, localhostNodePorts: false }),
      `${filterHead(false)}
COMMIT
${natHead}
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SEP-6KG6DFHVBKBK53RU - [0:0]
:KUBE-SEP-KDGX2M2ONE25PSWH - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 10.69.0.10 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O
-A KUBE-SEP-6KG6DFHVBKBK53RU -m comment --comment ns1/svc1:p80 -s 10.244.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-6KG6DFHVBKBK53RU -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.244.0.1:80
-A KUBE-SEP-KDGX2M2ONE25PSWH -m comment --comment ns1/svc1:p80 -s 10.244.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-KDGX2M2ONE25PSWH -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.244.2.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.244.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-6KG6DFHVBKBK53RU
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.244.2.1:80" -j KUBE-SEP-KDGX2M2ONE25PSWH
-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.244.2.1:80" -j KUBE-SEP-KDGX2M2ONE25PSWH
COMMIT`,
    );
  });
});

describe('nodePortAddresses', () => {
  const trailer = (ctx: Partial<typeof testContext>) =>
    render([], { ...testContext, ...ctx }).sharedChains.find((chain) => chain.table === 'nat' && chain.name === 'KUBE-SERVICES')?.trailer;
  const comment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';

  it('empty: every local address', () => {
    expect(trailer({})).toEqual([`${comment} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`]);
  });

  it("CIDRs: one rule per node IP inside them, and localhost NodePorts (KUBE-FIREWALL's rule) off", () => {
    const ctx = { nodePortAddresses: ['192.168.0.0/24'], nodeIPs: ['192.168.0.2', '10.9.9.9', '192.168.0.3'] };
    expect(trailer(ctx)).toEqual([
      `${comment} -d 192.168.0.2 -j KUBE-NODEPORTS`,
      `${comment} -d 192.168.0.3 -j KUBE-NODEPORTS`,
    ]);
    const ruleSet = render([], { ...testContext, ...ctx });
    expect(ruleSet.staticChains.map((chain) => chain.name)).not.toContain('KUBE-FIREWALL');
    // kubelet's chain is still made sure of, with its jumps, as kube-proxy does; never flushed.
    expect(ruleSet.ensuredChains).toEqual([{ table: 'filter', name: 'KUBE-FIREWALL' }]);
    expect(ruleSet.jumps.filter((jump) => jump.rule === '-j KUBE-FIREWALL').map((jump) => jump.chain).sort()).toEqual(['INPUT', 'OUTPUT']);
  });

  it('"primary" means the node IPs; IPv6-only CIDRs mean every address, as for the IPv4 proxier', () => {
    expect(trailer({ nodePortAddresses: ['primary'] })).toEqual([`${comment} -d 192.168.0.2 -j KUBE-NODEPORTS`]);
    expect(trailer({ nodePortAddresses: ['fd00::/64'] })).toEqual([`${comment} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`]);
  });

  it("localhost NodePorts follow upstream's ContainsIPv4Loopback: a CIDR inside 127.0.0.0/8 or containing it", () => {
    const firewall = (cidrs: string[]): boolean =>
      render([], { ...testContext, nodePortAddresses: cidrs }).staticChains.some((chain) => chain.name === 'KUBE-FIREWALL');
    expect(firewall(['127.0.0.2/32'])).toBe(true);
    expect(firewall(['64.0.0.0/2'])).toBe(true);
    expect(firewall(['192.168.0.0/24', '127.0.0.0/8'])).toBe(true);
    expect(firewall(['10.0.0.0/8'])).toBe(false);
    expect(firewall(['primary'])).toBe(false);
    // 127.0.0.2/32 turns them on, yet 127.0.0.1 (the loopback address a node has) is not inside it.
    expect(trailer({ nodePortAddresses: ['127.0.0.2/32'] })).toEqual([]);
    expect(nodePortAddressesAllowLoopback([])).toBe(true);
    expect(nodePortAddressesAllowLoopback(['127.0.0.2/32'])).toBe(true);
    expect(nodePortAddressesAllowLoopback(['128.0.0.0/1'])).toBe(false);
  });

  it('127.0.0.0/8 with localhost NodePorts off yields no rule at all (TestDisableLocalhostNodePortsIPv4WithNodeAddress)', () => {
    expect(trailer({ nodePortAddresses: ['127.0.0.0/8'], localhostNodePorts: false })).toEqual([]);
  });

  it('matches upstream TestHealthCheckNodePort: 127.0.0.0/8, no endpoints, health check port still accepted', () => {
    const sp = servicePort({
      clusterIP: '172.30.0.42',
      nodePort: 3001,
      healthCheckNodePort: 30000,
      externalTrafficPolicy: 'Local',
    });
    expectUpstream(
      render([sp], { ...testContext, nodePortAddresses: ['127.0.0.0/8'] }),
      `${filterHead(true)}
-A KUBE-NODEPORTS -m comment --comment "ns1/svc1:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT
COMMIT
${natHead}
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 127.0.0.1 -j KUBE-NODEPORTS
COMMIT`,
    );
  });
});

describe('external IPs', () => {
  it('matches upstream TestNonLocalExternalIPs (Cluster policy: masquerade, any endpoint)', () => {
    const sp = servicePort({
      externalIPs: ['192.168.99.11'],
      endpoints: [endpoint('10.180.0.1'), endpoint('10.180.2.1', { isLocal: true })],
    });
    expectUpstream(
      render([sp]),
      `${filterHead(true)}
COMMIT
${natHead}
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-ZX7GRIZKSNUQ3LAJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 external IP" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O
${nodePortsTrailer}
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -s 10.180.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.2.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
COMMIT`,
    );
  });
});

describe('LoadBalancer', () => {
  it('matches upstream TestLoadBalancer: source ranges in KUBE-FW-, the node allowed via its LB IPs, the rest dropped in filter', () => {
    const sp = servicePort({
      nodePort: 3001,
      loadBalancerIPs: ['1.2.3.4', '5.6.7.8'],
      loadBalancerSourceRanges: ['192.168.0.0/24', '203.0.113.0/25'],
      endpoints: [endpoint('10.180.0.1')],
    });
    expectUpstream(
      render([sp]),
      `${filterHead(true)}
-A KUBE-PROXY-FIREWALL -m comment --comment "ns1/svc1:p80 traffic not accepted by KUBE-FW-XPGD46QRK7WJZT7O" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-PROXY-FIREWALL -m comment --comment "ns1/svc1:p80 traffic not accepted by KUBE-FW-XPGD46QRK7WJZT7O" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
${natHead}
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-FW-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-FW-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-XPGD46QRK7WJZT7O
${nodePortsTrailer}
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 192.168.0.0/24 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 1.2.3.4 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 5.6.7.8 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-FW-XPGD46QRK7WJZT7O -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT`,
    );
  });

  it('without source ranges: LB IPs jump straight to KUBE-EXT-, no KUBE-FW- and no firewall drop', () => {
    const rules = renderOne(servicePort({ nodePort: 3001, loadBalancerIPs: ['1.2.3.4'], endpoints: [endpoint('10.180.0.1')] }));
    expect(chainNames(rules)).toEqual(['KUBE-SVC-XPGD46QRK7WJZT7O', 'KUBE-EXT-XPGD46QRK7WJZT7O', 'KUBE-SEP-SXIVWICOYRO3J4NJ']);
    expect(lines(rules, 'nat')).toContain(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O',
    );
    expect(lines(rules, 'filter')).toEqual([]);
  });

  it('source ranges not containing the node IP: no rules for the LB IPs as sources', () => {
    const rules = renderOne(
      servicePort({ loadBalancerIPs: ['1.2.3.4'], loadBalancerSourceRanges: ['203.0.113.0/25'], endpoints: [endpoint('10.180.0.1')] }),
    );
    expect(rules.chains.find((chain) => chain.name.startsWith('KUBE-FW-'))?.rules).toEqual([
      '-m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-XPGD46QRK7WJZT7O',
      '-m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"',
    ]);
  });

  it('without endpoints: REJECT on every address, no nat rules and no firewall chain (as upstream TestNoEndpointsReject)', () => {
    const rules = renderOne(
      servicePort({
        nodePort: 3001,
        externalIPs: ['192.168.99.11'],
        loadBalancerIPs: ['1.2.3.4'],
        loadBalancerSourceRanges: ['203.0.113.0/25'],
      }),
    );
    expect(rules.chains).toEqual([]);
    expect(lines(rules, 'nat')).toEqual([]);
    expect(lines(rules, 'filter')).toEqual([
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT',
    ]);
  });
});

describe('externalTrafficPolicy Local', () => {
  it('matches upstream TestExternalTrafficPolicyLocal: short-circuit pod and host traffic, the rest to KUBE-SVL-', () => {
    const sp = servicePort({
      nodePort: 3001,
      healthCheckNodePort: 30000,
      externalIPs: ['192.168.99.11'],
      loadBalancerIPs: ['1.2.3.4'],
      externalTrafficPolicy: 'Local',
      endpoints: [endpoint('10.180.0.1'), endpoint('10.180.2.1', { isLocal: true })],
    });
    expectUpstream(
      render([sp]),
      `${filterHead(true)}
-A KUBE-NODEPORTS -m comment --comment "ns1/svc1:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
COMMIT
${natHead}
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-ZX7GRIZKSNUQ3LAJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 external IP" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O
${nodePortsTrailer}
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -s 10.180.2.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.2.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
COMMIT`,
    );
  });

  it('without local endpoints: keeps the short-circuit, has no final jump, DROPs outside traffic in filter', () => {
    const rules = renderOne(
      servicePort({
        nodePort: 3001,
        loadBalancerIPs: ['1.2.3.4'],
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 30000,
        endpoints: [endpoint('10.180.0.1')],
      }),
    );
    expect(chainNames(rules)).toEqual(['KUBE-SVC-XPGD46QRK7WJZT7O', 'KUBE-EXT-XPGD46QRK7WJZT7O', 'KUBE-SEP-SXIVWICOYRO3J4NJ']);
    expect(rules.chains[1]?.rules).toEqual([
      '-m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O',
      '-m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
      '-m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O',
    ]);
    expect(lines(rules, 'filter')).toEqual([
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP',
      '-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP',
      '-A KUBE-NODEPORTS -m comment --comment "ns1/svc1:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT',
    ]);
  });

  it('detects pod traffic by interface when told to: the short-circuit and the cluster IP masquerade use -i', () => {
    const sp = servicePort({ nodePort: 3001, externalTrafficPolicy: 'Local', endpoints: [endpoint('10.180.0.1'), endpoint('10.180.2.1', { isLocal: true })] });
    const rules = renderOne(sp, { ...testContext, localTraffic: localTrafficFromInterfacePrefix('veth') });
    expect(rules.chains[0]?.rules[0]).toBe('-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -i veth+ -j KUBE-MARK-MASQ');
    expect(rules.chains.find((chain) => chain.name.startsWith('KUBE-EXT-'))?.rules[0]).toBe(
      '-m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -i veth+ -j KUBE-SVC-XPGD46QRK7WJZT7O',
    );
    const bridged = renderOne(sp, { ...testContext, localTraffic: localTrafficFromBridge('cni0') });
    expect(bridged.chains[0]?.rules[0]).toContain('--dport 80 ! -i cni0 -j KUBE-MARK-MASQ');
    // masqueradeAll: every packet to the cluster IP, whatever its source.
    const all = renderOne(sp, { ...testContext, masqueradeAll: true });
    expect(all.chains[0]?.rules[0]).toBe('-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ');
  });

  it('with internalTrafficPolicy Local too: cluster IP and external traffic both use KUBE-SVL-', () => {
    const rules = renderOne(
      servicePort({
        nodePort: 3001,
        externalTrafficPolicy: 'Local',
        internalTrafficPolicy: 'Local',
        endpoints: [endpoint('10.180.0.1'), endpoint('10.180.2.1', { isLocal: true })],
      }),
    );
    expect(chainNames(rules).slice(0, 3)).toEqual(['KUBE-SVC-XPGD46QRK7WJZT7O', 'KUBE-SVL-XPGD46QRK7WJZT7O', 'KUBE-EXT-XPGD46QRK7WJZT7O']);
    expect(rules.chains[1]?.rules[0]).toContain('-d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ');
    expect(rules.chains[0]?.rules[0]).not.toContain('KUBE-MARK-MASQ');
    expect(lines(rules, 'nat')).toContain(
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVL-XPGD46QRK7WJZT7O',
    );
  });
});
