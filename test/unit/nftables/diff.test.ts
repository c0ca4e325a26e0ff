// The nftables differ: a partial sync holds only what changed (by service port, by element), shared
// elements are reference-counted, a redefined affinity set is replaced safely, and a full sync is
// cut into transactions of whole service ports with every element in the last one.

import { describe, expect, it } from 'vitest';
import { planFullSync, planPartialSync } from '../../../src/nftables/diff.js';
import { ElementIndex } from '../../../src/nftables/elements.js';
import { NftRenderCache, renderNftRuleset } from '../../../src/nftables/render.js';
import type { NftRuleset } from '../../../src/nftables/types.js';
import type { ServicePort } from '../../../src/model/types.js';
import { desiredState, endpoint, servicePort } from '../render/fixtures.js';
import { transactionsOf, upstreamContext } from './support.js';
import { ModelStore } from '../../../src/model/store.js';
import type { PersistentMap } from '../../../src/model/persistent-map.js';
import { service, slice } from '../agent/fixtures.js';

function services(count: number): ServicePort[] {
  return Array.from({ length: count }, (_, index) =>
    servicePort({ namespace: 'ns', name: `svc${index}`, clusterIP: `172.30.${index >> 8}.${index & 255}`, endpoints: [endpoint(`10.180.${index >> 8}.${index & 255}`)] }),
  );
}

/** A full sync's outcome as the proxier keeps it: the ruleset and the element index. */
function applyFull(ruleset: NftRuleset): ElementIndex {
  return planFullSync(ruleset, undefined, { recreateBaseChains: true, chainsPerTransaction: 1000 }).elements;
}

describe('planPartialSync', () => {
  const cache = new NftRenderCache();
  const render = (ports: readonly ServicePort[]): NftRuleset => renderNftRuleset(desiredState(ports), upstreamContext, cache);

  it('writes nothing when nothing changed', () => {
    const ports = services(50);
    const applied = render(ports);
    const plan = planPartialSync(applied, render(ports), applyFull(applied));
    expect(transactionsOf(plan)).toEqual([]);
  });

  it('a new endpoint of one Service among 100: its endpoint chain and its service chain, no element, no other Service', () => {
    const ports = services(100);
    const applied = render(ports);
    const elements = applyFull(applied);
    const changed = servicePort({ namespace: 'ns', name: 'svc7', clusterIP: '172.30.0.7', endpoints: [endpoint('10.180.0.7'), endpoint('10.180.9.9')] });
    const next = render(ports.map((port) => (port.name === 'svc7' ? changed : port)));
    const plan = planPartialSync(applied, next, elements);
    expect(transactionsOf(plan)).toHaveLength(1);
    const lines = transactionsOf(plan)[0] ?? [];
    expect(lines.filter((line) => /^add chain \S+ \S+ \S+$/.test(line))).toEqual([expect.stringMatching(/^add chain ip kube-proxy endpoint-[A-Z2-7]{8}-ns\/svc7\/tcp\/p80__10\.180\.9\.9\/80$/)]);
    expect(lines.filter((line) => line.startsWith('flush chain'))).toEqual([expect.stringMatching(/^flush chain ip kube-proxy service-[A-Z2-7]{8}-ns\/svc7\/tcp\/p80$/)]);
    // Both chains' rules in the block form nft applies without dumping the table into its cache.
    expect(lines.filter((line) => / \{ .* ; \}$/.test(line)).map((line) => line.split(' ')[4]?.split('-')[0])).toEqual(['endpoint', 'service']);
    expect(lines.filter((line) => line.startsWith('add rule'))).toEqual([]);
    expect(lines.some((line) => line.includes('element'))).toBe(false);
    expect(lines.every((line) => !/svc(?!7\/)\d/.test(line))).toBe(true);
    expect(plan.stats).toMatchObject({ chainsWritten: 2, chainsFlushed: 0, elementsAdded: 0, elementsDeleted: 0 });
  });

  it('a removed Service: its chains flushed for later deletion, its elements deleted, a cluster IP another port still uses kept', () => {
    const http = servicePort({ namespace: 'ns', name: 'web', portName: 'http', clusterIP: '172.30.9.1', endpoints: [endpoint('10.180.9.1')] });
    const https = servicePort({ namespace: 'ns', name: 'web', portName: 'https', port: 443, clusterIP: '172.30.9.1', endpoints: [endpoint('10.180.9.1', { port: 443 })] });
    const applied = render([http, https]);
    const elements = applyFull(applied);
    const deleting = { rewriteMaxElements: -1 };
    const plan = planPartialSync(applied, render([https]), elements, deleting);
    const lines = transactionsOf(plan).flat();
    expect(plan.staleChains).toHaveLength(2);
    expect(lines.filter((line) => line.startsWith('flush chain')).length).toBe(2);
    expect(lines.filter((line) => line.startsWith('delete chain'))).toEqual([]);
    expect(lines.filter((line) => line.includes('element'))).toEqual(['delete element ip kube-proxy service-ips { 172.30.9.1 . tcp . 80 }']);
    plan.elementChanges?.commit();
    // Now the last user goes: the cluster IP leaves the set.
    const last = planPartialSync(render([https]), render([]), elements, deleting);
    expect(transactionsOf(last).flat().filter((line) => line.includes('element')).sort()).toEqual([
      'delete element ip kube-proxy cluster-ips { 172.30.9.1 }',
      'delete element ip kube-proxy service-ips { 172.30.9.1 . tcp . 443 }',
    ]);
  });

  it('endpoints arriving: the no-endpoint element goes, the service-ips element comes, in one transaction', () => {
    const empty = servicePort({ namespace: 'ns', name: 'late', clusterIP: '172.30.9.2' });
    const applied = render([empty]);
    const elements = applyFull(applied);
    const plan = planPartialSync(applied, render([servicePort({ namespace: 'ns', name: 'late', clusterIP: '172.30.9.2', endpoints: [endpoint('10.180.9.2')] })]), elements, { rewriteMaxElements: -1 });
    expect(transactionsOf(plan)).toHaveLength(1);
    const lines = transactionsOf(plan).flat();
    const deleteAt = lines.indexOf('delete element ip kube-proxy no-endpoint-services { 172.30.9.2 . tcp . 80 }');
    const addAt = lines.findIndex((line) => /^add map ip kube-proxy service-ips \{ type .* elements = \{ 172\.30\.9\.2 \. tcp \. 80 : goto service-/.test(line));
    const chainAt = lines.findIndex((line) => line.startsWith('add chain ip kube-proxy service-'));
    expect(deleteAt).toBeGreaterThanOrEqual(0);
    // The chain exists before the map points at it.
    expect(chainAt).toBeGreaterThanOrEqual(0);
    expect(addAt).toBeGreaterThan(chainAt);
  });

  it('a small map losing an element is flushed and written whole (no `delete element`: nft fills its whole cache for it); a larger one is deleted from', () => {
    const late = servicePort({ namespace: 'ns', name: 'late', clusterIP: '172.30.9.2' });
    const idle = servicePort({ namespace: 'ns', name: 'idle', clusterIP: '172.30.9.3' });
    const served = servicePort({ namespace: 'ns', name: 'late', clusterIP: '172.30.9.2', endpoints: [endpoint('10.180.9.2')] });
    const applied = render([late, idle]);
    const elements = applyFull(applied);
    const plan = planPartialSync(applied, render([served, idle]), elements, { rewriteMaxElements: 1 });
    const lines = transactionsOf(plan).flat();
    expect(lines.filter((line) => line.startsWith('delete '))).toEqual([]);
    const flushAt = lines.indexOf('flush map ip kube-proxy no-endpoint-services');
    const rewriteAt = lines.findIndex((line) => line.startsWith('add map ip kube-proxy no-endpoint-services {'));
    expect(flushAt).toBeGreaterThanOrEqual(0);
    expect(rewriteAt).toBeGreaterThan(flushAt);
    // What remains is written back: idle's element, not late's.
    expect(lines[rewriteAt]).toContain('172.30.9.3 . tcp . 80');
    expect(lines[rewriteAt]).not.toContain('172.30.9.2');
    expect(plan.stats.elementsDeleted).toBe(1);
    // With two elements left it is above the limit of 1: deleted from.
    const third = servicePort({ namespace: 'ns', name: 'third', clusterIP: '172.30.9.4' });
    const applied3 = render([late, idle, third]);
    const elements3 = applyFull(applied3);
    const lines3 = transactionsOf(planPartialSync(applied3, render([served, idle, third]), elements3, { rewriteMaxElements: 1 })).flat();
    expect(lines3).toContain('delete element ip kube-proxy no-endpoint-services { 172.30.9.2 . tcp . 80 }');
    expect(lines3).not.toContain('flush map ip kube-proxy no-endpoint-services');
  });

  it('a map left empty is flushed, and nothing is added back', () => {
    const late = servicePort({ namespace: 'ns', name: 'late', clusterIP: '172.30.9.2' });
    const applied = render([late]);
    const elements = applyFull(applied);
    const lines = transactionsOf(planPartialSync(applied, render([servicePort({ namespace: 'ns', name: 'late', clusterIP: '172.30.9.2', endpoints: [endpoint('10.180.9.2')] })]), elements)).flat();
    expect(lines).toContain('flush map ip kube-proxy no-endpoint-services');
    expect(lines.some((line) => line.startsWith('add map ip kube-proxy no-endpoint-services'))).toBe(false);
    expect(lines.some((line) => line.startsWith('delete '))).toBe(false);
  });

  it('an affinity set nothing names any more is left for the stale-chain deletion; one coming back while still there is replaced', () => {
    const sticky = (ips: string[], timeoutSeconds = 60): ServicePort =>
      servicePort({ namespace: 'ns', name: 'sticky', clusterIP: '172.30.9.7', sessionAffinity: { kind: 'ClientIP', timeoutSeconds }, endpoints: ips.map((ip) => endpoint(ip)) });
    const applied = render([sticky(['10.180.9.4', '10.180.9.6'])]);
    const elements = applyFull(applied);
    const gone = planPartialSync(applied, render([sticky(['10.180.9.4'])]), elements);
    const lines = transactionsOf(gone).flat();
    expect(lines.filter((line) => line.startsWith('delete '))).toEqual([]);
    expect(gone.staleSets).toHaveLength(1);
    expect(gone.staleSets[0]).toMatch(/^affinity-.*10\.180\.9\.6/);
    gone.elementChanges?.commit();
    // Back before it was deleted, with another timeout: deleted and declared anew in one transaction.
    const back = planPartialSync(render([sticky(['10.180.9.4'])]), render([sticky(['10.180.9.4', '10.180.9.6'], 30)]), elements, { pendingStaleSets: new Set(gone.staleSets) });
    const backLines = transactionsOf(back).flat();
    const name = gone.staleSets[0] ?? '';
    const deleteAt = backLines.indexOf(`delete set ip kube-proxy ${name}`);
    const addAt = backLines.findIndex((line) => line.startsWith(`add set ip kube-proxy ${name} {`));
    expect(deleteAt).toBeGreaterThanOrEqual(0);
    expect(addAt).toBeGreaterThan(deleteAt);
    expect(back.writtenSets).toContain(name);
  });

  it('a new affinity timeout replaces the sets after flushing every chain that names them', () => {
    const sticky = (timeoutSeconds: number): ServicePort =>
      servicePort({ namespace: 'ns', name: 'sticky', clusterIP: '172.30.9.3', sessionAffinity: { kind: 'ClientIP', timeoutSeconds }, endpoints: [endpoint('10.180.9.3')] });
    const applied = render([sticky(10800)]);
    const elements = applyFull(applied);
    const lines = transactionsOf(planPartialSync(applied, render([sticky(60)]), elements)).flat();
    const flushes = lines.map((line, index) => (line.startsWith('flush chain') ? index : -1)).filter((index) => index >= 0);
    const deleteSet = lines.findIndex((line) => line.startsWith('delete set ip kube-proxy affinity-'));
    const addSet = lines.findIndex((line) => line.startsWith('add set ip kube-proxy affinity-') && line.includes('timeout 60s'));
    expect(flushes).toHaveLength(2);
    expect(deleteSet).toBeGreaterThan(Math.max(...flushes));
    expect(addSet).toBeGreaterThan(deleteSet);
  });

  it('cache-light: rules go in chain blocks, elements in map blocks, and an unchanged affinity set a rewritten chain names is declared first', () => {
    const sticky = (endpoints: readonly string[]): ServicePort =>
      servicePort({ namespace: 'ns', name: 'sticky', clusterIP: '172.30.9.4', sessionAffinity: { kind: 'ClientIP', timeoutSeconds: 10800 }, endpoints: endpoints.map((ip) => endpoint(ip)) });
    const plain = servicePort({ namespace: 'ns', name: 'new', clusterIP: '172.30.9.5', endpoints: [endpoint('10.180.9.5')] });
    const applied = render([sticky(['10.180.9.4'])]);
    const elements = applyFull(applied);
    const lines = transactionsOf(planPartialSync(applied, render([sticky(['10.180.9.4', '10.180.9.6']), plain]), elements)).flat();
    // nft 1.0.6 dumps every chain and set of the family before `add rule` / `add element`.
    expect(lines.filter((line) => line.startsWith('add rule') || line.startsWith('add element'))).toEqual([]);
    const keptSet = lines.findIndex((line) => /^add set ip kube-proxy affinity-\S+__10\.180\.9\.4\/80 \{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; \}$/.test(line));
    const serviceBlock = lines.findIndex((line) => /^add chain ip kube-proxy service-\S+-ns\/sticky\/tcp\/p80 \{ .*@affinity-.*__10\.180\.9\.4\/80 goto /.test(line));
    expect(keptSet).toBeGreaterThanOrEqual(0);
    expect(serviceBlock).toBeGreaterThan(keptSet);
    expect(lines.filter((line) => line.startsWith('add map ip kube-proxy service-ips')).join('\n')).toMatch(/elements = \{ 172\.30\.9\.5 \. tcp \. 80 : goto service-\S+-ns\/new\/tcp\/p80 \} ; \}$/);
  });
});

describe('planFullSync', () => {
  it('builds each transaction only when it is reached; its figures add up once every transaction was walked', () => {
    const ruleset = renderNftRuleset(desiredState(services(30)), upstreamContext);
    const plan = planFullSync(ruleset, undefined, { recreateBaseChains: true, chainsPerTransaction: 10 });
    expect(plan.stats.bytes).toBe(0);
    const iterator = plan.transactions()[Symbol.iterator]();
    const head = iterator.next().value ?? [];
    expect(plan.stats.lines).toBe(head.length);
    const rest: (readonly string[])[] = [];
    for (let next = iterator.next(); next.done !== true; next = iterator.next()) rest.push(next.value);
    const all = [head, ...rest];
    expect(all).toHaveLength(plan.transactionCount);
    const lines = all.flat();
    expect({ bytes: plan.stats.bytes, lines: plan.stats.lines }).toEqual({ bytes: lines.reduce((sum, line) => sum + line.length + 1, 0), lines: lines.length });
    // Walked again (a retry), the same text and the same figures.
    expect(transactionsOf(plan)).toEqual(all);
    expect(plan.stats.lines).toBe(lines.length);
  });

  it('cuts service chains into transactions of whole service ports and puts every element in the last one', () => {
    const ruleset = renderNftRuleset(desiredState(services(1200)), upstreamContext);
    const plan = planFullSync(ruleset, undefined, { recreateBaseChains: true, chainsPerTransaction: 500 });
    // Static head, 1200 x 2 chains in slices of >= 500, then the elements.
    const transactions = transactionsOf(plan);
    expect(transactions.length).toBe(1 + Math.ceil(2400 / 500) + 1);
    expect(plan.transactionCount).toBe(transactions.length);
    const last = transactions[transactions.length - 1] ?? [];
    expect(transactions.slice(0, -1).flat().some((line) => line.includes('element'))).toBe(false);
    expect(last.filter((line) => line.startsWith('flush map') || line.startsWith('flush set')).length).toBe(ruleset.containers.length);
    expect(plan.stats.elementsAdded).toBe(1 + 1200 * 2);
    // Each service port's chains stay together (its service chain jumps to its endpoint chain).
    for (const transaction of transactionsOf(plan).slice(1, -1)) {
      expect(transaction.filter((line) => line.startsWith('add chain ip kube-proxy service-')).length).toBe(
        transaction.filter((line) => line.startsWith('add chain ip kube-proxy endpoint-')).length,
      );
    }
  });

  it('flushes service chains and deletes affinity sets it observed but no longer wants; leaves stock chains alone', () => {
    const ruleset = renderNftRuleset(desiredState(services(2)), upstreamContext);
    const observed = {
      chains: new Set(['services', 'service-AAAAAAAA-old/gone/tcp/p80', 'my-own-chain']),
      sets: new Set(['cluster-ips', 'affinity-AAAAAAAA-old/gone/tcp/p80__10.0.0.1/80']),
    };
    const plan = planFullSync(ruleset, observed, { recreateBaseChains: false, chainsPerTransaction: 1000 });
    const last = transactionsOf(plan)[transactionsOf(plan).length - 1] ?? [];
    expect(plan.staleChains).toEqual(['service-AAAAAAAA-old/gone/tcp/p80']);
    expect(last).toContain('flush chain ip kube-proxy service-AAAAAAAA-old/gone/tcp/p80');
    expect(last).toContain('delete set ip kube-proxy affinity-AAAAAAAA-old/gone/tcp/p80__10.0.0.1/80');
    expect(transactionsOf(plan).flat().some((line) => line.includes('my-own-chain'))).toBe(false);
  });
});

describe('ElementIndex', () => {
  it('a changed value is a delete and an add of the same key; a plan applies only when committed', () => {
    const index = new ElementIndex();
    index.plan([], [{ container: 'service-ips', key: '1.2.3.4 . tcp . 80', value: 'goto a' }]).commit();
    const change = index.plan([{ container: 'service-ips', key: '1.2.3.4 . tcp . 80', value: 'goto a' }], [{ container: 'service-ips', key: '1.2.3.4 . tcp . 80', value: 'goto b' }]);
    expect(change.deletes.map((element) => element.value)).toEqual(['goto a']);
    expect(change.adds.map((element) => element.value)).toEqual(['goto b']);
    expect(index.elements().map((element) => element.value)).toEqual(['goto a']);
    change.commit();
    expect(index.elements().map((element) => element.value)).toEqual(['goto b']);
  });
});

describe('partial plans over the model store (PersistentMap shards)', () => {
  const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };

  it('reuses every parts shard an update did not touch, and the plan still holds exactly the change', () => {
    const store = new ModelStore(node);
    for (let index = 0; index < 600; index++) {
      store.upsertService(service(`s${index}`, `10.96.${index >> 8}.${index & 255}`));
      store.upsertEndpointSlice(slice(`s${index}`, [`10.244.${index >> 8}.${index & 255}`]));
    }
    const plain = service('h0', 'None');
    store.upsertService({ ...plain, spec: { ...plain.spec, clusterIP: 'None', clusterIPs: ['None'] } });
    const cache = new NftRenderCache();
    const first = renderNftRuleset(store.snapshot().state, upstreamContext, cache);
    const elements = planFullSync(first, undefined, { recreateBaseChains: true, chainsPerTransaction: 1000 }).elements;
    // A headless Service contributes nothing (no chain, no element).
    const headlessParts = [...first.servicePorts].filter(([key]) => key.includes('h0'));
    expect(headlessParts.every(([, part]) => part.chains.length === 0 && part.elements.length === 0)).toBe(true);

    store.upsertEndpointSlice(slice('s7', ['10.244.0.7', '10.244.9.9']));
    store.deleteService('default', 's300');
    const second = renderNftRuleset(store.snapshot().state, upstreamContext, cache);
    const shards = (ruleset: NftRuleset): readonly ReadonlyMap<string, unknown>[] => (ruleset.servicePorts as PersistentMap<unknown>).shardMaps;
    const kept = shards(second).filter((shard, index) => shard === shards(first)[index]).length;
    expect(kept).toBeGreaterThanOrEqual(shards(first).length - 2);

    const plan = planPartialSync(first, second, elements, { rewriteMaxElements: -1 });
    const lines = transactionsOf(plan).flat();
    // s7: its new endpoint's chain and its service chain rewritten; s300: its chains flushed, its elements gone.
    expect(lines.some((line) => line.includes('dnat to 10.244.9.9'))).toBe(true);
    expect(plan.staleChains.length).toBeGreaterThanOrEqual(2);
    expect(plan.staleChains.every((name) => name.includes('default/s300/'))).toBe(true);
    expect(lines.filter((line) => line.startsWith('delete element')).join('\n')).toContain('10.96.1.44');
    expect(lines.some((line) => /default\/s(?!7\/|300\/)\d+\//.test(line))).toBe(false);
  });
});
