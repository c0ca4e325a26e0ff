// How pod traffic is told from other traffic (detectLocalMode) and masqueradeAll, with real
// packets: a pod reaches a ClusterIP whose one endpoint is another pod, and that endpoint reports
// the source address it saw. Traffic detected as from a pod keeps its address; anything else to a
// cluster IP is masqueraded to the node's. Each case restores the whole rule set afresh.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../src/model/build.js';
import type { NodeInfo } from '../../src/model/types.js';
import { ExecNetfilter, nftBinaries } from '../../src/netfilter/exec.js';
import { renderRuleSet } from '../../src/render/index.js';
import {
  defaultRenderContext,
  localTrafficFromBridge,
  localTrafficFromCIDR,
  localTrafficFromInterfacePrefix,
  type RenderContext,
} from '../../src/render/types.js';
import { fullPayload } from '../../src/sync/payload.js';
import { kernelSkipReason } from '../harness/netns.js';
import { CLUSTER_CIDR, Topology, type NodeHandle, type PodHandle } from '../harness/topology.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/local-traffic.test.ts: ${skipReason}`);

const CLUSTER_IP = '10.96.0.20';

describe.skipIf(skipReason !== undefined)('local traffic detection and masqueradeAll, with real packets', () => {
  let topology: Topology | undefined;
  let node: NodeHandle;
  let client: PodHandle;
  let server: PodHandle;

  beforeAll(async () => {
    topology = await Topology.create(['node1']);
    node = topology.node('node1');
    client = await topology.addPod(node, 'client');
    server = await topology.addPod(node, 'server');
  });
  afterAll(async () => {
    await topology?.destroy();
  });

  /** Programs the node afresh with `context`, then the source address the endpoint saw from the pod and from the node. */
  async function seenFrom(context: Partial<RenderContext>): Promise<{ pod: string; node: string }> {
    if (topology === undefined) throw new Error('setup');
    const nodeInfo: NodeInfo = { name: node.name, ips: [node.ip], zone: undefined, labels: {}, podCIDRs: [] };
    const { state } = buildDesiredState({ services: [service('web', CLUSTER_IP)], endpointSlices: [slice('web', [server.ip], { node: node.name })], node: nodeInfo });
    const ruleSet = renderRuleSet(state, { ...defaultRenderContext, nodeIPs: [node.ip], localhostNodePorts: false, ...context });
    const netfilter = new ExecNetfilter({ binaries: nftBinaries, prefix: ['ip', 'netns', 'exec', node.netns] });
    // Without --noflush: the tables hold exactly this rule set.
    expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: false })).toEqual({ ok: true });
    const peer = async (netns: string): Promise<string> => {
      const result = await topology!.tcp(netns, CLUSTER_IP, 80);
      if (!result.ok) throw new Error(`probe from ${netns}: ${result.error} ${result.detail}`);
      expect(result.reply.pod).toBe('server');
      return result.reply.peerIP;
    };
    return { pod: await peer(client.netns), node: await peer(node.netns) };
  }

  it('ClusterCIDR: a pod keeps its address, the node is masqueraded', async () => {
    expect(await seenFrom({ localTraffic: localTrafficFromCIDR(CLUSTER_CIDR) })).toEqual({ pod: client.ip, node: node.ip });
  });

  it("InterfaceNamePrefix: traffic in on an interface with the pods' prefix keeps its address, on others it is masqueraded", async () => {
    // The harness names each pod's host-side veth `<topology id>p<n>`.
    expect(await seenFrom({ localTraffic: localTrafficFromInterfacePrefix(`${topology?.id ?? ''}p`) })).toEqual({ pod: client.ip, node: node.ip });
    expect(await seenFrom({ localTraffic: localTrafficFromInterfacePrefix('cali') })).toEqual({ pod: node.ip, node: node.ip });
  });

  it('BridgeInterface: only traffic in on that interface is from a pod', async () => {
    const clientVeth = `${topology?.id ?? ''}p1`;
    expect(await seenFrom({ localTraffic: localTrafficFromBridge(clientVeth) })).toEqual({ pod: client.ip, node: node.ip });
    expect(await seenFrom({ localTraffic: localTrafficFromBridge(`${topology?.id ?? ''}p2`) })).toEqual({ pod: node.ip, node: node.ip });
  });

  it('masqueradeAll: pods are masqueraded too', async () => {
    expect(await seenFrom({ localTraffic: localTrafficFromCIDR(CLUSTER_CIDR), masqueradeAll: true })).toEqual({ pod: node.ip, node: node.ip });
  });
});
