import { describe, expect, it } from 'vitest';
import { IptablesProxier } from '../../../src/sync/iptables-proxier.js';
import { ModelStore } from '../../../src/model/store.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext, type RuleSet } from '../../../src/render/types.js';
import type { TableName } from '../../../src/netfilter/vocabulary.js';
import { planFullSync, type ObservedTables } from '../../../src/sync/diff.js';
import { buildFullPayloadParts } from '../../../src/sync/full-parts.js';
import { readTables } from '../../../src/sync/read-tables.js';
import { service, slice } from '../agent/fixtures.js';

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const context: RenderContext = { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: node.ips, localhostNodePorts: false };
const TABLES: readonly TableName[] = ['filter', 'nat'];

/** `count` Services (every third a NodePort) with `endpoints` endpoints each; `shift` moves the endpoint IPs. */
function fill(store: ModelStore, count: number, endpoints: number, shift = 0): void {
  for (let index = 0; index < count; index++) {
    const name = `s${index}`;
    store.upsertService(service(name, `10.96.0.${index + 1}`, index % 3 === 0 ? { nodePort: 30000 + index } : {}));
    store.upsertEndpointSlice(slice(name, Array.from({ length: endpoints }, (_, j) => `10.244.${index}.${j + 1 + shift}`)));
  }
}

function ruleSetOf(count: number, endpoints: number, shift = 0): RuleSet {
  const store = new ModelStore(node);
  fill(store, count, endpoints, shift);
  return renderRuleSet(store.snapshot().state, context);
}

function kernelFacts(netfilter: FakeNetfilter, ruleSet: RuleSet): Promise<ObservedTables> {
  return readTables(netfilter, ruleSet);
}

async function tables(netfilter: FakeNetfilter): Promise<string[]> {
  const texts: string[] = [];
  for (const table of TABLES) {
    const saved = await netfilter.save(table);
    texts.push(saved.ok ? saved.text : saved.message);
  }
  return texts;
}

/** Applies a full sync of `desired` to `netfilter`, split into parts or not; returns the restore count. */
async function applyFull(netfilter: FakeNetfilter, desired: RuleSet, chainsPerPart: number): Promise<number> {
  const plan = planFullSync(desired, await kernelFacts(netfilter, desired), chainsPerPart);
  const parts = plan.parts ?? [plan.payload];
  expect(parts.join('')).toBe(plan.payload);
  for (const part of parts) expect(await netfilter.restore(part, { noFlush: true })).toEqual({ ok: true });
  return parts.length;
}

describe('full sync in parts (nft backend)', () => {
  it('applies in order, each part on its own, and leaves the same tables as one payload', async () => {
    const desired = ruleSetOf(30, 3);
    const inParts = new FakeNetfilter();
    const restores = await applyFull(inParts, desired, 20);
    expect(restores).toBeGreaterThan(4);
    const whole = new FakeNetfilter();
    expect(await applyFull(whole, desired, 0)).toBe(1);
    expect(await tables(inParts)).toEqual(await tables(whole));
  });

  it('writes static chains first and the dispatch chains and jumps last', () => {
    const parts = buildFullPayloadParts(ruleSetOf(30, 3), { jumps: 'insert' }, 20);
    expect(parts).toBeDefined();
    const payloads = (parts ?? []).map((part) => part.payload);
    expect(payloads[0]).toContain(':KUBE-MARK-MASQ - [0:0]');
    expect(payloads[0]).not.toContain('KUBE-SVC-');
    expect(payloads[1]).toContain(':KUBE-SVC-');
    expect(payloads[1]).not.toContain(':KUBE-SERVICES ');
    const last = payloads[payloads.length - 1] ?? '';
    expect(last).toContain(':KUBE-SERVICES - [0:0]');
    expect(last).toContain('-I PREROUTING 1 ');
    expect(last).not.toContain(':KUBE-SEP-');
  });

  it('keeps one payload when the rule set is small or parts are off', () => {
    const small = ruleSetOf(2, 2);
    expect(buildFullPayloadParts(small, { jumps: 'insert' }, 1000)).toBeUndefined();
    expect(buildFullPayloadParts(ruleSetOf(30, 3), { jumps: 'insert' }, 0)).toBeUndefined();
    expect(planFullSync(small, { existingChains: new Map(), missingJumps: [] }, 1000).parts).toBeUndefined();
  });

  it('rewrites a node that already has rules like one payload would, deleting stale chains last', async () => {
    const before = ruleSetOf(30, 3);
    const after = ruleSetOf(25, 2, 7);
    const inParts = new FakeNetfilter();
    const whole = new FakeNetfilter();
    await applyFull(inParts, before, 0);
    await applyFull(whole, before, 0);
    expect(await applyFull(inParts, after, 20)).toBeGreaterThan(2);
    await applyFull(whole, after, 0);
    expect(await tables(inParts)).toEqual(await tables(whole));
  });

  it('lets the syncer restore the parts of its first sync one by one, then sync changes in one call', async () => {
    const store = new ModelStore(node);
    fill(store, 30, 3);
    const netfilter = new FakeNetfilter();
    const syncer = new IptablesProxier({
      store,
      netfilter,
      conntrackCleanup: undefined,
      renderContext: () => context,
      fullSyncPeriodMs: 3_600_000,
      fullSyncChainsPerPart: 20,
    });
    const first = await syncer.sync('initial');
    expect(first).toMatchObject({ result: 'applied', kind: 'full' });
    const afterFirst = netfilter.restoreCalls;
    expect(afterFirst).toBe(first.plan?.parts?.length);
    expect(afterFirst).toBeGreaterThan(4);
    store.upsertEndpointSlice(slice('s4', ['10.244.4.1', '10.244.4.99']));
    const second = await syncer.sync('change');
    expect(second).toMatchObject({ result: 'applied', kind: 'partial' });
    expect(netfilter.restoreCalls).toBe(afterFirst + 1);
  });
});
