// Every interface name the configuration accepts for detectLocalMode BridgeInterface and
// InterfaceNamePrefix yields a payload the real iptables-restore loads, with the name intact in
// the kernel (nft and legacy backends). A '"' used to get through and break the payload.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARSERS } from '../../src/config/fields.js';
import { buildDesiredState } from '../../src/model/build.js';
import { ExecNetfilter, legacyBinaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import { renderRuleSet } from '../../src/render/index.js';
import { defaultRenderContext, localTrafficFromBridge, localTrafficFromInterfacePrefix, type LocalTraffic } from '../../src/render/types.js';
import { fullPayload } from '../../src/sync/payload.js';
import { createNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/interface-names.test.ts: ${skipReason}`);

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const { state } = buildDesiredState({ services: [service('web', '10.96.0.20')], endpointSlices: [slice('web', ['10.244.1.1'])], node });

/** `a<c>b` for every printable ASCII character c the configuration accepts in an interface name. */
const accepted = Array.from({ length: 0x7e - 0x21 + 1 }, (_, offset) => `a${String.fromCharCode(0x21 + offset)}b`).filter((name) => {
  const parsed = PARSERS.podBridgeInterface(name);
  return parsed.ok && parsed.value === name;
});

const backends: readonly [string, IptablesBinaries][] = [
  ['nft', nftBinaries],
  ['legacy', legacyBinaries],
];

describe.skipIf(skipReason !== undefined).each(backends)('accepted interface names load (%s)', (_label, binaries) => {
  let netns: Netns;
  beforeAll(async () => {
    netns = await createNetns('ifnames');
  });
  afterAll(async () => {
    await netns?.delete();
  });

  it('refuses the quote characters and accepts the other printable ones', () => {
    expect(accepted.length).toBeGreaterThan(80);
    for (const quote of ['"', "'", '\\']) expect(accepted).not.toContain(`a${quote}b`);
  });

  it.each([
    ['BridgeInterface', (name: string): LocalTraffic => localTrafficFromBridge(name), (name: string) => `-i ${name} `],
    ['InterfaceNamePrefix', (name: string): LocalTraffic => localTrafficFromInterfacePrefix(name), (name: string) => `-i ${name}+ `],
  ] as const)('%s: every accepted name is restored and read back intact', async (_mode, localTraffic, inRule) => {
    const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
    const failures: string[] = [];
    for (const name of accepted) {
      const ruleSet = renderRuleSet(state, { ...defaultRenderContext, nodeIPs: node.ips, localhostNodePorts: false, localTraffic: localTraffic(name) });
      const restored = await netfilter.restore(fullPayload(ruleSet, { jumps: 'append' }), { noFlush: false });
      if (!restored.ok) {
        failures.push(`${name}: ${restored.message}`);
        continue;
      }
      const saved = await netfilter.save('nat');
      if (!saved.ok || !saved.text.includes(inRule(name))) failures.push(`${name}: not in iptables-save`);
    }
    expect(failures).toEqual([]);
  });
});
