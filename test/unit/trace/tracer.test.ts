import { describe, expect, it } from 'vitest';

import type { SavedTables } from '../../../src/trace/tables.js';
import { describeOutcome, trace, type TracePacket, type TraceResult } from '../../../src/trace/tracer.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';

// A kube-proxy-shaped rule set (modelled on upstream's expected iptables output), cluster CIDR
// 10.0.0.0/8, node IP 192.168.0.2:
//   ns1/svc1 ClusterIP 172.30.0.41:80 -> 10.180.0.1:80
//   ns2/svc2 LoadBalancer, externalTrafficPolicy Local, no local endpoints; externalIP 192.168.99.22, LB 1.2.3.4, NodePort 3001
//   ns3/svc3 NodePort 3003 -> 10.180.0.3:80
//   ns4/svc4 ClusterIP 172.30.0.44 + externalIP 192.168.99.33 -> 10.180.0.4:80, 10.180.0.5:80
//   ns5/svc5 LoadBalancer 5.6.7.8 (source range 203.0.113.0/25), ClientIP affinity, NodePort 3002 -> 10.180.0.3:80
//   ns6/svc6 ClusterIP 172.30.0.46 without endpoints
//   ns7/svc7 ClusterIP 172.30.0.47 -> three endpoints 10.180.1.1-3:8080
const ruleSet = `
*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
:KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SEP-SEVEN00000000001 - [0:0]
:KUBE-SEP-SEVEN00000000002 - [0:0]
:KUBE-SEP-SEVEN00000000003 - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SVC-SEVEN00000000000 - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SEP-SEVEN00000000001 -s 10.180.1.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SEVEN00000000001 -m tcp -p tcp -j DNAT --to-destination 10.180.1.1:8080
-A KUBE-SEP-SEVEN00000000002 -s 10.180.1.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-SEVEN00000000002 -m tcp -p tcp -j DNAT --to-destination 10.180.1.2:8080
-A KUBE-SEP-SEVEN00000000003 -s 10.180.1.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-SEVEN00000000003 -m tcp -p tcp -j DNAT --to-destination 10.180.1.3:8080
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-SEVEN00000000000 -m tcp -p tcp -d 172.30.0.47 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-SEVEN00000000000 -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-SEVEN00000000001
-A KUBE-SVC-SEVEN00000000000 -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SEVEN00000000002
-A KUBE-SVC-SEVEN00000000000 -j KUBE-SEP-SEVEN00000000003
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns7/svc7:p80 cluster IP" -m tcp -p tcp -d 172.30.0.47 --dport 80 -j KUBE-SVC-SEVEN00000000000
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
`;

const nodeIP = '192.168.0.2';

/** The payload restored into the fake, read back as the tracer reads a node: iptables-save text. */
function loadedFake(payload = ruleSet): SavedTables {
  const fake = new FakeNetfilter();
  const result = fake.restoreSync(payload, { noFlush: false });
  expect(result).toEqual({ ok: true });
  return fake.savedTables();
}

function packet(overrides: Partial<TracePacket> & Pick<TracePacket, 'source' | 'destination' | 'destinationPort'>): TracePacket {
  return { protocol: 'TCP', origin: 'outside', localAddresses: [nodeIP], ...overrides };
}

const described = (result: TraceResult): string[] => result.outcomes.map(describeOutcome).sort();

describe('trace over a kube-proxy-shaped rule set', () => {
  const fake = loadedFake();

  it.each([
    // [name, packet, outcomes]
    ['ClusterIP from a pod: every endpoint, no masquerade', { source: '10.0.0.2', destination: '172.30.0.44', origin: 'pod' }, ['ACCEPT 10.180.0.4:80', 'ACCEPT 10.180.0.5:80']],
    ['ClusterIP from off the cluster CIDR: masquerade', { source: '192.168.1.9', destination: '172.30.0.41' }, ['ACCEPT 10.180.0.1:80 masquerade']],
    ['ClusterIP without endpoints: REJECT', { source: '10.0.0.2', destination: '172.30.0.46', origin: 'pod' }, ['REJECT']],
    ['ClusterIP, wrong port: untouched', { source: '10.0.0.2', destination: '172.30.0.41', destinationPort: 81, origin: 'pod' }, ['ACCEPT']],
    ['hairpin: an endpoint reaching itself is masqueraded', { source: '10.180.0.1', destination: '172.30.0.41', origin: 'pod' }, ['ACCEPT 10.180.0.1:80 masquerade']],
    ['NodePort on the node IP (addrtype LOCAL)', { source: '203.0.113.9', destination: nodeIP, destinationPort: 3003 }, ['ACCEPT 10.180.0.3:80 masquerade']],
    ['NodePort on another address: untouched', { source: '203.0.113.9', destination: '192.168.0.3', destinationPort: 3003 }, ['ACCEPT']],
    ['externalIP, Cluster policy: masquerade', { source: '203.0.113.9', destination: '192.168.99.33' }, ['ACCEPT 10.180.0.4:80 masquerade', 'ACCEPT 10.180.0.5:80 masquerade']],
    ['externalIP, Local policy without local endpoints: DROP', { source: '203.0.113.9', destination: '192.168.99.22' }, ['DROP']],
    ['externalIP, Local policy, from a pod: short-circuit to the service', { source: '10.0.0.2', destination: '192.168.99.22', origin: 'pod' }, ['ACCEPT 10.180.0.2:80']],
    ['NodePort, Local policy without local endpoints: DROP', { source: '203.0.113.9', destination: nodeIP, destinationPort: 3001 }, ['DROP']],
    ['load balancer IP from an allowed source range', { source: '203.0.113.1', destination: '5.6.7.8' }, ['ACCEPT 10.180.0.3:80 masquerade', 'ACCEPT 10.180.0.3:80 masquerade']],
    ['load balancer IP from outside the source ranges: DROP', { source: '198.51.100.1', destination: '5.6.7.8' }, ['DROP']],
    ['health check node port is accepted on the node', { source: '203.0.113.9', destination: nodeIP, destinationPort: 30000 }, ['ACCEPT']],
    ['UDP to a TCP service: untouched', { source: '10.0.0.2', destination: '172.30.0.41', protocol: 'UDP', origin: 'pod' }, ['ACCEPT']],
  ] as const)('%s', (_, fields, expected) => {
    const result = trace(fake, packet({ destinationPort: 80, ...fields }));
    expect(described(result)).toEqual([...expected].sort());
  });

  it('spreads a ClusterIP evenly over its endpoints', () => {
    const result = trace(fake, packet({ source: '10.0.0.2', destination: '172.30.0.47', destinationPort: 80, origin: 'pod' }));
    const byEndpoint = new Map(result.outcomes.map((outcome) => [outcome.dnat?.ip, outcome.probability]));
    expect([...byEndpoint.keys()].sort()).toEqual(['10.180.1.1', '10.180.1.2', '10.180.1.3']);
    for (const probability of byEndpoint.values()) expect(probability).toBeCloseTo(1 / 3, 6);
    expect(result.outcomes.every((outcome) => outcome.dnat?.port === 8080 && !outcome.masquerade)).toBe(true);
  });

  it('records the chains each outcome went through', () => {
    const [outcome] = trace(fake, packet({ source: '192.168.1.9', destination: '172.30.0.41', destinationPort: 80 })).outcomes;
    expect(outcome?.path).toEqual([
      'nat/PREROUTING',
      'nat/KUBE-SERVICES',
      'nat/KUBE-SVC-XPGD46QRK7WJZT7O',
      'nat/KUBE-MARK-MASQ',
      'nat/KUBE-SEP-SXIVWICOYRO3J4NJ',
      'filter/FORWARD',
      'filter/KUBE-PROXY-FIREWALL',
      'filter/KUBE-FORWARD',
      'nat/POSTROUTING',
      'nat/KUBE-POSTROUTING',
    ]);
    // KUBE-POSTROUTING clears the masquerade bit before MASQUERADE.
    expect(outcome?.mark).toBe(0);
  });

  it('explores session affinity both ways unless the recent state is given', () => {
    const flow = packet({ source: '10.0.0.2', destination: '172.30.0.45', destinationPort: 80, origin: 'pod' });
    const both = trace(fake, flow);
    expect(both.outcomes.map((outcome) => outcome.assumptions)).toEqual([
      ['recent KUBE-SEP-I77PXRDZVX7PMWMN: hit'],
      ['recent KUBE-SEP-I77PXRDZVX7PMWMN: miss'],
    ]);
    expect(described(both)).toEqual(['ACCEPT 10.180.0.3:80', 'ACCEPT 10.180.0.3:80']);
    const known = trace(fake, flow, { recentState: { 'KUBE-SEP-I77PXRDZVX7PMWMN': true } });
    expect(known.outcomes).toHaveLength(1);
    expect(known.outcomes[0]?.assumptions).toEqual([]);
    expect(trace(fake, flow, { recentState: false }).outcomes).toHaveLength(1);
  });

  it('walks nat OUTPUT and filter OUTPUT for traffic from the node itself', () => {
    const result = trace(fake, packet({ source: nodeIP, destination: '172.30.0.41', destinationPort: 80, origin: 'node' }));
    expect(described(result)).toEqual(['ACCEPT 10.180.0.1:80 masquerade']);
    expect(result.outcomes[0]?.path.slice(0, 2)).toEqual(['nat/OUTPUT', 'nat/KUBE-SERVICES']);
    expect(result.outcomes[0]?.path).toContain('filter/OUTPUT');
  });

  it('handles localhost NodePorts from the node (addrtype --src-type LOCAL)', () => {
    const result = trace(fake, packet({ source: '127.0.0.1', destination: '127.0.0.1', destinationPort: 3001, origin: 'node' }));
    expect(described(result)).toEqual(['ACCEPT 10.180.0.2:80 masquerade']);
  });

  it('delivers traffic for the node to filter INPUT and never to POSTROUTING', () => {
    const result = trace(fake, packet({ source: '203.0.113.9', destination: nodeIP, destinationPort: 22 }));
    expect(described(result)).toEqual(['ACCEPT']);
    expect(result.outcomes[0]?.path).toContain('filter/INPUT');
    expect(result.outcomes[0]?.path).not.toContain('nat/POSTROUTING');
  });
});

describe('trace semantics', () => {
  it('follows goto, RETURN, MARK arithmetic and chain policies', () => {
    const fake = loadedFake(`
*nat
:KUBE-GOTO - [0:0]
:KUBE-INNER - [0:0]
-A PREROUTING -g KUBE-GOTO
-A PREROUTING -j DNAT --to-destination 10.9.9.9:1
-A KUBE-GOTO -j KUBE-INNER
-A KUBE-GOTO -m mark --mark 0x3/0xf -j RETURN
-A KUBE-GOTO -j DNAT --to-destination 10.9.9.9:2
-A KUBE-INNER -j MARK --set-xmark 0x1/0xff
-A KUBE-INNER -j MARK --or-mark 0x2
-A KUBE-INNER -j RETURN
-A KUBE-INNER -j MARK --or-mark 0x100
COMMIT
*filter
:FORWARD DROP [0:0]
COMMIT
`);
    // The goto's RETURN skips the rest of PREROUTING; FORWARD's DROP policy decides.
    const result = trace(fake, packet({ source: '10.0.0.2', destination: '10.1.1.1', destinationPort: 80, origin: 'pod' }), { mark: 0xf0 });
    expect(described(result)).toEqual(['DROP']);
    expect(result.outcomes[0]?.mark).toBe(0x3);
    expect(result.outcomes[0]?.path).toEqual(['nat/PREROUTING', 'nat/KUBE-GOTO', 'nat/KUBE-INNER', 'filter/FORWARD']);
  });

  it('matches negated addresses, interfaces and IPv6', () => {
    const fake = loadedFake(`
*filter
-A FORWARD -i eth+ ! -s 10.0.0.0/8 -j REJECT
-A FORWARD -d fd00::/64 -j DROP
COMMIT
`);
    const forward = (fields: Partial<TracePacket>): string[] =>
      described(trace(fake, packet({ source: '192.0.2.1', destination: '10.2.2.2', destinationPort: 80, ...fields })));
    expect(forward({ inInterface: 'eth0' })).toEqual(['REJECT']);
    expect(forward({ inInterface: 'cni0' })).toEqual(['ACCEPT']);
    expect(forward({ inInterface: 'eth0', source: '10.1.1.1' })).toEqual(['ACCEPT']);
    expect(forward({ inInterface: 'cni0', source: 'fd00:1::1', destination: 'fd00::5' })).toEqual(['DROP']);
    // No interface given: `-i eth+` is unknown, explored both ways.
    const unknown = trace(fake, packet({ source: '192.0.2.1', destination: '10.2.2.2', destinationPort: 80 }));
    expect(described(unknown)).toEqual(['ACCEPT', 'REJECT']);
    expect(unknown.outcomes.find((outcome) => outcome.verdict === 'REJECT')?.assumptions).toEqual([
      "filter FORWARD #1 '-i eth+' matches (undecidable here: the input interface was not given)",
    ]);
  });

  it('rewrites IPv6 destinations and compares compressed and expanded forms alike', () => {
    const fake = loadedFake(`
*nat
-A PREROUTING -d fd00:0:0:0:0:0:0:1/128 -p udp -m udp --dport 53 -j DNAT --to-destination [fd00::10]:5353
-A PREROUTING -d ::ffff:192.0.2.0/120 -j DNAT --to-destination fd00::20
COMMIT
`);
    const udp = trace(fake, packet({ source: 'fd00::99', destination: 'fd00::1', destinationPort: 53, protocol: 'UDP' }));
    expect(described(udp)).toEqual(['ACCEPT [fd00::10]:5353']);
    const mapped = trace(fake, packet({ source: 'fd00::99', destination: '::ffff:192.0.2.7', destinationPort: 80 }));
    expect(described(mapped)).toEqual(['ACCEPT [fd00::20]:80']);
  });

  it('refuses addresses that are not IPs', () => {
    const fake = loadedFake('*filter\nCOMMIT\n');
    expect(() => trace(fake, packet({ source: 'nope', destination: '10.1.1.1', destinationPort: 80 }))).toThrow(/not an IP/);
  });
});
