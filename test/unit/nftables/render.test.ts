// The nftables renderer against upstream's TestOverallNFTablesRules (pkg/proxy/nftables,
// proxier_test.go 1.33): the same Services render to the same table, chain for chain and
// element for element; and the per-mode choices upstream makes (node port match, masquerade-all).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { planFullSync } from '../../../src/nftables/diff.js';
import { renderNftRuleset } from '../../../src/nftables/render.js';
import { nftEndpointNames, nftServicePortNames } from '../../../src/nftables/vocabulary.js';
import { desiredState, endpoint, servicePort } from '../render/fixtures.js';
import { normalise, transactionsOf, upstreamContext } from './support.js';

// The Services and EndpointSlices of upstream's test, after endpoint selection (as the iptables
// renderer's upstream test builds them).
const upstreamServices = [
  servicePort({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', endpoints: [endpoint('10.180.0.1')] }),
  servicePort({
    namespace: 'ns2', name: 'svc2', clusterIP: '172.30.0.42', nodePort: 3001, loadBalancerIPs: ['1.2.3.4'],
    externalIPs: ['192.168.99.22'], externalTrafficPolicy: 'Local', healthCheckNodePort: 30000, endpoints: [endpoint('10.180.0.2')],
  }),
  servicePort({ namespace: 'ns3', name: 'svc3', clusterIP: '172.30.0.43', nodePort: 3003, endpoints: [endpoint('10.180.0.3')] }),
  servicePort({
    namespace: 'ns4', name: 'svc4', clusterIP: '172.30.0.44', externalIPs: ['192.168.99.33'],
    endpoints: [endpoint('10.180.0.4'), endpoint('10.180.0.5', { isLocal: true })],
  }),
  servicePort({
    namespace: 'ns5', name: 'svc5', clusterIP: '172.30.0.45', nodePort: 3002, loadBalancerIPs: ['5.6.7.8'],
    loadBalancerSourceRanges: ['203.0.113.0/25'], sessionAffinity: { kind: 'ClientIP', timeoutSeconds: 10800 }, endpoints: [endpoint('10.180.0.3')],
  }),
  servicePort({ namespace: 'ns6', name: 'svc6', clusterIP: '172.30.0.46' }),
];

const expected = readFileSync(new URL('./upstream-overall.nft', import.meta.url), 'utf8').split('\n');

describe("upstream's TestOverallNFTablesRules", () => {
  it('a full sync writes exactly the table upstream expects', () => {
    const ruleset = renderNftRuleset(desiredState(upstreamServices), upstreamContext);
    const plan = planFullSync(ruleset, undefined, { recreateBaseChains: false, chainsPerTransaction: 1000 });
    expect(normalise(expected).length).toBeGreaterThan(100);
    expect(normalise(transactionsOf(plan).flat())).toEqual(normalise(expected));
  });

  it('names chains and sets as upstream: 8 base32 characters of sha256, then the readable name', () => {
    expect(nftServicePortNames('ns1', 'svc1', 'p80', 'TCP').cluster).toBe('service-ULMVA6XW-ns1/svc1/tcp/p80');
    const names = nftEndpointNames('ns5', 'svc5', 'p80', 'TCP', '10.180.0.3', 80);
    expect(names).toEqual({ chain: 'endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80', affinitySet: 'affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80' });
    // An IPv6 endpoint: `:` is not allowed in a name.
    expect(nftEndpointNames('ns', 'svc', '', 'UDP', 'fd00::1', 53).chain).toMatch(/^endpoint-[A-Z2-7]{8}-ns\/svc\/udp\/__fd00..1\/53$/);
  });

  it('without nodePortAddresses NodePorts match every local address but the loopback, and nodeport-ips is removed', () => {
    const ruleset = renderNftRuleset(desiredState(upstreamServices), { ...upstreamContext, nodePortIPs: 'all' });
    const lines = transactionsOf(planFullSync(ruleset, undefined, { recreateBaseChains: false, chainsPerTransaction: 1000 })).flat();
    expect(lines).toContain('add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports');
    expect(lines).toContain('add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports');
    // add + delete: deleting alone would fail where the set does not exist.
    expect(lines.filter((line) => line.includes('nodeport-ips')).map((line) => line.split(' ')[0])).toEqual(['add', 'delete']);
  });

  it('masqueradeAll masquerades every cluster-IP connection, local detector or not', () => {
    const ruleset = renderNftRuleset(desiredState(upstreamServices.slice(0, 1)), { ...upstreamContext, masqueradeAll: true });
    const chain = ruleset.servicePorts.get('ns1/svc1:p80/TCP')?.chains.find((c) => c.name.startsWith('service-'));
    expect(chain?.rules[0]).toBe('ip daddr 172.30.0.41 tcp dport 80 jump mark-for-masquerade');
  });
});
