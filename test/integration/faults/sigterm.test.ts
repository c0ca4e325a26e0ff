// Fault: the agent is stopped with SIGTERM (a DaemonSet rollout, a node drain). It must exit 0 and
// leave every rule in place, so traffic keeps flowing until the next agent takes over. Prints how
// long it took to exit.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentProcess, waitFor } from '../../harness/agent-process.js';
import { exec } from '../../harness/exec.js';
import { createNetns, kernelSkipReason, type Netns } from '../../harness/netns.js';
import { serviceChainNames } from '../../harness/agent-in-process.js';
import { createEndpointSlice, createNamespace, createNode, createService, deleteNamespace, deleteNode, kubeClients, uniqueName, type KubeClients } from '../../harness/kube.js';
import { comparableView } from '../../support/drift-cases.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/faults/sigterm.test.ts: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('fault: SIGTERM', () => {
  let clients: KubeClients;
  let netns: Netns;
  let agent: AgentProcess | undefined;
  let namespace: string | undefined;
  const nodeName = uniqueName('sigterm-node');

  beforeAll(async () => {
    clients = kubeClients(inject('kubeconfigPath'));
    netns = await createNetns('sigterm');
    await exec('ip', ['-n', netns.name, 'link', 'set', 'lo', 'up']);
    await createNode(clients.core, { name: nodeName, internalIP: '192.0.2.10' });
    agent = await AgentProcess.start({ netns: netns.name, nodeName, kubeconfigPath: inject('kubeconfigPath') }, inject('apiserverURL'));
  });

  afterAll(async () => {
    await agent?.stop();
    await netns?.delete();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    await deleteNode(clients.core, nodeName);
  });

  const view = async (): Promise<string> =>
    comparableView(await Promise.all((['filter', 'nat'] as const).map(async (table) => [table, (await netns.exec('iptables-nft-save', ['-t', table])).stdout] as const)));

  it('exits 0 and keeps every rule', async () => {
    const ns = await createNamespace(clients.core);
    namespace = ns;
    await createService(clients.core, { namespace: ns, name: 'web', type: 'NodePort', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.1.1' }, { address: '10.244.1.2' }] });
    const chain = serviceChainNames(ns, 'web', 'http').cluster;
    await waitFor(async () => (await view()).includes(`:${chain} `), 30_000, 'web is programmed');
    // Let the sync after it settle, then take the kernel's picture.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const before = await view();

    const stoppingAt = Date.now();
    const code = await agent!.stop({ graceMs: 20_000 });
    const stopMs = Date.now() - stoppingAt;
    console.log(`SIGTERM: the agent exited with ${String(code)} after ${stopMs} ms; rules kept: ${(await view()) === before}`);
    expect(code).toBe(0);
    expect(await view()).toBe(before);
    expect(before).toContain(`:${chain} `);
  });
});
