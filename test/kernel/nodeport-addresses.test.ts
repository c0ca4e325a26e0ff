// nodePortAddresses in nftables mode with real packets: the `nodeport-ips` set holds the addresses
// on the node's interfaces inside the configured CIDRs (upstream's GetNodeIPs), read by the real
// reader inside the node's namespace. A second address of the node inside the CIDR answers the
// NodePort; the node IP, outside it, does not.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRunArgs } from '../../src/config/index.js';
import { ModelStore } from '../../src/model/store.js';
import type { NodeInfo } from '../../src/model/types.js';
import { Nft } from '../../src/nftables/nft.js';
import { nftablesBackend } from '../../src/nftables/nftables-proxier.js';
import { run } from '../harness/exec.js';
import { kernelSkipReason } from '../harness/netns.js';
import { Topology, type NodeHandle, type PodHandle } from '../harness/topology.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/nodeport-addresses.test.ts: ${skipReason}`);

const NODE_PORT = 30090;
/** A second address of the node, on its LAN interface, inside SECOND_CIDR (the node IP .10 is not). */
const SECOND_IP = '172.30.0.77';
const SECOND_CIDR = '172.30.0.64/26';

/** The production reader run inside the namespace, as an agent there would run it. */
async function interfaceAddressesIn(netns: string): Promise<string[]> {
  const script = "import { interfaceAddresses } from './src/agent/interface-addresses.ts'; console.log(JSON.stringify(interfaceAddresses()))";
  const stdout = await run('ip', ['netns', 'exec', netns, 'npx', 'tsx', '-e', script], { timeoutMs: 60_000 });
  return JSON.parse(stdout) as string[];
}

describe.skipIf(skipReason !== undefined)('nodePortAddresses in nftables mode, with real packets', () => {
  let topology: Topology | undefined;
  let node: NodeHandle;
  let server: PodHandle;

  beforeAll(async () => {
    topology = await Topology.create(['node1']);
    node = topology.node('node1');
    server = await topology.addPod(node, 'server');
    await run('ip', ['-n', node.netns, 'addr', 'add', `${SECOND_IP}/24`, 'dev', 'eth0']);
  });
  afterAll(async () => {
    await topology?.destroy();
  });

  it('the NodePort answers on the interface address inside the CIDR and not on the node IP outside it', async () => {
    if (topology === undefined) throw new Error('setup');
    const parsed = parseRunArgs(
      ['--hostname-override', node.name, '--proxy-mode', 'nftables', '--node-ip', node.ip, '--cluster-cidr', '10.244.0.0/16', '--nodeport-addresses', SECOND_CIDR],
      {}, () => '', 'host',
    );
    if (parsed.kind !== 'ok') throw new Error(JSON.stringify(parsed));
    const nodeInfo: NodeInfo = { name: node.name, ips: [node.ip], zone: undefined, labels: {}, podCIDRs: [] };
    const store = new ModelStore(nodeInfo);
    store.upsertService(service('web', '10.96.0.30', { nodePort: NODE_PORT }));
    store.upsertEndpointSlice(slice('web', [server.ip], { node: node.name }));
    const addresses = await interfaceAddressesIn(node.netns);
    expect(addresses).toEqual(expect.arrayContaining([node.ip, SECOND_IP]));
    const proxier = nftablesBackend({ nft: new Nft({ prefix: ['ip', 'netns', 'exec', node.netns] }), interfaceAddresses: () => addresses })({
      family: 'IPv4',
      store,
      settings: () => ({ config: parsed.config, node: nodeInfo, capabilities: {} }),
      conntrackCleanup: undefined,
    });
    const report = await proxier.sync('initial');
    expect(report.result, JSON.stringify(report)).toBe('applied');

    const set = await run('ip', ['netns', 'exec', node.netns, 'nft', 'list', 'set', 'ip', 'kube-proxy', 'nodeport-ips']);
    expect(set).toContain(SECOND_IP);
    expect(set).not.toContain(node.ip);
    const second = await topology.tcp(topology.externalNetns, SECOND_IP, NODE_PORT);
    expect(second.ok ? second.reply.pod : second.error, JSON.stringify(second)).toBe('server');
    // Nothing on the node listens there: without the NodePort rule the connection is refused.
    const nodeIP = await topology.tcp(topology.externalNetns, node.ip, NODE_PORT);
    expect(nodeIP.ok ? 'answered' : nodeIP.error, JSON.stringify(nodeIP)).toBe('refused');
  });
});
