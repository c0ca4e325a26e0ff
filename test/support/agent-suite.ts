// The common frame of a test file that runs one in-process agent against the shared apiserver:
// clients, the agent (started before the tests, stopped after) and one namespace of objects that is
// deleted at the end. Call at the top of a describe block.

import { afterAll, beforeAll, inject } from 'vitest';
import { startAgentInProcess, type InProcessAgent, type InProcessAgentOptions } from '../harness/agent-in-process.js';
import { createNamespace, deleteNamespace, kubeClients, type KubeClients } from '../harness/kube.js';

export interface AgentSuite {
  readonly clients: () => KubeClients;
  readonly node: () => InProcessAgent;
  /** Creates the suite's namespace (once). */
  readonly namespace: () => Promise<string>;
}

export function agentSuite(options: Omit<InProcessAgentOptions, 'kubeconfigPath'>): AgentSuite {
  let clients: KubeClients | undefined;
  let node: InProcessAgent | undefined;
  let namespace: string | undefined;
  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    node = await startAgentInProcess({ kubeconfigPath, ...options });
  });
  afterAll(async () => {
    await node?.stop();
    if (namespace !== undefined && clients !== undefined) await deleteNamespace(clients, namespace);
  });
  const required = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started yet`);
    return value;
  };
  return {
    clients: () => required(clients, 'the suite'),
    node: () => required(node, 'the agent'),
    namespace: async () => (namespace ??= await createNamespace(required(clients, 'the suite').core)),
  };
}
