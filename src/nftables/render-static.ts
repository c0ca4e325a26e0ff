// The part of kube-proxy's nftables ruleset that belongs to no Service: base chains, the jumps
// into the top-level chains, masquerading, the no-endpoint / firewall / dispatch checks and the
// shared maps and sets (upstream's setupNFTables). Pure.

import type { NftChain, NftContainer, NftContext, NftElement } from './types.js';
import { BASE_CHAINS, CHAIN, JUMP_CHAINS, MAP, SET, type NftFamily } from './vocabulary.js';

export interface StaticPart {
  readonly chains: readonly NftChain[];
  readonly containers: readonly NftContainer[];
  readonly elements: readonly NftElement[];
}

export function renderStatic(family: NftFamily, context: NftContext): StaticPart {
  const ip = family.table;
  const serviceKey = `${family.addressType} . inet_proto . inet_service : verdict`;
  const nodePortKey = 'inet_proto . inet_service : verdict';
  const matchAllNodePorts = context.nodePortIPs === 'all';

  const containers: NftContainer[] = [
    { kind: 'set', name: SET.clusterIPs, type: family.addressType, comment: 'Active ClusterIPs' },
    ...(matchAllNodePorts ? [] : [{ kind: 'set', name: SET.nodePortIPs, type: family.addressType, comment: 'IPs that accept NodePort traffic' } as const]),
    { kind: 'map', name: MAP.noEndpointServices, type: serviceKey, comment: 'vmap to drop or reject packets to services with no endpoints' },
    { kind: 'map', name: MAP.noEndpointNodePorts, type: nodePortKey, comment: 'vmap to drop or reject packets to service nodeports with no endpoints' },
    { kind: 'map', name: MAP.firewallIPs, type: serviceKey, comment: 'destinations that are subject to LoadBalancerSourceRanges' },
    { kind: 'map', name: MAP.serviceIPs, type: serviceKey, comment: 'ClusterIP, ExternalIP and LoadBalancer IP traffic' },
    { kind: 'map', name: MAP.serviceNodePorts, type: nodePortKey, comment: 'NodePort traffic' },
  ];

  const rules = new Map<string, string[]>();
  const add = (chain: string, rule: string): void => {
    let list = rules.get(chain);
    if (list === undefined) rules.set(chain, (list = []));
    list.push(rule);
  };
  for (const jump of JUMP_CHAINS) add(jump.from, jump.match === '' ? `jump ${jump.to}` : `${jump.match} jump ${jump.to}`);
  add(CHAIN.markMasquerade, `mark set mark or ${context.masqueradeMark}`);
  add(CHAIN.masquerading, `mark and ${context.masqueradeMark} == 0 return`);
  add(CHAIN.masquerading, `mark set mark xor ${context.masqueradeMark}`);
  add(CHAIN.masquerading, 'masquerade fully-random');
  add(CHAIN.clusterIPsCheck, `${ip} daddr @${SET.clusterIPs} reject comment "Reject traffic to invalid ports of ClusterIPs"`);
  if (context.serviceCIDRs.length > 0) {
    add(CHAIN.clusterIPsCheck, `${ip} daddr { ${context.serviceCIDRs.join(', ')} } drop comment "Drop traffic to unallocated ClusterIPs"`);
  }
  add(CHAIN.reject, 'reject');
  add(CHAIN.serviceEndpointsCheck, `${ip} daddr . meta l4proto . th dport vmap @${MAP.noEndpointServices}`);
  const nodePortMatch = matchAllNodePorts ? family.noLocalhost : `${ip} daddr @${SET.nodePortIPs}`;
  add(CHAIN.nodePortEndpointsCheck, `${nodePortMatch} meta l4proto . th dport vmap @${MAP.noEndpointNodePorts}`);
  add(CHAIN.firewallCheck, `${ip} daddr . meta l4proto . th dport vmap @${MAP.firewallIPs}`);
  add(CHAIN.services, `${ip} daddr . meta l4proto . th dport vmap @${MAP.serviceIPs}`);
  add(
    CHAIN.services,
    matchAllNodePorts
      ? `fib daddr type local ${family.noLocalhost} meta l4proto . th dport vmap @${MAP.serviceNodePorts}`
      : `${ip} daddr @${SET.nodePortIPs} meta l4proto . th dport vmap @${MAP.serviceNodePorts}`,
  );

  // Regular chains first: a base chain's rules jump into them.
  const regular = [
    CHAIN.nodePortEndpointsCheck,
    CHAIN.serviceEndpointsCheck,
    CHAIN.firewallCheck,
    CHAIN.services,
    CHAIN.masquerading,
    CHAIN.clusterIPsCheck,
    CHAIN.markMasquerade,
    CHAIN.reject,
  ];
  const chains: NftChain[] = [
    ...regular.map((name) => ({
      name,
      ...(name === CHAIN.reject ? { comment: 'helper for @no-endpoint-services / @no-endpoint-nodeports' } : {}),
      rules: rules.get(name) ?? [],
    })),
    ...BASE_CHAINS.map((base) => ({ name: base.name, base, rules: rules.get(base.name) ?? [] })),
  ];

  const elements: NftElement[] = matchAllNodePorts
    ? []
    : (context.nodePortIPs as readonly string[]).map((address) => ({ container: SET.nodePortIPs, key: address }));
  return { chains, containers, elements };
}
