// Drift detection and repair (sync/drift.ts) against real iptables on both backends: what
// iptables-save prints back for every rule the renderer writes is not drift (generated rule sets
// under several node-wide settings, also after in-place partial syncs), and each kind of tampering
// done with the real `iptables` command is found, named, and undone by the repair payload, leaving
// the kernel as a fresh full restore of the same rule set would.

import { afterAll, describe, expect, it } from 'vitest';
import { ModelStore } from '../../src/model/store.js';
import type { NodeInfo } from '../../src/model/types.js';
import { ExecNetfilter, legacyBinaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import { RenderCache, renderRuleSet } from '../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext, type RuleSet, type TableName } from '../../src/render/types.js';
import { planPartialSync } from '../../src/sync/diff.js';
import { checkDrift, DriftMemo, type DriftFinding } from '../../src/sync/drift.js';
import { fullPayload } from '../../src/sync/payload.js';
import { createNetns, deleteAllNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { applyChange, ClusterGenerator } from '../support/generate.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/drift.test.ts: ${skipReason}`);

const backends: readonly (readonly [string, IptablesBinaries])[] = [
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
];
const TABLES: readonly TableName[] = ['filter', 'nat'];
const node: NodeInfo = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const baseContext: RenderContext = { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: node.ips, localhostNodePorts: false };

const contexts: readonly (readonly [string, Partial<RenderContext>])[] = [
  ['defaults', {}],
  ['nodePortAddresses, no random-fully, bit 12', { nodePortAddresses: ['172.30.0.0/24'], randomFully: false, masqueradeBit: 12 }],
  ['masqueradeAll, localhost NodePorts', { masqueradeAll: true, localTraffic: undefined, localhostNodePorts: true }],
  ['no comments (large cluster)', { largeClusterEndpointsThreshold: 4 }],
];

afterAll(deleteAllNetns);

async function saveAll(netfilter: ExecNetfilter): Promise<Map<TableName, string>> {
  const saved = new Map<TableName, string>();
  for (const table of TABLES) {
    const result = await netfilter.save(table);
    if (!result.ok) throw new Error(result.message);
    saved.set(table, result.text);
  }
  return saved;
}

function generated(seed: number, services: number, context: RenderContext): { store: ModelStore; generator: ClusterGenerator; cache: RenderCache; ruleSet: RuleSet } {
  const generator = new ClusterGenerator({ seed, nodeName: node.name, featureRate: 0.4, maxServices: services + 4, endpoints: [0, 5] });
  const store = new ModelStore(node);
  for (const change of generator.populate(services)) applyChange(store, change);
  const cache = new RenderCache();
  return { store, generator, cache, ruleSet: renderRuleSet(store.snapshot().state, context, cache) };
}

/** Rules per chain, counters dropped, shared chains' service rules sorted: two kernels compared. */
async function view(netfilter: ExecNetfilter): Promise<string> {
  const out: string[] = [];
  for (const [table, text] of await saveAll(netfilter)) {
    const lines = text.split('\n').filter((line) => line.startsWith(':') || line.startsWith('-A ')).map((line) => line.replace(/ \[\d+:\d+\]$/, ''));
    const byChain = new Map<string, string[]>();
    for (const line of lines.filter((line) => line.startsWith('-A '))) {
      const chain = line.split(' ')[1] ?? '';
      byChain.set(chain, [...(byChain.get(chain) ?? []), line]);
    }
    out.push(`*${table}`, ...lines.filter((line) => line.startsWith(':')).sort());
    for (const chain of [...byChain.keys()].sort()) {
      const rules = byChain.get(chain) ?? [];
      const shared = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'KUBE-PROXY-FIREWALL'].includes(chain);
      out.push(...(shared ? [...rules.slice(0, -1).sort(), ...rules.slice(-1)] : rules));
    }
  }
  return out.join('\n');
}

describe.skipIf(skipReason !== undefined).each(backends)('drift on iptables-%s', (_backend, binaries) => {
  it.each(contexts)('what the renderer writes is read back as no drift (%s), also after in-place partial syncs', async (_label, overrides) => {
    const netns = await createNetns('drift');
    try {
      const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
      const context = { ...baseContext, ...overrides };
      const { store, generator, cache, ruleSet } = generated(11, 14, context);
      expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
      const memo = new DriftMemo();
      const first = checkDrift(ruleSet, await saveAll(netfilter), memo);
      expect(first.findings).toEqual([]);
      expect(first.repair).toBeUndefined();
      // A second look at the unchanged kernel is settled by the memo.
      const second = checkDrift(ruleSet, await saveAll(netfilter), memo);
      expect(second.findings).toEqual([]);
      expect(second.chainsFromMemo).toBeGreaterThan(0);

      let applied = ruleSet;
      for (let step = 0; step < 6; step++) {
        for (const mutation of generator.mutate(3)) for (const change of mutation.changes) applyChange(store, change);
        const desired = renderRuleSet(store.snapshot().state, context, cache);
        const plan = planPartialSync(applied, desired);
        if (plan.payload !== '') expect(await netfilter.restore(plan.payload, { noFlush: true }), plan.payload).toEqual({ ok: true });
        applied = desired;
        expect(checkDrift(applied, await saveAll(netfilter), memo).findings, `step ${step}`).toEqual([]);
      }
    } finally {
      await netns.delete();
    }
  });

  it('finds each kind of tampering, names it, and repairs it with a small delta', async () => {
    const netns = await createNetns('drift');
    try {
      const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
      const { ruleSet } = generated(5, 10, baseContext);
      const full = fullPayload(ruleSet, { jumps: 'append' });
      expect(await netfilter.restore(full, { noFlush: true })).toEqual({ ok: true });
      const pristine = await view(netfilter);
      const svc = [...ruleSet.servicePorts.values()].flatMap((rules) => rules.chains).find((chain) => chain.name.startsWith('KUBE-SVC-') && chain.rules.length >= 3);
      const sep = [...ruleSet.servicePorts.values()].flatMap((rules) => rules.chains).find((chain) => chain.name.startsWith('KUBE-SEP-'));
      if (svc === undefined || sep === undefined) throw new Error('the generated rule set lacks a KUBE-SVC- chain with 3 rules or a KUBE-SEP- chain');
      const iptables = (table: TableName, ...args: string[]) => async (): Promise<void> => {
        const result = await netns.exec(binaries.iptables, ['-w', '-t', table, ...args]);
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      };
      const restore = (payload: string, noFlush = true) => async (): Promise<void> => {
        const result = await netns.exec(binaries.restore, noFlush ? ['--noflush'] : [], payload);
        expect(result.code, result.stderr).toBe(0);
      };
      const cases: readonly { readonly name: string; readonly tamper: () => Promise<void>; readonly expected: readonly DriftFinding[] }[] = [
        { name: 'service rule deleted from KUBE-SERVICES', tamper: iptables('nat', '-D', 'KUBE-SERVICES', '1'), expected: [{ table: 'nat', chain: 'KUBE-SERVICES', kind: 'rule-missing' }] },
        { name: 'foreign rule added to KUBE-SERVICES', tamper: iptables('nat', '-I', 'KUBE-SERVICES', '2', '-d', '10.99.0.1/32', '-j', 'ACCEPT'), expected: [{ table: 'nat', chain: 'KUBE-SERVICES', kind: 'rule-extra' }] },
        { name: 'service rule replaced in KUBE-SERVICES', tamper: iptables('nat', '-R', 'KUBE-SERVICES', '1', '-d', '10.99.0.2/32', '-j', 'RETURN'), expected: [{ table: 'nat', chain: 'KUBE-SERVICES', kind: 'rule-changed' }] },
        { name: 'trailer moved up in KUBE-SERVICES', tamper: async () => {
          const rules = (await netns.exec(binaries.iptables, ['-w', '-t', 'nat', '-S', 'KUBE-SERVICES'])).stdout.split('\n').filter((line) => line.startsWith('-A '));
          const trailer = (rules.at(-1) ?? '').slice('-A KUBE-SERVICES '.length);
          await restore(`*nat\n-D KUBE-SERVICES ${trailer}\n-I KUBE-SERVICES 1 ${trailer}\nCOMMIT\n`)();
        }, expected: [{ table: 'nat', chain: 'KUBE-SERVICES', kind: 'rules-reordered' }] },
        { name: 'rule deleted from a KUBE-SVC- chain', tamper: iptables('nat', '-D', svc.name, '2'), expected: [{ table: 'nat', chain: svc.name, kind: 'rule-missing' }] },
        { name: 'rule appended to a KUBE-SEP- chain', tamper: iptables('nat', '-A', sep.name, '-j', 'RETURN'), expected: [{ table: 'nat', chain: sep.name, kind: 'rule-extra' }] },
        { name: 'rule changed in a KUBE-SVC- chain', tamper: iptables('nat', '-R', svc.name, '1', '-j', 'RETURN'), expected: [{ table: 'nat', chain: svc.name, kind: 'rule-changed' }] },
        { name: 'rules of a KUBE-SVC- chain reordered', tamper: async () => {
          const rule = (await netns.exec(binaries.iptables, ['-w', '-t', 'nat', '-S', svc.name])).stdout.split('\n').filter((line) => line.startsWith('-A '))[0] ?? '';
          await iptables('nat', '-D', svc.name, '1')();
          await restore(`*nat\n${rule}\nCOMMIT\n`)();
        }, expected: [{ table: 'nat', chain: svc.name, kind: 'rules-reordered' }] },
        { name: 'KUBE-SVC- chain flushed', tamper: iptables('nat', '-F', svc.name), expected: [{ table: 'nat', chain: svc.name, kind: 'chain-flushed' }] },
        { name: 'canary chain deleted', tamper: iptables('nat', '-X', 'KUBE-PROXY-CANARY'), expected: [{ table: 'nat', chain: 'KUBE-PROXY-CANARY', kind: 'chain-missing' }] },
        { name: 'filter KUBE-FORWARD flushed', tamper: iptables('filter', '-F', 'KUBE-FORWARD'), expected: [{ table: 'filter', chain: 'KUBE-FORWARD', kind: 'chain-flushed' }] },
        { name: 'jump from PREROUTING deleted', tamper: iptables('nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'), expected: [{ table: 'nat', chain: 'PREROUTING', kind: 'jump-missing' }] },
        { name: 'nat table flushed', tamper: restore('*nat\nCOMMIT\n', false), expected: [{ table: 'nat', chain: '*', kind: 'table-flushed' }] },
        { name: 'filter table flushed', tamper: restore('*filter\nCOMMIT\n', false), expected: [{ table: 'filter', chain: '*', kind: 'table-flushed' }] },
      ];
      for (const drift of cases) {
        await drift.tamper();
        const found = checkDrift(ruleSet, await saveAll(netfilter));
        expect(found.findings, drift.name).toEqual(drift.expected);
        const payload = found.repair?.payload ?? '';
        expect(await netfilter.restore(payload, { noFlush: true }), `${drift.name}\n${payload}`).toEqual({ ok: true });
        expect(checkDrift(ruleSet, await saveAll(netfilter)).findings, `${drift.name}: after the repair`).toEqual([]);
        expect(await view(netfilter), `${drift.name}: kernel after the repair`).toBe(pristine);
        // A repair of one chain costs that chain, not the rule set (a flushed table is all of it).
        if (!drift.expected.some((finding) => finding.kind === 'table-flushed')) expect(payload.length, drift.name).toBeLessThan(full.length / 4);
      }
    } finally {
      await netns.delete();
    }
  });
});
