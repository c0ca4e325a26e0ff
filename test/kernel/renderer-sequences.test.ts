// The real model, renderer and differ against real iptables on both backends: generated sequences
// of cluster changes go through ModelStore -> renderRuleSet (one shared RenderCache) ->
// planPartialSync -> iptables-restore --noflush, and after every step the kernel must hold exactly
// what a fresh node given the full render of the same state holds.

import { afterAll, describe, expect, it } from 'vitest';
import { ModelStore } from '../../src/model/store.js';
import type { NodeInfo } from '../../src/model/types.js';
import { ExecNetfilter, legacyBinaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import { RenderCache, renderRuleSet } from '../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext, type RuleSet } from '../../src/render/types.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import { planFullSync, planPartialSync } from '../../src/sync/diff.js';
import { parseSavedTables } from '../../src/sync/saved-tables.js';
import { fullPayload } from '../../src/sync/payload.js';
import { createNetns, deleteAllNetns, kernelSkipReason, withNetns, type Netns } from '../harness/netns.js';
import { applyChange, ClusterGenerator } from '../support/generate.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/renderer-sequences.test.ts: ${skipReason}`);

const backends: readonly (readonly [string, IptablesBinaries])[] = [
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
];
const TABLES: readonly TableName[] = ['filter', 'nat'];
const SHARED_CHAINS: ReadonlySet<string> = new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'KUBE-PROXY-FIREWALL']);
const STEPS = 14;

const node: NodeInfo = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const baseContext: RenderContext = {
  ...defaultRenderContext,
  localTraffic: localTrafficFromCIDR('10.244.0.0/16'),
  nodeIPs: node.ips,
  localhostNodePorts: false,
};

/**
 * Each scenario is one seed plus what makes it different: more or fewer changes per step, a
 * node-wide setting that flips halfway (rewriting the shared chains' trailers and the jumps), or a
 * low large-cluster threshold that drops or restores every per-endpoint comment as the total
 * number of endpoints crosses it (seed 4 crosses it back and forth).
 */
interface Scenario {
  readonly seed: number;
  readonly services: number;
  readonly changesPerStep: number;
  readonly endpoints?: readonly [number, number];
  readonly sctp?: boolean;
  readonly context?: Partial<RenderContext>;
  /** Applied from step STEPS / 2 on. */
  readonly flip?: Partial<RenderContext>;
}

const scenarios: readonly Scenario[] = [
  { seed: 1, services: 8, changesPerStep: 1 },
  { seed: 2, services: 12, changesPerStep: 3 },
  { seed: 3, services: 10, changesPerStep: 2, flip: { nodePortAddresses: ['172.30.0.0/24'] } },
  { seed: 4, services: 10, changesPerStep: 2, context: { largeClusterEndpointsThreshold: 16 } },
  { seed: 5, services: 6, changesPerStep: 4, context: { masqueradeAll: true, localTraffic: undefined }, flip: { localhostNodePorts: true } },
  { seed: 6, services: 8, changesPerStep: 2, endpoints: [3, 9], sctp: true },
  { seed: 7, services: 14, changesPerStep: 1, endpoints: [0, 2], flip: { randomFully: false, masqueradeBit: 12 } },
  { seed: 8, services: 10, changesPerStep: 5 },
];

afterAll(deleteAllNetns);

async function save(netfilter: ExecNetfilter, table: TableName): Promise<string> {
  const saved = await netfilter.save(table);
  if (!saved.ok) throw new Error(saved.message);
  return saved.text;
}

/**
 * iptables-save output made comparable: no counters, chains sorted, and the rules of
 * the shared chains sorted (in-place `-I` puts new service rules on top; the one trailer rule,
 * the KUBE-NODEPORTS jump, must stay last and so is kept apart). Comments stay: both sides go
 * through the same iptables-save, and a rule whose comment went stale is a real difference.
 */
function normalise(text: string, table: TableName): string {
  const declarations: string[] = [];
  const rules = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) {
      declarations.push(line.replace(/ \[\d+:\d+\]$/, ''));
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ', 2)[1] ?? '';
      rules.set(chain, [...(rules.get(chain) ?? []), line]);
    }
  }
  const out = [`*${table}`, ...declarations.sort()];
  for (const chain of [...rules.keys()].sort()) {
    const chainRules = rules.get(chain) ?? [];
    if (!SHARED_CHAINS.has(chain)) {
      out.push(...chainRules);
      continue;
    }
    const trailer = chainRules.filter((rule) => rule.endsWith('-j KUBE-NODEPORTS'));
    const serviceRules = chainRules.filter((rule) => !rule.endsWith('-j KUBE-NODEPORTS'));
    // The trailer must come last, so compare its position too.
    expect(chainRules.slice(chainRules.length - trailer.length), `${table} ${chain}: trailer not last`).toEqual(trailer);
    out.push(...serviceRules.sort(), ...trailer);
  }
  return out.join('\n');
}

async function kernelView(netfilter: ExecNetfilter): Promise<string> {
  const views: string[] = [];
  for (const table of TABLES) views.push(normalise(await save(netfilter, table), table));
  return views.join('\n');
}

/** What a fresh node holds once given the full payload of `ruleSet`. */
function freshView(binaries: IptablesBinaries, ruleSet: RuleSet): Promise<string> {
  return withNetns(async (netns) => {
    const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
    const payload = fullPayload(ruleSet, { jumps: 'append' });
    expect(await netfilter.restore(payload, { noFlush: true }), payload).toEqual({ ok: true });
    return kernelView(netfilter);
  }, 'fresh');
}

/** The periodic full sync, as the syncer runs it: kernel facts from iptables-save, then planFullSync. */
async function fullSync(netfilter: ExecNetfilter, ruleSet: RuleSet): Promise<void> {
  const existingChains = new Map<TableName, ReadonlySet<string>>();
  const missingJumps = [];
  const staleJumps = [];
  for (const table of TABLES) {
    const state = parseSavedTables(await save(netfilter, table), ruleSet.jumps.filter((jump) => jump.table === table));
    existingChains.set(table, state.ourChains);
    missingJumps.push(...state.missingJumps);
    staleJumps.push(...state.staleJumps);
  }
  const plan = planFullSync(ruleSet, { existingChains, missingJumps, staleJumps });
  expect(await netfilter.restore(plan.payload, { noFlush: true }), plan.payload).toEqual({ ok: true });
}

describe.skipIf(skipReason !== undefined).each(backends)('real renderer deltas on iptables-%s', (_backend, binaries) => {
  it.each(scenarios)('seed $seed: every partial sync leaves the kernel as a fresh full restore would', async (scenario) => {
    let netns: Netns | undefined;
    try {
      netns = await createNetns('seq');
      const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
      const generator = new ClusterGenerator({
        seed: scenario.seed,
        nodeName: node.name,
        maxServices: scenario.services + 4,
        featureRate: 0.35,
        sctp: scenario.sctp ?? false,
        ...(scenario.endpoints === undefined ? {} : { endpoints: scenario.endpoints }),
      });
      const store = new ModelStore(node);
      for (const change of generator.populate(scenario.services)) applyChange(store, change);
      const cache = new RenderCache();
      let context: RenderContext = { ...baseContext, ...scenario.context };
      let snapshot = store.snapshot();
      expect(snapshot.skipped).toEqual([]);
      let applied = renderRuleSet(snapshot.state, context, cache);
      const initial = fullPayload(applied, { jumps: 'append' });
      expect(await netfilter.restore(initial, { noFlush: true }), initial).toEqual({ ok: true });
      expect(await kernelView(netfilter)).toBe(await freshView(binaries, applied));

      let partialBytes = 0;
      for (let step = 0; step < STEPS; step++) {
        if (step === Math.floor(STEPS / 2) && scenario.flip !== undefined) context = { ...context, ...scenario.flip };
        const mutations = generator.mutate(scenario.changesPerStep);
        for (const mutation of mutations) for (const change of mutation.changes) applyChange(store, change);
        snapshot = store.snapshot();
        expect(snapshot.skipped).toEqual([]);
        const desired = renderRuleSet(snapshot.state, context, cache);
        const plan = planPartialSync(applied, desired);
        const label = `seed ${scenario.seed} step ${step}: ${mutations.map((mutation) => mutation.description).join('; ')}`;
        if (plan.payload !== '') {
          expect(await netfilter.restore(plan.payload, { noFlush: true }), `${label}\n${plan.payload}`).toEqual({ ok: true });
        }
        partialBytes += plan.stats.bytes;
        expect(await kernelView(netfilter), `${label}\n${plan.payload}`).toBe(await freshView(binaries, desired));
        applied = desired;
      }
      // Deltas, not rewrites: together they stay well below one full payload per step.
      expect(partialBytes).toBeLessThan(fullPayload(applied, { jumps: 'append' }).length * STEPS);

      await fullSync(netfilter, applied);
      expect(await kernelView(netfilter)).toBe(await freshView(binaries, applied));
    } finally {
      await netns?.delete();
    }
  });
});
