// The longest names the apiserver allows give comments the kernel keeps whole: iptables-save
// prints back exactly the comments rendered (iptables cuts past 255 characters without a word).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../src/model/build.js';
import { ExecNetfilter, legacyBinaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import { renderRuleSet } from '../../src/render/index.js';
import { defaultRenderContext, localTrafficFromCIDR } from '../../src/render/types.js';
import { fullPayload } from '../../src/sync/payload.js';
import { createNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { longestNamedObjects, ruleComments } from '../support/longest-names.js';
import { makeNode } from '../unit/model/fixtures.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/comment-length.test.ts: ${skipReason}`);

const backends: readonly [string, IptablesBinaries][] = [
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
];

describe.skipIf(skipReason !== undefined).each(backends)('comments of the longest names (%s)', (label, binaries) => {
  let netns: Netns;
  beforeAll(async () => {
    netns = await createNetns('comments');
  });
  afterAll(async () => {
    await netns?.delete();
  });

  it('are kept whole by the kernel', async () => {
    const { state, skipped } = buildDesiredState({ ...longestNamedObjects(), node: makeNode('node-a') });
    expect(skipped).toEqual([]);
    const payload = fullPayload(
      renderRuleSet(state, { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: ['172.30.0.10'], localhostNodePorts: false }),
      { jumps: 'append' },
    );
    const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
    expect(await netfilter.restore(payload, { noFlush: false })).toEqual({ ok: true });
    const saved: string[] = [];
    for (const table of ['filter', 'nat'] as const) {
      const result = await netfilter.save(table);
      if (!result.ok) throw new Error(result.message);
      saved.push(result.text);
    }
    const rendered = ruleComments(payload).sort();
    const kernel = ruleComments(saved.join('\n')).sort();
    expect(kernel).toEqual(rendered);
    console.log(`comments of the longest names (${label}): ${rendered.length}, the longest ${Math.max(...rendered.map((comment) => comment.length))} characters, all kept whole`);
  });
});
