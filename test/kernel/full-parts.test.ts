// A full sync split into parts (sync/full-parts.ts; both backends) leaves the real kernel
// in the same state as one payload: on a fresh node, and over a node that already has rules.

import { afterAll, describe, expect, it } from 'vitest';
import { ExecNetfilter, legacyBinaries, nftBinaries } from '../../src/netfilter/exec.js';
import type { RuleSet } from '../../src/render/types.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import { planFullSync } from '../../src/sync/diff.js';
import { readTables } from '../../src/sync/read-tables.js';
import { deleteAllNetns, kernelSkipReason, withNetns } from '../harness/netns.js';
import { makeService, SyntheticRenderer, type SyntheticWorld } from '../unit/sync/synthetic.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/full-parts.test.ts: ${skipReason}`);

const TABLES: readonly TableName[] = ['filter', 'nat'];

function world(count: number, endpoints: number): SyntheticWorld {
  const services = Array.from({ length: count }, (_, index) => makeService(index + 1, endpoints, index % 4 === 0 ? 30000 + index : undefined));
  return { services: new Map(services.map((service) => [service.key, service])), randomFully: true, nodePortAddresses: [] };
}

/** A full sync as the syncer runs it: kernel facts from iptables-save, then each part in order. */
async function fullSync(netfilter: ExecNetfilter, ruleSet: RuleSet, chainsPerPart: number): Promise<number> {
  const plan = planFullSync(ruleSet, await readTables(netfilter, ruleSet), chainsPerPart);
  const parts = plan.parts ?? [plan.payload];
  for (const part of parts) expect(await netfilter.restore(part, { noFlush: true })).toEqual({ ok: true });
  return parts.length;
}

/** iptables-save of our tables without counters and comments lines. */
async function tables(netfilter: ExecNetfilter): Promise<string> {
  const texts: string[] = [];
  for (const table of TABLES) {
    const saved = await netfilter.save(table);
    if (!saved.ok) throw new Error(saved.message);
    texts.push(saved.text.split('\n').filter((line) => !line.startsWith('#')).map((line) => line.replace(/\[\d+:\d+\]/, '')).join('\n'));
  }
  return texts.join('\n');
}

afterAll(deleteAllNetns);

describe.skipIf(skipReason !== undefined)('full sync in parts', () => {
  it.each([
    ['nft', nftBinaries],
    ['legacy', legacyBinaries],
  ] as const)('matches one payload on a fresh node and over existing rules (%s)', async (_name, binaries) => {
    const before = new SyntheticRenderer().render(world(40, 3));
    const after = new SyntheticRenderer().render(world(30, 2));
    const [inParts, whole] = await withNetns((a) =>
      withNetns(async (b) => {
        const split = new ExecNetfilter({ binaries, prefix: a.prefix });
        const single = new ExecNetfilter({ binaries, prefix: b.prefix });
        expect(await fullSync(split, before, 25)).toBeGreaterThan(3);
        expect(await fullSync(single, before, 0)).toBe(1);
        expect(await tables(split)).toBe(await tables(single));
        expect(await fullSync(split, after, 25)).toBeGreaterThan(3);
        expect(await fullSync(single, after, 0)).toBe(1);
        return [await tables(split), await tables(single)];
      }, 'parts-b'),
    'parts-a');
    expect(inParts).toBe(whole);
    expect(inParts).toMatch(/^:KUBE-SVC-/m);
  });
});
