// Per-rule drift in nftables mode, pure: nft's listing read back into chains, its spelling brought
// to ours, and each kind of difference named.

import { describe, expect, it } from 'vitest';
import { canonicalRule, findRuleDrift, listedChains } from '../../../src/nftables/drift.js';
import type { NftRuleset } from '../../../src/nftables/types.js';
import { nftFamily } from '../../../src/nftables/vocabulary.js';

const listing = `table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs"
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
	}
	chain masquerading {
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
	chain service-X-ns/a/tcp/p {
		ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-A, 1 : goto endpoint-B }
	}
	chain firewall-X-ns/a/tcp/p {
		ip saddr != { 10.1.0.0-10.2.255.255, 192.0.2.0/24 } drop
	}
}
`;

function ruleset(chains: Record<string, string[]>): NftRuleset {
  return {
    family: nftFamily('IPv4'),
    staticChains: Object.entries(chains).map(([name, rules]) => ({ name, rules })),
    containers: [],
    staticElements: [],
    servicePorts: new Map(),
  };
}

const applied = {
  masquerading: ['mark and 0x4000 == 0 return', 'mark set mark xor 0x4000', 'masquerade fully-random'],
  'nat-prerouting': ['jump services'],
  'service-X-ns/a/tcp/p': [
    'ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade',
    'numgen random mod 2 vmap { 0 : goto endpoint-A , 1 : goto endpoint-B }',
  ],
  // Adjacent /16s merged by nft into one range, the elements sorted.
  'firewall-X-ns/a/tcp/p': ['ip saddr != { 192.0.2.0/24 , 10.2.0.0/16 , 10.1.0.0/16 } drop'],
};

describe('nftables rule drift', () => {
  it('reads every chain of a terse listing, without the hook line, sets or maps', () => {
    const chains = listedChains(listing);
    expect([...chains.keys()]).toEqual(['masquerading', 'nat-prerouting', 'service-X-ns/a/tcp/p', 'firewall-X-ns/a/tcp/p']);
    expect(chains.get('nat-prerouting')).toEqual(['jump services']);
  });

  it("nft's spelling of the rules we wrote is no drift", () => {
    expect(canonicalRule('ip daddr { 10.96.0.0/16 } drop')).toBe(canonicalRule('ip daddr 10.96.0.0/16 drop'));
    expect(findRuleDrift(ruleset(applied), listedChains(listing))).toEqual([]);
  });

  it('names a changed, missing, extra, reordered rule, a flushed and a missing chain, an absent table', () => {
    const changed = listing.replace('masquerade fully-random', 'masquerade').replace('jump services\n', '').replace('goto endpoint-B', 'goto endpoint-C');
    expect(findRuleDrift(ruleset({ ...applied, extra: [] }), listedChains(changed))).toEqual([
      { table: 'kube-proxy', chain: 'masquerading', kind: 'rule-changed' },
      { table: 'kube-proxy', chain: 'nat-prerouting', kind: 'chain-flushed' },
      { table: 'kube-proxy', chain: 'service-X-ns/a/tcp/p', kind: 'rule-changed' },
      { table: 'kube-proxy', chain: 'extra', kind: 'chain-missing' },
    ]);
    expect(findRuleDrift(ruleset({ masquerading: applied.masquerading.slice(0, 2) }), listedChains(listing))).toEqual([
      { table: 'kube-proxy', chain: 'masquerading', kind: 'rule-extra' },
    ]);
    expect(findRuleDrift(ruleset({ masquerading: [...applied.masquerading, 'return'] }), listedChains(listing))).toEqual([
      { table: 'kube-proxy', chain: 'masquerading', kind: 'rule-missing' },
    ]);
    expect(findRuleDrift(ruleset({ masquerading: [...applied.masquerading].reverse() }), listedChains(listing))).toEqual([
      { table: 'kube-proxy', chain: 'masquerading', kind: 'rules-reordered' },
    ]);
    expect(findRuleDrift(ruleset(applied), 'absent')).toEqual([{ table: 'kube-proxy', chain: '*', kind: 'table-flushed' }]);
  });
});
