// detectLocalMode NodeCIDR against the real apiserver: pod traffic is what comes from this Node's
// podCIDR (not clusterCIDR). Until the Node has one there is nothing to tell pod traffic by, so no
// masquerade rule for non-pod traffic to cluster IPs; once the podCIDR is set, the next sync is a
// full one (the render context changed) that writes `! -s <podCIDR>`.

import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kernelSkipReason } from '../harness/netns.js';
import { serviceChainNames, startAgentInProcess, type InProcessAgent } from '../harness/agent-in-process.js';
import {
  createEndpointSlice,
  createNamespace,
  createNode,
  createService,
  deleteNamespace,
  deleteNode,
  kubeClients,
  type KubeClients,
} from '../harness/kube.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-detect-local.test.ts: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('detectLocalMode NodeCIDR', () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  let namespace: string | undefined;

  /** The agent's JSON log lines. */
  const logLines = (): Record<string, unknown>[] =>
    readFileSync(node.logPath, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    node = await startAgentInProcess({ kubeconfigPath, clusterCIDR: '10.244.0.0/16', extraArgs: ['--detect-local-mode', 'NodeCIDR'] });
  });

  afterAll(async () => {
    await node?.stop();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    await deleteNode(clients.core, node.nodeName);
  });

  it("masquerades non-pod traffic to a cluster IP by the Node's podCIDR once it has one", async () => {
    await createNode(clients.core, { name: node.nodeName, internalIP: '192.0.2.20' });
    namespace = await createNamespace(clients.core);
    await createService(clients.core, { namespace, name: 'web', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    await createEndpointSlice(clients.discovery, { namespace, serviceName: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.7.5' }] });
    const web = serviceChainNames(namespace, 'web', 'http');
    const masquerade = async (): Promise<string[]> =>
      (await node.kernel('nat')).rules.filter((rule) => rule.startsWith(`-A ${web.cluster} `) && rule.includes('-j KUBE-MARK-MASQ'));

    await node.waitFor('web is programmed', async () => (await node.kernel('nat')).chains.has(web.cluster));
    // No podCIDR yet: clusterCIDR is not used in this mode, so there is no such rule, and the log says why.
    expect(await masquerade()).toEqual([]);
    expect(logLines().some((line) => line.level === 'warn' && String(line.msg).includes('the Node has no IPv4 podCIDR'))).toBe(true);

    const current = await clients.core.readNode({ name: node.nodeName });
    await clients.core.replaceNode({ name: node.nodeName, body: { ...current, spec: { ...current.spec, podCIDR: '10.244.7.0/24', podCIDRs: ['10.244.7.0/24'] } } });
    const rules = await node.waitFor('the podCIDR is used', async () => {
      const found = await masquerade();
      return found.length > 0 ? found : undefined;
    });
    expect(rules).toHaveLength(1);
    expect(rules[0]).toContain('! -s 10.244.7.0/24');
    expect(rules[0]).not.toContain('10.244.0.0/16');
    const repair = node.reports.find((report) => report.fullReason === 'context-changed');
    expect(repair?.result).toBe('applied');
    expect(logLines().filter((line) => line.msg === 'local traffic detection').map((line) => line.podTraffic)).toEqual(['-s 10.244.7.0/24']);
  });
});
