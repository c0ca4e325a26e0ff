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
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext, type RuleSet } from '../../src/render/types.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import { planPartialSync } from '../../src/sync/diff.js';
import { checkDrift, DriftMemo } from '../../src/sync/drift.js';
import { fullPayload } from '../../src/sync/payload.js';
import { createNetns, deleteAllNetns, kernelSkipReason } from '../harness/netns.js';
import { applyChange, ClusterGenerator } from '../support/generate.js';
import { comparableView, driftCases } from '../support/drift-cases.js';

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

async function view(netfilter: ExecNetfilter): Promise<string> {
  return comparableView(await saveAll(netfilter));
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
      const cases = driftCases(ruleSet, netns, binaries);
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
