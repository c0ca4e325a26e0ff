// The agent against the shared real apiserver, its iptables in a throwaway network namespace:
// Services and EndpointSlices become kube-proxy's chains, an endpoint change is a partial sync that
// touches only that service's chains, a deletion removes them, a nat flush behind the agent's back
// is repaired by the next periodic drift check, and objects it cannot use are skipped and counted.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kernelSkipReason } from '../harness/netns.js';
import {
  chainsWithPrefix,
  endpointChainName,
  payloadChains,
  rulesByChain,
  serviceChainNames,
  startAgentInProcess,
  type InProcessAgent,
  type KernelTable,
} from '../harness/agent-in-process.js';
import {
  createEndpointSlice,
  createNamespace,
  createService,
  deleteEndpointSlice,
  deleteNamespace,
  deleteService,
  endpointSliceObject,
  kubeClients,
  setEndpoints,
  type KubeClients,
} from '../harness/kube.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-sync.test.ts: ${skipReason}`);

/** Every rule of `chain`, in kernel order. */
function rulesOf(table: KernelTable, chain: string): string[] {
  return table.rules.filter((rule) => rule.startsWith(`-A ${chain} `));
}

// Dispatch chains hold one rule per service port in arrival order (partial syncs insert), while a
// full sync writes them sorted; only their last rule's position matters.
const dispatchChains = new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES']);
const byChain = (table: KernelTable): Record<string, string[]> => rulesByChain(table, dispatchChains);

describe.skipIf(skipReason !== undefined)('agent against a real apiserver and real iptables', () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  const namespaces: string[] = [];

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    // syncPeriod 2s: periodic syncs (and so canary checks) come quickly for the flush test.
    node = await startAgentInProcess({ kubeconfigPath, syncPeriod: '2s', minSyncPeriod: '100ms' });
  });

  afterAll(async () => {
    await node?.stop();
    for (const namespace of namespaces) await deleteNamespace(clients, namespace);
  });

  async function namespace(): Promise<string> {
    const name = await createNamespace(clients.core);
    namespaces.push(name);
    return name;
  }

  it('programs Services and EndpointSlices, rewrites only the changed service on an endpoint change, and removes deleted ones', async () => {
    const ns = await namespace();
    const alpha = await createService(clients.core, { namespace: ns, name: 'alpha', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    const beta = await createService(clients.core, { namespace: ns, name: 'beta', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    const alphaIP = alpha.spec?.clusterIP ?? '';
    const betaIP = beta.spec?.clusterIP ?? '';
    const alphaSlice = await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'alpha', ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ address: '10.244.1.1' }, { address: '10.244.1.2' }],
    });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'beta', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.2.1' }],
    });

    const alphaChains = serviceChainNames(ns, 'alpha', 'http');
    const betaChains = serviceChainNames(ns, 'beta', 'http');
    const alphaSep = (ip: string): string => endpointChainName(ns, 'alpha', 'http', ip, 8080);
    const betaSep = endpointChainName(ns, 'beta', 'http', '10.244.2.1', 8080);

    const programmed = await node.waitFor('both services are programmed', async () => {
      const nat = await node.kernel('nat');
      const wanted = [alphaChains.cluster, alphaSep('10.244.1.1'), alphaSep('10.244.1.2'), betaChains.cluster, betaSep];
      return wanted.every((chain) => nat.chains.has(chain)) ? nat : undefined;
    });
    // The dispatch rule sends the cluster IP to KUBE-SVC-, which balances over the KUBE-SEP- chains, which DNAT.
    const services = rulesOf(programmed, 'KUBE-SERVICES');
    expect(services.some((rule) => rule.includes(`-d ${alphaIP}/32`) && rule.includes('--dport 80') && rule.endsWith(`-j ${alphaChains.cluster}`))).toBe(true);
    expect(services.some((rule) => rule.includes(`-d ${betaIP}/32`) && rule.endsWith(`-j ${betaChains.cluster}`))).toBe(true);
    const alphaSvcRules = rulesOf(programmed, alphaChains.cluster);
    expect(alphaSvcRules.filter((rule) => rule.includes('-j KUBE-SEP-')).map((rule) => rule.split(' -j ')[1])).toEqual([
      alphaSep('10.244.1.1'),
      alphaSep('10.244.1.2'),
    ]);
    expect(rulesOf(programmed, alphaSep('10.244.1.2')).some((rule) => rule.includes('--to-destination 10.244.1.2:8080'))).toBe(true);
    const betaBefore = [...rulesOf(programmed, betaChains.cluster), ...rulesOf(programmed, betaSep)];
    await node.agent.idle();

    // One endpoint of alpha moves: 10.244.1.2 -> 10.244.1.3.
    const partialBefore = await node.metric('kube_proxy_ts_syncs_total', { kind: 'partial', result: 'applied' });
    await setEndpoints(clients.discovery, ns, alphaSlice.metadata?.name ?? '', [{ address: '10.244.1.1' }, { address: '10.244.1.3' }]);
    const changed = await node.waitFor('the moved endpoint is programmed', async () => {
      const nat = await node.kernel('nat');
      return nat.chains.has(alphaSep('10.244.1.3')) && !nat.chains.has(alphaSep('10.244.1.2')) ? nat : undefined;
    });
    const report = await node.waitFor('the sync report that applied the change', () =>
      node.reports.find((candidate) => candidate.result === 'applied' && candidate.plan?.payload.includes(`:${alphaSep('10.244.1.3')} `) === true),
    );
    expect(report.kind).toBe('partial');
    const alphaOwned = new Set([...Object.values(alphaChains), alphaSep('10.244.1.1'), alphaSep('10.244.1.2'), alphaSep('10.244.1.3')]);
    const changedNames = report.result === 'applied' ? (report.plan?.stats.changedChainNames ?? []) : [];
    expect(changedNames).toContain(alphaChains.cluster);
    expect(changedNames).toContain(alphaSep('10.244.1.3'));
    expect(changedNames).toContain(alphaSep('10.244.1.2'));
    expect(changedNames.filter((chain) => !alphaOwned.has(chain))).toEqual([]);
    // The payload itself: alpha's KUBE-SVC- and new KUBE-SEP- written, the old one deleted, nothing else touched.
    const touched = payloadChains(report.plan?.payload ?? '');
    expect(touched.written).toEqual(new Set([alphaChains.cluster, alphaSep('10.244.1.3'), alphaSep('10.244.1.2')]));
    expect(touched.deleted).toEqual(new Set([alphaSep('10.244.1.2')]));
    expect([...touched.edited].filter((chain) => !alphaOwned.has(chain))).toEqual([]);
    expect(await node.metric('kube_proxy_ts_syncs_total', { kind: 'partial', result: 'applied' })).toBeGreaterThan(partialBefore);
    // beta's chains are exactly as before.
    expect([...rulesOf(changed, betaChains.cluster), ...rulesOf(changed, betaSep)]).toEqual(betaBefore);

    // Deleting alpha removes all of its chains and its dispatch rule; beta stays.
    await deleteService(clients.core, ns, 'alpha');
    await deleteEndpointSlice(clients.discovery, ns, alphaSlice.metadata?.name ?? '');
    const afterDelete = await node.waitFor('alpha is gone from the kernel', async () => {
      const nat = await node.kernel('nat');
      return [...alphaOwned].every((chain) => !nat.chains.has(chain)) ? nat : undefined;
    });
    expect(rulesOf(afterDelete, 'KUBE-SERVICES').filter((rule) => rule.includes(alphaChains.cluster) || rule.includes(`-d ${alphaIP}/32`))).toEqual([]);
    expect(afterDelete.chains.has(betaChains.cluster)).toBe(true);
    expect(afterDelete.chains.has(betaSep)).toBe(true);
  });

  it('notices a nat table flushed behind its back at the next periodic sync and restores every rule', async () => {
    const ns = await namespace();
    await createService(clients.core, { namespace: ns, name: 'gamma', ports: [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }] });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'gamma', ports: [{ name: 'dns', port: 5353, protocol: 'UDP' }], endpoints: [{ address: '10.244.3.1' }],
    });
    const gamma = serviceChainNames(ns, 'gamma', 'dns', 'UDP');
    await node.waitFor('gamma is programmed', async () => (await node.kernel('nat')).chains.has(gamma.cluster));
    await node.agent.idle();
    const before = await node.kernel('nat');
    expect(before.chains.has('KUBE-PROXY-CANARY')).toBe(true);
    expect(before.rules.some((rule) => rule === '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES')).toBe(true);

    const repairsBefore = await node.metric('kube_proxy_ts_drift_repairs_total', { table: 'nat', kind: 'table-flushed' });
    const reportsBefore = new Set(node.reports);
    // Like `iptables -t nat -F; iptables -t nat -X`, in one step (a restore without --noflush
    // flushes every chain and deletes every user chain), so no periodic sync falls in between.
    const flush = await node.netns.exec('iptables-nft-restore', [], '*nat\nCOMMIT\n');
    expect(flush.code, flush.stderr).toBe(0);

    // No apiserver change follows: only the periodic drift check can bring the rules back.
    const restored = await node.waitFor('the nat table is restored', async () => {
      const nat = await node.kernel('nat');
      return nat.chains.has(gamma.cluster) && nat.chains.has('KUBE-PROXY-CANARY') ? nat : undefined;
    });
    expect(byChain(restored)).toEqual(byChain(before));
    expect(rulesOf(restored, 'KUBE-SERVICES').at(-1)).toContain('-j KUBE-NODEPORTS');
    expect(await node.metric('kube_proxy_ts_drift_repairs_total', { table: 'nat', kind: 'table-flushed' })).toBe(repairsBefore + 1);
    // The repair came with a periodic sync's drift check, not a full resync.
    const after = node.reports.filter((report) => !reportsBefore.has(report));
    const repair = after.find((report) => report.drift?.kind === 'checked' && report.drift.findings.length > 0);
    const seen = after.map((report) => `${report.reason}/${report.kind}/${report.fullReason ?? '-'}/${report.result}`).join(', ');
    expect(repair?.reason, `syncs after the flush: ${seen}`).toBe('periodic');
    expect(repair?.kind).toBe('partial');
    expect(repair?.result).toBe('applied');
    expect(repair?.drift?.kind === 'checked' ? repair.drift.findings : undefined).toEqual([{ table: 'nat', chain: '*', kind: 'table-flushed' }]);
  });

  it('skips and counts EndpointSlices it cannot use while other Services keep working', async () => {
    const ns = await namespace();
    await createService(clients.core, { namespace: ns, name: 'good', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    const fqdnService = await createService(clients.core, { namespace: ns, name: 'fqdn', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'good', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.4.1' }],
    });
    // Both are valid API objects (the apiserver accepts them) that kube-proxy cannot use. FQDN slices
    // are for no proxy: ignored silently, as upstream; the orphan is skipped and counted.
    const fqdnSlice = await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'fqdn', addressType: 'FQDN', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: 'backend.example.com' }],
    });
    const orphan = endpointSliceObject({ namespace: ns, serviceName: 'good', name: 'orphan', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.4.9' }] });
    delete orphan.metadata?.labels?.['kubernetes.io/service-name'];
    await clients.discovery.createNamespacedEndpointSlice({ namespace: ns, body: orphan });

    const good = serviceChainNames(ns, 'good', 'http');
    const skipped = { kind: 'EndpointSlice' };
    await node.waitFor('the orphan slice is counted as skipped', async () =>
      (await node.metric('kube_proxy_ts_objects_skipped', { ...skipped, reason: 'missing-service-name-label' })) === 1,
    );
    expect(await node.metric('kube_proxy_ts_objects_skipped_total', { ...skipped, reason: 'missing-service-name-label' })).toBe(1);
    expect(await node.metric('kube_proxy_ts_objects_skipped', skipped)).toBe(1);
    expect(await node.metric('kube_proxy_ts_objects_skipped_total', skipped)).toBe(1);

    const nat = await node.waitFor('the good service is programmed', async () => {
      const table = await node.kernel('nat');
      return table.chains.has(good.cluster) ? table : undefined;
    });
    expect(nat.chains.has(endpointChainName(ns, 'good', 'http', '10.244.4.1', 8080))).toBe(true);
    // The orphan slice's endpoint went nowhere, and the FQDN Service has no endpoints: the filter table rejects it.
    expect(nat.chains.has(endpointChainName(ns, 'good', 'http', '10.244.4.9', 8080))).toBe(false);
    expect(chainsWithPrefix(nat, serviceChainNames(ns, 'fqdn', 'http').cluster).size).toBe(0);
    const filter = await node.kernel('filter');
    const fqdnIP = fqdnService.spec?.clusterIP ?? '';
    expect(filter.rules.some((rule) => rule.startsWith('-A KUBE-SERVICES ') && rule.includes(`-d ${fqdnIP}/32`) && rule.includes('has no endpoints') && rule.includes('-j REJECT'))).toBe(true);

    // Once the bad objects go, the gauge drops back to zero; the running total keeps its count.
    await deleteEndpointSlice(clients.discovery, ns, fqdnSlice.metadata?.name ?? '');
    await deleteEndpointSlice(clients.discovery, ns, 'orphan');
    await node.waitFor('no slice is skipped any more', async () => (await node.metric('kube_proxy_ts_objects_skipped', skipped)) === 0);
    expect(await node.metric('kube_proxy_ts_objects_skipped_total', { ...skipped, reason: 'missing-service-name-label' })).toBe(1);
    expect(await node.metric('kube_proxy_ts_objects_skipped_total', { ...skipped, reason: 'unsupported-address-type' })).toBe(0);
    expect((await node.kernel('nat')).chains.has(good.cluster)).toBe(true);
  });
});
