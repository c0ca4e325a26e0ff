// How pod traffic is told from other traffic (detectLocalMode) and masqueradeAll, with real
// packets, in each mode: a pod reaches a ClusterIP whose one endpoint is another pod, and that
// endpoint reports the source address it saw. Traffic detected as from a pod keeps its address;
// anything else to a cluster IP is masqueraded to the node's. Each case programs the node afresh
// from the same settings (iptables mode: the whole rule set restored without --noflush; nftables
// mode: a full sync of a fresh proxier into a table deleted first).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localTrafficFor } from '../../src/agent/context.js';
import type { DetectLocal } from '../../src/config/index.js';
import { buildDesiredState } from '../../src/model/build.js';
import { ModelStore } from '../../src/model/store.js';
import type { NodeInfo } from '../../src/model/types.js';
import { ExecNetfilter, nftBinaries } from '../../src/netfilter/exec.js';
import { nftContextFor } from '../../src/nftables/context.js';
import { Nft } from '../../src/nftables/nft.js';
import { NftablesProxier } from '../../src/nftables/nftables-proxier.js';
import { nftFamily } from '../../src/nftables/vocabulary.js';
import { renderRuleSet } from '../../src/render/index.js';
import { defaultRenderContext } from '../../src/render/types.js';
import { fullPayload } from '../../src/sync/payload.js';
import { kernelSkipReason } from '../harness/netns.js';
import { CLUSTER_CIDR, Topology, type NodeHandle, type PodHandle } from '../harness/topology.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/local-traffic.test.ts: ${skipReason}`);

const CLUSTER_IP = '10.96.0.20';

interface Settings {
  readonly detectLocal: DetectLocal;
  readonly masqueradeAll?: boolean;
}

describe.skipIf(skipReason !== undefined).each(['iptables', 'nftables'] as const)('local traffic detection and masqueradeAll, with real packets (%s mode)', (mode) => {
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

  /** Programs the node afresh with these settings in this mode (both tables hold exactly its rules). */
  async function program(nodeInfo: NodeInfo, settings: Settings): Promise<void> {
    const services = [service('web', CLUSTER_IP)];
    const endpointSlices = [slice('web', [server.ip], { node: node.name })];
    const masqueradeAll = settings.masqueradeAll ?? false;
    const prefix = ['ip', 'netns', 'exec', node.netns];
    if (mode === 'iptables') {
      const { state } = buildDesiredState({ services, endpointSlices, node: nodeInfo });
      const localTraffic = localTrafficFor(settings.detectLocal, CLUSTER_CIDR, nodeInfo);
      const ruleSet = renderRuleSet(state, { ...defaultRenderContext, nodeIPs: [node.ip], localhostNodePorts: false, masqueradeAll, ...(localTraffic !== undefined ? { localTraffic } : {}) });
      const netfilter = new ExecNetfilter({ binaries: nftBinaries, prefix });
      // Without --noflush: the tables hold exactly this rule set.
      expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: false })).toEqual({ ok: true });
      return;
    }
    const nft = new Nft({ prefix });
    expect(await nft.deleteTable(nftFamily('IPv4'))).toEqual({ ok: true });
    const store = new ModelStore(nodeInfo);
    for (const object of services) store.upsertService(object);
    for (const object of endpointSlices) store.upsertEndpointSlice(object);
    const config = {
      nodeIPs: [node.ip], masqueradeBit: 14, masqueradeAll, detectLocal: settings.detectLocal, clusterCIDRs: [CLUSTER_CIDR], nodePortAddresses: { kind: 'all' } as const,
    };
    const proxier = new NftablesProxier({
      family: 'IPv4', store, nft, conntrackCleanup: undefined, context: () => nftContextFor(config, nodeInfo, 'IPv4'), fullSyncPeriodMs: 3_600_000, chainsPerTransaction: 2000,
    });
    const report = await proxier.sync('initial');
    expect(report.result, JSON.stringify(report)).toBe('applied');
  }

  /** Programs the node afresh with `settings`, then the source address the endpoint saw from the pod and from the node. */
  async function seenFrom(settings: Settings): Promise<{ pod: string; node: string }> {
    if (topology === undefined) throw new Error('setup');
    await program({ name: node.name, ips: [node.ip], zone: undefined, labels: {}, podCIDRs: [] }, settings);
    const peer = async (netns: string): Promise<string> => {
      const result = await topology!.tcp(netns, CLUSTER_IP, 80);
      if (!result.ok) throw new Error(`probe from ${netns}: ${result.error} ${result.detail}`);
      expect(result.reply.pod).toBe('server');
      return result.reply.peerIP;
    };
    return { pod: await peer(client.netns), node: await peer(node.netns) };
  }

  it('ClusterCIDR: a pod keeps its address, the node is masqueraded', async () => {
    expect(await seenFrom({ detectLocal: { mode: 'ClusterCIDR' } })).toEqual({ pod: client.ip, node: node.ip });
  });

  it("InterfaceNamePrefix: traffic in on an interface with the pods' prefix keeps its address, on others it is masqueraded", async () => {
    // The harness names each pod's host-side veth `<topology id>p<n>`.
    expect(await seenFrom({ detectLocal: { mode: 'InterfaceNamePrefix', interfaceNamePrefix: `${topology?.id ?? ''}p` } })).toEqual({ pod: client.ip, node: node.ip });
    expect(await seenFrom({ detectLocal: { mode: 'InterfaceNamePrefix', interfaceNamePrefix: 'cali' } })).toEqual({ pod: node.ip, node: node.ip });
  });

  it('BridgeInterface: only traffic in on that interface is from a pod', async () => {
    const clientVeth = `${topology?.id ?? ''}p1`;
    expect(await seenFrom({ detectLocal: { mode: 'BridgeInterface', bridgeInterface: clientVeth } })).toEqual({ pod: client.ip, node: node.ip });
    expect(await seenFrom({ detectLocal: { mode: 'BridgeInterface', bridgeInterface: `${topology?.id ?? ''}p2` } })).toEqual({ pod: node.ip, node: node.ip });
  });

  it('masqueradeAll: pods are masqueraded too', async () => {
    expect(await seenFrom({ detectLocal: { mode: 'ClusterCIDR' }, masqueradeAll: true })).toEqual({ pod: node.ip, node: node.ip });
  });
});
