// Switching modes on a dual-stack node leaves nothing of the other mode, in either family: what
// `run` removes at start in each mode (removeIptablesRulesOfFamilies in nftables mode,
// removeNftablesTables in iptables mode), and the `cleanup` command, which removes both, each
// against a real kernel holding both modes' rules of both families.

import { afterAll, describe, expect, it } from 'vitest';
import { removeIptablesRulesOfFamilies, removeNftablesTables } from '../../src/cli/mode-cleanup.js';
import { buildDesiredState } from '../../src/model/build.js';
import { ModelStore } from '../../src/model/store.js';
import { ExecNetfilter, ipv6Binaries, nftBinaries } from '../../src/netfilter/exec.js';
import { Nft } from '../../src/nftables/nft.js';
import { NftablesProxier } from '../../src/nftables/nftables-proxier.js';
import { renderRuleSet } from '../../src/render/index.js';
import { defaultRenderContext, localTrafficFromCIDR } from '../../src/render/types.js';
import { fullPayload } from '../../src/sync/payload.js';
import { exec } from '../harness/exec.js';
import { createNetns, deleteAllNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skip = kernelSkipReason();
afterAll(async () => {
  await deleteAllNetns();
});

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const services = [service('a', '10.96.0.1', { nodePort: 30001 }), service('b', '10.96.0.2')];
const slices = [slice('a', ['10.244.1.1', '10.244.1.2'])];

/** A node that ran both modes: iptables-nft and ip6tables-nft chains, the nftables mode's ip and ip6 tables. */
async function bothModes(netns: Netns): Promise<void> {
  const netfilter = new ExecNetfilter({ binaries: nftBinaries, prefix: netns.prefix });
  const { state } = buildDesiredState({ services, endpointSlices: slices, node });
  const ruleSet = renderRuleSet(state, { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: node.ips, localhostNodePorts: false });
  expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
  const store = new ModelStore(node);
  for (const object of services) store.upsertService(object);
  for (const object of slices) store.upsertEndpointSlice(object);
  const proxier = new NftablesProxier({
    family: 'IPv4', store, nft: new Nft({ prefix: netns.prefix }), conntrackCleanup: undefined, fullSyncPeriodMs: 3_600_000, chainsPerTransaction: 1000,
    context: () => ({ masqueradeMark: '0x00004000', masqueradeAll: false, localTraffic: undefined, nodePortIPs: 'all', primaryNodeIP: node.ips[0], serviceCIDRs: [] }),
  });
  expect((await proxier.sync('initial')).result).toBe('applied');
  expect((await netns.exec('nft', ['add', 'table', 'ip6', 'kube-proxy'])).code).toBe(0);
  // The IPv6 lane's iptables mode: its dispatch chain and the jump into it.
  expect((await netns.exec('ip6tables-nft', ['-t', 'nat', '-N', 'KUBE-SERVICES'])).code).toBe(0);
  expect((await netns.exec('ip6tables-nft', ['-t', 'nat', '-A', 'PREROUTING', '-j', 'KUBE-SERVICES'])).code).toBe(0);
}

function netfilters(netns: Netns): { IPv4: ExecNetfilter; IPv6: ExecNetfilter } {
  return {
    IPv4: new ExecNetfilter({ binaries: nftBinaries, prefix: netns.prefix }),
    IPv6: new ExecNetfilter({ binaries: ipv6Binaries(nftBinaries), prefix: netns.prefix }),
  };
}

/** Our iptables chains (kubelet's KUBE-FIREWALL is not ours and stays). */
async function iptablesChains(netns: Netns, save = 'iptables-nft-save'): Promise<string[]> {
  const saved = await netns.exec(save, []);
  return saved.stdout.split('\n').filter((line) => /^:KUBE-/.test(line)).map((line) => line.slice(1).split(' ')[0] ?? '').filter((chain) => chain !== 'KUBE-FIREWALL');
}

async function nftTables(netns: Netns): Promise<string[]> {
  return (await netns.exec('nft', ['list', 'tables'])).stdout.split('\n').filter((line) => line.trim() !== '').sort();
}

describe.skipIf(skip !== undefined)('switching modes', () => {
  it('nftables mode at start removes the iptables mode rules of both families and keeps its own tables', async () => {
    const netns = await createNetns('switch-nft');
    await bothModes(netns);
    expect(await iptablesChains(netns)).toContain('KUBE-SERVICES');
    expect(await iptablesChains(netns, 'ip6tables-nft-save')).toEqual(['KUBE-SERVICES']);
    const removed = await removeIptablesRulesOfFamilies(netfilters(netns));
    expect(removed.map(({ family, outcome }) => [family, outcome.ok])).toEqual([['IPv4', true], ['IPv6', true]]);
    expect(await iptablesChains(netns)).toEqual([]);
    expect(await iptablesChains(netns, 'ip6tables-nft-save')).toEqual([]);
    expect(await nftTables(netns)).toEqual(expect.arrayContaining(['table ip kube-proxy', 'table ip6 kube-proxy']));
    await netns.delete();
  });

  it('iptables mode at start removes the nftables tables (ip and ip6) and keeps the iptables rules', async () => {
    const netns = await createNetns('switch-ipt');
    await bothModes(netns);
    expect(await removeNftablesTables(new Nft({ prefix: netns.prefix }))).toEqual({ ok: true, removed: 2 });
    expect((await nftTables(netns)).filter((line) => line.includes('kube-proxy'))).toEqual([]);
    expect(await iptablesChains(netns)).toContain('KUBE-SERVICES');
    // Nothing left: a second pass is a no-op, not an error.
    expect(await removeNftablesTables(new Nft({ prefix: netns.prefix }))).toEqual({ ok: true, removed: 0 });
    await netns.delete();
  });

  it('`cleanup` removes both modes', async () => {
    const netns = await createNetns('switch-cleanup');
    await bothModes(netns);
    const result = await exec('ip', ['netns', 'exec', netns.name, 'npx', 'tsx', 'src/cli.ts', 'cleanup', '--iptables-backend', 'nft'], { timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('removed 2 nftables kube-proxy tables');
    expect(result.stdout).toContain('IPv6: removed 1 chains');
    expect(await iptablesChains(netns)).toEqual([]);
    expect(await iptablesChains(netns, 'ip6tables-nft-save')).toEqual([]);
    expect((await nftTables(netns)).filter((line) => line.includes('kube-proxy'))).toEqual([]);
    await netns.delete();
  });
});
