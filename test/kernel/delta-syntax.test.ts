// The payloads sync/ writes, applied by real iptables-restore --noflush on both backends: the
// facts ADR 001 relies on, a full payload into an empty node, and random sequences of partial
// payloads that must leave the kernel exactly as a fresh full restore of the same state would.

import { afterAll, describe, expect, it } from 'vitest';
import { ExecNetfilter, legacyBinaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import type { RuleSet } from '../../src/render/types.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import { planFullSync, planPartialSync } from '../../src/sync/diff.js';
import { parseSavedTables } from '../../src/sync/saved-tables.js';
import { fullPayload } from '../../src/sync/payload.js';
import { deleteAllNetns, kernelSkipReason, withNetns } from '../harness/netns.js';
import { makeWorld, mutate, prng, SyntheticRenderer, type SyntheticWorld } from '../unit/sync/synthetic.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/delta-syntax.test.ts: ${skipReason}`);

const backends: readonly (readonly [string, IptablesBinaries])[] = [
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
];
const TABLES: readonly TableName[] = ['filter', 'nat'];
const SEEDS = 6;
const STEPS = 12;

afterAll(deleteAllNetns);

async function save(netfilter: ExecNetfilter, table: TableName): Promise<string> {
  const saved = await netfilter.save(table);
  if (!saved.ok) throw new Error(saved.message);
  return saved.text;
}

/**
 * iptables-save output made comparable: no comments or counters, chains sorted, and the service
 * rules of shared chains sorted (in-place `-I` reorders them) while their trailer must stay last.
 */
function normalise(text: string, ruleSet: RuleSet, table: TableName): string {
  const declarations: string[] = [];
  const rules = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) declarations.push(line.replace(/ \[\d+:\d+\]$/, ''));
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ', 2)[1] ?? '';
      rules.set(chain, [...(rules.get(chain) ?? []), line]);
    }
  }
  const out = [`*${table}`, ...declarations.sort()];
  for (const chain of [...rules.keys()].sort()) {
    const chainRules = rules.get(chain) ?? [];
    const shared = ruleSet.sharedChains.find((candidate) => candidate.table === table && candidate.name === chain);
    if (shared === undefined) {
      out.push(...chainRules);
    } else {
      const serviceRuleCount = chainRules.length - shared.trailer.length;
      out.push(...chainRules.slice(0, serviceRuleCount).sort(), '-- trailer --', ...chainRules.slice(serviceRuleCount));
    }
  }
  return out.join('\n');
}

async function kernelView(netfilter: ExecNetfilter, ruleSet: RuleSet): Promise<string> {
  const views: string[] = [];
  for (const table of TABLES) views.push(normalise(await save(netfilter, table), ruleSet, table));
  return views.join('\n');
}

/** What a fresh node given the full payload of `ruleSet` holds. */
function freshView(binaries: IptablesBinaries, ruleSet: RuleSet): Promise<string> {
  return withNetns(async (netns) => {
    const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
    expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
    return kernelView(netfilter, ruleSet);
  }, 'fresh');
}

/** A full sync as the syncer runs it: kernel state read back from iptables-save, then planFullSync. */
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
  const restored = await netfilter.restore(plan.payload, { noFlush: true });
  expect(restored, plan.payload).toEqual({ ok: true });
}

describe.skipIf(skipReason !== undefined).each(backends)('restore deltas on iptables-%s', (backend, binaries) => {
  const within = <T>(body: (netfilter: ExecNetfilter) => Promise<T>): Promise<T> =>
    withNetns((netns) => body(new ExecNetfilter({ binaries, prefix: netns.prefix })), backend);

  it('does not flush a built-in chain declared under --noflush (we never declare them anyway)', () =>
    within(async (netfilter) => {
      expect(await netfilter.restore('*nat\n-A PREROUTING -j RETURN\nCOMMIT\n', { noFlush: true })).toEqual({ ok: true });
      expect(await netfilter.restore('*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT - [0:0]\nCOMMIT\n', { noFlush: true })).toEqual({ ok: true });
      expect(await save(netfilter, 'nat')).toMatch(/^-A PREROUTING -j RETURN$/m);
    }));

  it('flushes a chain of ours that is declared again, and deletes a declared chain with -X', () =>
    within(async (netfilter) => {
      const first = '*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A - [0:0]\n-A KUBE-SEP-A -j RETURN\n-A KUBE-SVC-A -j KUBE-SEP-A\nCOMMIT\n';
      expect(await netfilter.restore(first, { noFlush: true })).toEqual({ ok: true });
      const second = '*nat\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-A - [0:0]\n-A KUBE-SVC-A -j RETURN\n-X KUBE-SEP-A\nCOMMIT\n';
      expect(await netfilter.restore(second, { noFlush: true })).toEqual({ ok: true });
      const text = await save(netfilter, 'nat');
      expect(text.match(/^-A KUBE-SVC-A .*$/gm)).toEqual(['-A KUBE-SVC-A -j RETURN']);
      expect(text).not.toContain('KUBE-SEP-A');
    }));

  it('restores a full payload into an empty namespace', () =>
    within(async (netfilter) => {
      const ruleSet = new SyntheticRenderer().render(makeWorld(30, 3));
      expect(await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
      const nat = await save(netfilter, 'nat');
      const ruleCount = (nat.match(/^-A /gm) ?? []).length;
      const expected = [...ruleSet.staticChains, ...[...ruleSet.servicePorts.values()].flatMap((rules) => rules.chains)]
        .filter((chain) => chain.table === 'nat').reduce((sum, chain) => sum + chain.rules.length, 0)
        + [...ruleSet.servicePorts.values()].flatMap((rules) => rules.sharedRules).filter((shared) => shared.table === 'nat').length
        + ruleSet.sharedChains.filter((chain) => chain.table === 'nat').reduce((sum, chain) => sum + chain.trailer.length, 0)
        + ruleSet.jumps.filter((jump) => jump.table === 'nat').length;
      expect(ruleCount).toBe(expected);
    }));

  it.each(Array.from({ length: SEEDS }, (_, index) => index + 1))(
    'random sequence %i: every partial payload applies and converges to a fresh full restore',
    (seed) =>
      within(async (netfilter) => {
        const random = prng(seed * 7919);
        const renderer = new SyntheticRenderer();
        let world: SyntheticWorld = makeWorld(8, 2);
        let applied = renderer.render(world);
        expect(await netfilter.restore(fullPayload(applied, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
        for (let step = 0; step < STEPS; step++) {
          const next = mutate(world, random);
          world = next.world;
          const desired = renderer.render(world);
          const plan = planPartialSync(applied, desired);
          const context = `seed ${seed} step ${step} (${next.applied.join(', ')})\n${plan.payload}`;
          if (plan.payload !== '') expect(await netfilter.restore(plan.payload, { noFlush: true }), context).toEqual({ ok: true });
          expect(await kernelView(netfilter, desired), context).toBe(await freshView(binaries, desired));
          applied = desired;
        }
        // The periodic full sync over what the deltas built changes nothing observable.
        await fullSync(netfilter, applied);
        expect(await kernelView(netfilter, applied)).toBe(await freshView(binaries, applied));
      }),
  );

  it('a full sync takes over a node holding another state (stale chains, a missing jump)', () =>
    within(async (netfilter) => {
      const renderer = new SyntheticRenderer();
      const before = renderer.render(makeWorld(10, 2));
      expect(await netfilter.restore(fullPayload(before, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
      const jump = before.jumps.find((candidate) => candidate.table === 'nat');
      if (jump === undefined) throw new Error('fixture');
      expect(await netfilter.restore(`*nat\n-D ${jump.chain} ${jump.rule}\nCOMMIT\n`, { noFlush: true })).toEqual({ ok: true });
      let world = makeWorld(4, 3);
      const random = prng(42);
      for (let i = 0; i < 5; i++) world = mutate(world, random).world;
      const desired = renderer.render(world);
      await fullSync(netfilter, desired);
      expect(await kernelView(netfilter, desired)).toBe(await freshView(binaries, desired));
    }));
});
