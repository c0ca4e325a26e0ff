// `kube-proxy-ts cleanup` against a real kernel: after a full render is restored, the cleanup
// payload removes every chain and jump we own, and leaves kubelet's and others' chains alone.

import { afterAll, describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../src/model/build.js';
import { ipv6Binaries, legacyBinaries, nftBinaries, ExecNetfilter } from '../../src/netfilter/exec.js';
import { exec } from '../harness/exec.js';
import { renderRuleSet } from '../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext } from '../../src/render/types.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import { cleanupPayload } from '../../src/sync/cleanup.js';
import { fullPayload } from '../../src/sync/payload.js';
import { createNetns, deleteAllNetns, kernelSkipReason } from '../harness/netns.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skip = kernelSkipReason();
afterAll(async () => {
  await deleteAllNetns();
});

describe.skipIf(skip !== undefined).each([
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
] as const)('cleanup payload (%s)', (_name, binaries) => {
  it('removes our chains and jumps, keeps kubelet and foreign chains', async () => {
    const netns = await createNetns('cleanup');
    try {
      const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
      const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
      const { state } = buildDesiredState({
        services: [service('a', '10.96.0.1', { nodePort: 30001 }), service('b', '10.96.0.2')],
        endpointSlices: [slice('a', ['10.244.1.1', '10.244.1.2'])],
        node,
      });
      const ruleSet = renderRuleSet(state, { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: node.ips, localhostNodePorts: false });
      const foreign = ['*filter', ':KUBE-FIREWALL - [0:0]', ':KUBE-ROUTER-INPUT - [0:0]', '-A INPUT -j KUBE-FIREWALL', '-A INPUT -j KUBE-ROUTER-INPUT', 'COMMIT', ''].join('\n');
      expect(await netfilter.restore(foreign, { noFlush: true })).toEqual({ ok: true });
      expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });

      const saved = new Map<TableName, string>();
      for (const table of ['filter', 'nat'] as const) {
        const result = await netfilter.save(table);
        if (!result.ok) throw new Error(result.message);
        expect(result.text).toContain('KUBE-SERVICES');
        saved.set(table, result.text);
      }
      expect(await netfilter.restore(cleanupPayload(saved), { noFlush: true })).toEqual({ ok: true });

      for (const table of ['filter', 'nat'] as const) {
        const result = await netfilter.save(table);
        if (!result.ok) throw new Error(result.message);
        const chains = result.text.split('\n').filter((line) => line.startsWith(':')).map((line) => line.slice(1).split(' ')[0]);
        expect(chains.filter((chain) => chain?.startsWith('KUBE-') && chain !== 'KUBE-FIREWALL' && chain !== 'KUBE-ROUTER-INPUT')).toEqual([]);
        if (table === 'filter') {
          expect(chains).toContain('KUBE-FIREWALL');
          expect(result.text).toContain('-A INPUT -j KUBE-ROUTER-INPUT');
        }
      }
      // A second cleanup has nothing left to do.
      const again = new Map<TableName, string>();
      for (const table of ['filter', 'nat'] as const) {
        const result = await netfilter.save(table);
        if (result.ok) again.set(table, result.text);
      }
      expect(cleanupPayload(again)).toBe('');
    } finally {
      await netns.delete();
    }
  });
});

describe.skipIf(skip !== undefined)('`kube-proxy-ts cleanup` on a dual-stack node', () => {
  it('removes our chains from iptables and ip6tables alike', async () => {
    const netns = await createNetns('cleanup6');
    try {
      for (const family of ['IPv4', 'IPv6'] as const) {
        const ip = family === 'IPv4' ? ['10.96.0.1', '10.96.0.2', '10.244.1.1'] : ['fd00:10:96::1', 'fd00:10:96::2', 'fd00:10:244::1'];
        const node = { name: 'node1', ips: [family === 'IPv4' ? '172.30.0.10' : 'fd00:30::10'], zone: undefined, labels: {}, podCIDRs: [] };
        const endpoints = { ...slice('a', [ip[2] ?? '']), addressType: family };
        const { state } = buildDesiredState({ services: [service('a', ip[0] ?? '', { nodePort: 30001 }), service('b', ip[1] ?? '')], endpointSlices: [endpoints], node, family });
        expect(state.servicePorts.size).toBe(2);
        const ruleSet = renderRuleSet(state, { ...defaultRenderContext, nodeIPs: node.ips, localhostNodePorts: false });
        const netfilter = new ExecNetfilter({ binaries: family === 'IPv4' ? nftBinaries : ipv6Binaries(nftBinaries), prefix: netns.prefix });
        expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
      }
      const cleaned = await exec('ip', ['netns', 'exec', netns.name, 'npx', 'tsx', 'src/cli.ts', 'cleanup', '--iptables-backend', 'nft'], { timeoutMs: 60_000 });
      expect(cleaned.code, cleaned.stderr).toBe(0);
      expect(cleaned.stdout).toMatch(/IPv4: removed \d+ chains/);
      expect(cleaned.stdout).toMatch(/IPv6: removed \d+ chains/);
      for (const save of ['iptables-nft-save', 'ip6tables-nft-save']) {
        const saved = await exec('ip', ['netns', 'exec', netns.name, save]);
        expect(saved.stdout, save).not.toMatch(/KUBE-(SERVICES|SVC-|SEP-|NODEPORTS|PROXY-CANARY)/);
      }
    } finally {
      await netns.delete();
    }
  });
});
