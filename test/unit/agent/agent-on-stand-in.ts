// An Agent wired to the stand-in apiserver (test/unit/k8s/http-apiserver.ts) and the fake
// netfilter: the real agent's request path and wiring, no kernel, no control plane.
import { Registry } from 'prom-client';
import { Agent } from '../../../src/agent/agent.js';
import { parseRunArgs } from '../../../src/config/index.js';
import { createLogger } from '../../../src/log.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import { iptablesBackend, type IptablesSyncReport } from '../../../src/sync/iptables-proxier.js';
import { HttpApiserver } from '../k8s/http-apiserver.js';
import type { IPFamily } from '../../../src/ip.js';

export interface StandInOptions {
  /** One proxier per family (default IPv4 only); IPv6 programs `ipv6Netfilter`. */
  readonly families?: readonly IPFamily[];
  readonly netfilter?: FakeNetfilter;
  readonly ipv6Netfilter?: FakeNetfilter;
  readonly onSyncReport?: (report: IptablesSyncReport) => void;
}

export interface AgentOnStandIn {
  readonly agent: Agent<IptablesSyncReport>;
  readonly apiserver: HttpApiserver;
  stop(): Promise<void>;
}

/** Lists what `objects` holds, starts the agent with `args` (node name node1, no HTTP servers
 * unless `args` names their addresses) and resolves after its first sync of every family. */
export async function startAgentOnStandIn(
  args: readonly string[],
  objects: { readonly services?: unknown[]; readonly endpointSlices?: unknown[]; readonly nodes?: unknown[] },
  options: StandInOptions = {},
): Promise<AgentOnStandIn> {
  const apiserver = new HttpApiserver();
  const connection = await apiserver.start();
  apiserver.lists.set('/api/v1/services', { items: objects.services ?? [], resourceVersion: '1' });
  apiserver.lists.set('/apis/discovery.k8s.io/v1/endpointslices', { items: objects.endpointSlices ?? [], resourceVersion: '1' });
  apiserver.lists.set('/api/v1/nodes', { items: objects.nodes ?? [], resourceVersion: '1' });
  const parsed = parseRunArgs(['--hostname-override', 'node1', '--metrics-bind-address', '', '--healthz-bind-address', '', ...args], {}, () => '');
  if (parsed.kind !== 'ok') throw new Error(JSON.stringify(parsed));
  const agent = new Agent({
    config: parsed.config,
    connection,
    backend: iptablesBackend({ netfilter: options.netfilter ?? new FakeNetfilter(), ipv6Netfilter: options.ipv6Netfilter ?? new FakeNetfilter() }),
    ...(options.families !== undefined ? { families: options.families } : {}),
    ...(options.onSyncReport !== undefined ? { onSyncReport: options.onSyncReport } : {}),
    conntrack: undefined,
    logger: createLogger({ level: 'silent' }),
    registry: new Registry(),
  });
  const stop = async (): Promise<void> => {
    await agent.stop();
    await apiserver.stop();
  };
  try {
    await agent.start();
    await agent.ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { agent, apiserver, stop };
}
