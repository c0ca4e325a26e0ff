// A dual-stack agent (one proxier per family) against the shared apiserver, which is started
// dual-stack (--service-cluster-ip-range v4,v6): a RequireDualStack Service is programmed into
// iptables and ip6tables, each with its own family's cluster IP and endpoints; a single-stack IPv6
// Service only into ip6tables; an IPv6 endpoint change is a partial sync of the IPv6 proxier alone;
// a flushed ip6tables nat table is repaired without touching IPv4; /healthz reports both families
// and the sync metrics carry ip_family.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exec } from '../harness/exec.js';
import { kernelSkipReason } from '../harness/netns.js';
import { endpointChainName, httpGet, serviceChainNames, startAgentInProcess, type InProcessAgent } from '../harness/agent-in-process.js';
import { createEndpointSlice, createNamespace, createService, deleteNamespace, kubeClients, setEndpoints, type KubeClients } from '../harness/kube.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-dual-stack.test.ts: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('a dual-stack agent against a dual-stack apiserver', () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  let ns = '';

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    expect(inject('serviceClusterIPRange').split(',')).toHaveLength(2);
    clients = kubeClients(kubeconfigPath);
    ns = await createNamespace(clients.core);
    node = await startAgentInProcess({
      kubeconfigPath,
      families: ['IPv4', 'IPv6'],
      syncPeriod: '2s',
      minSyncPeriod: '100ms',
      clusterCIDR: '10.244.0.0/16,fd00:10:244::/56',
    });
  });

  afterAll(async () => {
    await node?.stop();
    if (ns !== '') await deleteNamespace(clients, ns);
  });

  it('programs each family of a RequireDualStack Service into its own table, and a SingleStack IPv6 one into ip6tables only', async () => {
    const web = await createService(clients.core, {
      namespace: ns,
      name: 'web',
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] },
    });
    const six = await createService(clients.core, {
      namespace: ns,
      name: 'six',
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      spec: { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'] },
    });
    const [webV4, webV6] = web.spec?.clusterIPs ?? [];
    const [sixV6] = six.spec?.clusterIPs ?? [];
    expect(webV4).toMatch(/^10\.96\./);
    expect(webV6).toMatch(/^fd00:10:96::/);
    expect(sixV6).toMatch(/^fd00:10:96::/);
    await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: 'web', name: 'web-v4', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.1.1' }] });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'web', name: 'web-v6', addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: 'fd00:10:244:1::1' }, { address: 'fd00:10:244:1::2' }],
    });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'six', name: 'six-v6', addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: 'fd00:10:244:1::3' }],
    });

    const webChains = serviceChainNames(ns, 'web', 'http');
    const sixChains = serviceChainNames(ns, 'six', 'http');
    const v6 = await node.waitFor('both IPv6 Services are in ip6tables', async () => {
      const table = await node.kernel('nat', 'IPv6');
      return table.chains.has(webChains.cluster) && table.chains.has(sixChains.cluster) ? table : undefined;
    });
    const v4 = await node.waitFor('the IPv4 half is in iptables', async () => {
      const table = await node.kernel('nat', 'IPv4');
      return table.chains.has(webChains.cluster) ? table : undefined;
    });
    // Same chain name for the same service port in both families (upstream's hash has no family);
    // each table holds its own family's cluster IP and endpoints only.
    expect(v4.rules.some((rule) => rule.startsWith('-A KUBE-SERVICES') && rule.includes(`-d ${webV4}/32`))).toBe(true);
    expect(v4.rules.join('\n')).not.toContain('fd00:');
    expect(v4.chains.has(sixChains.cluster)).toBe(false);
    expect(v6.rules.some((rule) => rule.startsWith('-A KUBE-SERVICES') && rule.includes(`-d ${webV6}/128`))).toBe(true);
    expect(v6.rules.join('\n')).not.toMatch(/\b10\.(96|244)\./);
    expect(v6.chains.has(endpointChainName(ns, 'web', 'http', 'fd00:10:244:1::1', 8080))).toBe(true);
    const sep = endpointChainName(ns, 'web', 'http', 'fd00:10:244:1::2', 8080);
    expect(v6.rules.some((rule) => rule.startsWith(`-A ${sep} `) && rule.includes('-j DNAT --to-destination [fd00:10:244:1::2]:8080'))).toBe(true);
    // Local-traffic detection per family: the IPv6 clusterCIDR of the pair.
    expect(v6.rules.some((rule) => rule.startsWith(`-A ${webChains.cluster}`) && rule.includes('! -s fd00:10:244::/56') && rule.includes('KUBE-MARK-MASQ'))).toBe(true);
    // No localhost NodePorts on IPv6 (upstream): the NodePort jump excludes ::1.
    expect(v6.rules.some((rule) => rule.startsWith('-A KUBE-SERVICES') && rule.includes('! -d ::1/128') && rule.endsWith('-j KUBE-NODEPORTS'))).toBe(true);
  });

  it('an IPv6 endpoint change syncs the IPv6 proxier alone, partially', async () => {
    // The history is bounded: tell new reports by identity, not by index.
    const seen = new Set(node.reports);
    await setEndpoints(clients.discovery, ns, 'web-v6', [{ address: 'fd00:10:244:1::1' }, { address: 'fd00:10:244:1::9' }]);
    await node.waitFor('the new IPv6 endpoint is programmed', async () =>
      (await node.kernel('nat', 'IPv6')).chains.has(endpointChainName(ns, 'web', 'http', 'fd00:10:244:1::9', 8080)),
    );
    const applied = node.reports.filter((report) => !seen.has(report) && report.result === 'applied');
    expect(applied.map((report) => [report.family, report.kind])).toEqual([['IPv6', 'partial']]);
    expect((await node.kernel('nat', 'IPv6')).chains.has(endpointChainName(ns, 'web', 'http', 'fd00:10:244:1::2', 8080))).toBe(false);
    // IPv4 had nothing to do: no IPv4 sync ran for this change (its periodic syncs, every 2 s here,
    // are not the change's).
    expect(node.reports.filter((report) => !seen.has(report) && report.family === 'IPv4' && report.reason !== 'periodic')).toEqual([]);
  });

  it('repairs a flushed ip6tables nat table on its own, and reports both families in /healthz and the metrics', async () => {
    const webChains = serviceChainNames(ns, 'web', 'http');
    const seen = new Set(node.reports);
    const flushed = await exec('ip', ['netns', 'exec', node.netns.name, 'ip6tables-nft', '-t', 'nat', '-F']);
    expect(flushed.code, flushed.stderr).toBe(0);
    await exec('ip', ['netns', 'exec', node.netns.name, 'ip6tables-nft', '-t', 'nat', '-X']);
    const repaired = await node.waitFor('the IPv6 nat table is repaired', async () => {
      const table = await node.kernel('nat', 'IPv6');
      return table.chains.has(webChains.cluster) ? table : undefined;
    });
    expect(repaired.chains.has('KUBE-PROXY-CANARY')).toBe(true);
    const after = node.reports.filter((report) => !seen.has(report));
    // The IPv6 proxier repaired it (canary or drift check); IPv4 had nothing to write.
    expect(after.some((report) => report.family === 'IPv6' && report.result === 'applied')).toBe(true);
    expect(after.some((report) => report.family === 'IPv4' && report.result === 'applied')).toBe(false);

    const port = node.agent.healthPort;
    const health = JSON.parse((await httpGet(`http://127.0.0.1:${port}/healthz`)).body) as { healthy: boolean; status: Record<string, { healthy: boolean; lastUpdated: string }> };
    expect(Object.keys(health.status).sort()).toEqual(['IPv4', 'IPv6']);
    expect(health.status['IPv6']?.healthy).toBe(true);
    expect(await node.metric('kubeproxy_sync_proxy_rules_duration_seconds_count', { ip_family: 'IPv6' })).toBeGreaterThan(0);
    expect(await node.metric('kubeproxy_sync_proxy_rules_duration_seconds_count', { ip_family: 'IPv4' })).toBeGreaterThan(0);
    expect(await node.metric('kubeproxy_sync_proxy_rules_iptables_total', { ip_family: 'IPv6', table: 'nat' })).toBeGreaterThan(0);
  });
});
