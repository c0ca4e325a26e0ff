import { describe, expect, it } from 'vitest';
import { DriftChecker } from '../../../src/sync/drift-check.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import type { Netfilter } from '../../../src/netfilter/netfilter.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { defaultRenderContext } from '../../../src/render/types.js';
import { fullPayload } from '../../../src/sync/payload.js';
import { ModelStore } from '../../../src/model/store.js';

describe('DriftChecker', () => {
  it('keeps its checks to a quarter of the wall time: after an expensive one, the next waits', async () => {
    let now = 0;
    const fake = new FakeNetfilter();
    const ruleSet = renderRuleSet(new ModelStore({ name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] }).snapshot().state, defaultRenderContext);
    expect((await fake.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: true })).ok).toBe(true);
    // Each table takes 1 s to read.
    const slow: Netfilter = {
      save: async (table) => {
        now += 1000;
        return fake.save(table);
      },
      restore: (payload, options) => fake.restore(payload, options),
      chainExists: (table, chain) => fake.chainExists(table, chain),
    };
    const checker = new DriftChecker(slow, () => now);
    expect(checker.start(ruleSet, 1)).toBeUndefined();
    await checker.readSettled();
    expect(checker.take(1)).toMatchObject({ kind: 'checked', findings: [], seconds: 2 });
    now = 5_000;
    expect(checker.start(ruleSet, 1)).toEqual({ kind: 'deferred', dueInMs: 3_000, seconds: 0 });
    now = 8_000;
    expect(checker.start(ruleSet, 1)).toBeUndefined();
    await checker.readSettled();
    expect(checker.take(1)).toMatchObject({ kind: 'checked', findings: [] });
  });
});
