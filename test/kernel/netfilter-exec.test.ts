// ExecNetfilter, saved-tables parsing and iptables variant detection against real iptables (nft and legacy),
// each test in its own throwaway network namespace.

import { afterAll, describe, expect, it } from 'vitest';
import { detectIptablesVariant } from '../../src/netfilter/iptables-variant.js';
import { ExecNetfilter, legacyBinaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import { planFullSync } from '../../src/sync/diff.js';
import { parseSavedTables } from '../../src/sync/saved-tables.js';
import { fullPayload } from '../../src/sync/payload.js';
import { deleteAllNetns, kernelSkipReason, withNetns, type Netns } from '../harness/netns.js';
import { makeService, SyntheticRenderer, syntheticJumps, type SyntheticWorld } from '../unit/sync/synthetic.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/netfilter-exec.test.ts: ${skipReason}`);

const backends: readonly (readonly [string, IptablesBinaries])[] = [
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
];

function world(): SyntheticWorld {
  const services = [makeService(1, 2, 30001), makeService(2, 0, 30002), makeService(3, 1)];
  return { services: new Map(services.map((service) => [service.key, service])), randomFully: true, nodePortAddresses: [] };
}

async function savedText(netfilter: ExecNetfilter, table: TableName): Promise<string> {
  const saved = await netfilter.save(table);
  if (!saved.ok) throw new Error(saved.message);
  return saved.text;
}

afterAll(deleteAllNetns);

describe.skipIf(skipReason !== undefined).each(backends)('ExecNetfilter on iptables-%s', (backend, binaries) => {
  const within = <T>(body: (netfilter: ExecNetfilter, netns: Netns) => Promise<T>): Promise<T> =>
    withNetns((netns) => body(new ExecNetfilter({ binaries, prefix: netns.prefix }), netns), backend);

  it('restores a payload, saves it back and checks chains', () =>
    within(async (netfilter) => {
      const restored = await netfilter.restore('*nat\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j RETURN\nCOMMIT\n', { noFlush: true });
      expect(restored).toEqual({ ok: true });
      const text = await savedText(netfilter, 'nat');
      expect(text).toMatch(/^\*nat$/m);
      expect(text).toMatch(/^-A KUBE-SVC-X -j RETURN$/m);
      expect(await netfilter.chainExists('nat', 'KUBE-PROXY-CANARY')).toBe(true);
      expect(await netfilter.chainExists('nat', 'KUBE-NOPE')).toBe(false);
      expect(await netfilter.chainExists('filter', 'KUBE-PROXY-CANARY')).toBe(false);
    }));

  it('reports a jump to a missing chain as ok:false naming the rule line', () =>
    within(async (netfilter) => {
      const payload = [
        '*filter', ':KUBE-SERVICES - [0:0]', 'COMMIT',
        '*nat', ':KUBE-SVC-A - [0:0]', '-A KUBE-SVC-A -j RETURN', '-A KUBE-SVC-A -j KUBE-SEP-MISSING', '-A KUBE-SVC-A -j RETURN', 'COMMIT', '',
      ].join('\n');
      const restored = await netfilter.restore(payload, { noFlush: true });
      expect(restored.ok).toBe(false);
      if (restored.ok) return;
      // iptables-nft names the COMMIT line; ExecNetfilter points at the rule that jumps instead.
      expect(restored.line).toBe(7);
      expect(restored.message).toContain('KUBE-SEP-MISSING');
      // The failed table was not applied; the earlier table was committed (iptables-restore commits per table).
      expect(await netfilter.chainExists('nat', 'KUBE-SVC-A')).toBe(false);
      expect(await netfilter.chainExists('filter', 'KUBE-SERVICES')).toBe(true);
    }));

  it('reports a bad -D as ok:false with its line', () =>
    within(async (netfilter) => {
      const restored = await netfilter.restore('*nat\n:KUBE-SVC-A - [0:0]\n-D KUBE-SVC-A -j RETURN\nCOMMIT\n', { noFlush: true });
      expect(restored).toMatchObject({ ok: false, line: 3 });
    }));

  it('reads its kernel state back from real iptables-save output', () =>
    within(async (netfilter) => {
      const ruleSet = new SyntheticRenderer().render(world());
      expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
      // Someone else's chains and rules, as kubelet leaves them.
      const kubelet = '*filter\n:KUBE-FIREWALL - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n-A KUBE-FIREWALL -m comment --comment "kubelet" -j DROP\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n';
      expect(await netfilter.restore(kubelet, { noFlush: true })).toEqual({ ok: true });

      for (const table of ['filter', 'nat'] as const) {
        const jumps = ruleSet.jumps.filter((jump) => jump.table === table);
        const state = parseSavedTables(await savedText(netfilter, table), jumps);
        const owned = [
          ...ruleSet.staticChains, ...ruleSet.sharedChains, ...[...ruleSet.servicePorts.values()].flatMap((rules) => rules.chains),
        ].filter((chain) => chain.table === table).map((chain) => chain.name);
        expect(new Set(state.ourChains)).toEqual(new Set(owned));
        expect(state.ourChains.has('KUBE-FIREWALL')).toBe(false);
        expect(state.canaryPresent).toBe(true);
        expect(state.missingJumps).toEqual([]);
        expect(state.presentJumps).toEqual(jumps);
        expect(state.staleJumps).toEqual([]);
      }

      // A jump that went missing, and one an older kube-proxy left behind.
      const dropped = syntheticJumps.find((jump) => jump.table === 'filter' && jump.chain === 'FORWARD' && jump.rule.endsWith('-j KUBE-SERVICES'));
      if (dropped === undefined) throw new Error('fixture');
      const edit = `*filter\n-D ${dropped.chain} ${dropped.rule}\n-A INPUT -s 10.0.0.1 -m comment --comment "old kube-proxy" -j KUBE-SERVICES\nCOMMIT\n`;
      expect(await netfilter.restore(edit, { noFlush: true })).toEqual({ ok: true });
      const filterJumps = ruleSet.jumps.filter((jump) => jump.table === 'filter');
      const state = parseSavedTables(await savedText(netfilter, 'filter'), filterJumps);
      expect(state.missingJumps).toEqual([dropped]);
      expect(state.staleJumps).toEqual([
        { table: 'filter', chain: 'INPUT', rule: '-s 10.0.0.1/32 -m comment --comment "old kube-proxy" -j KUBE-SERVICES' },
      ]);

      // A full sync from that state puts the missing jump back and removes the stale one, as printed.
      const plan = planFullSync(ruleSet, { existingChains: new Map([['filter', state.ourChains]]), missingJumps: state.missingJumps, staleJumps: state.staleJumps });
      expect(await netfilter.restore(plan.payload, { noFlush: true })).toEqual({ ok: true });
      const after = parseSavedTables(await savedText(netfilter, 'filter'), filterJumps);
      expect(after).toMatchObject({ missingJumps: [], staleJumps: [] });
      expect(await savedText(netfilter, 'filter')).toMatch(/^-A INPUT -j KUBE-FIREWALL$/m);
    }));
});

describe.skipIf(skipReason !== undefined)('detectIptablesVariant', () => {
  it('defaults to nft on a node without rules', () =>
    withNetns(async (netns) => {
      expect(await detectIptablesVariant({ prefix: netns.prefix })).toMatchObject({ backend: 'nft', binaries: nftBinaries });
    }, 'detect'));

  it("follows kubelet's chains into legacy", () =>
    withNetns(async (netns) => {
      const created = await netns.exec('iptables-legacy', ['-t', 'mangle', '-N', 'KUBE-KUBELET-CANARY']);
      expect(created.code).toBe(0);
      expect(await detectIptablesVariant({ prefix: netns.prefix })).toMatchObject({ backend: 'legacy', binaries: legacyBinaries });
    }, 'detect'));

  it("follows kubelet's chains into nft even when legacy has more rules", () =>
    withNetns(async (netns) => {
      expect((await netns.exec('iptables-nft', ['-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT'])).code).toBe(0);
      for (let i = 0; i < 3; i++) expect((await netns.exec('iptables-legacy', ['-A', 'INPUT', '-j', 'ACCEPT'])).code).toBe(0);
      expect((await detectIptablesVariant({ prefix: netns.prefix })).backend).toBe('nft');
    }, 'detect'));

  it('without kubelet chains, picks the backend holding more rules', () =>
    withNetns(async (netns) => {
      for (let i = 0; i < 3; i++) expect((await netns.exec('iptables-legacy', ['-A', 'INPUT', '-j', 'ACCEPT'])).code).toBe(0);
      expect((await netns.exec('iptables-nft', ['-A', 'INPUT', '-j', 'ACCEPT'])).code).toBe(0);
      expect((await detectIptablesVariant({ prefix: netns.prefix })).backend).toBe('legacy');
    }, 'detect'));
});
