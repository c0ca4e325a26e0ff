// The nftables proxier against a real kernel: after every partial sync of a sequence, the table a
// node holds equals the table a fresh full sync of the same state writes; stale chains go a sync
// later; a table left by another owner is taken over; a deleted table is noticed and rebuilt.

import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelStore } from '../../src/model/store.js';
import { Nft } from '../../src/nftables/nft.js';
import { NftablesProxier, type NftablesProxierOptions } from '../../src/nftables/nftables-proxier.js';
import type { NftContext } from '../../src/nftables/types.js';
import { createNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { normalisedNftTable } from '../harness/nft-table.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skipReason = kernelSkipReason();
const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const context: NftContext = {
  masqueradeMark: '0x00004000',
  masqueradeAll: false,
  localTraffic: { ifLocal: 'ip saddr 10.244.0.0/16', ifNotLocal: 'ip saddr != 10.244.0.0/16' },
  nodePortIPs: 'all',
  primaryNodeIP: '172.30.0.10',
  serviceCIDRs: [],
};

function sticky(name: string, clusterIP: string, timeoutSeconds: number): V1Service {
  const base = service(name, clusterIP, { nodePort: 30000 + Number(clusterIP.split('.')[3]) });
  return { ...base, spec: { ...base.spec, type: 'NodePort', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds } } } };
}

const tableOf = normalisedNftTable;

describe.skipIf(skipReason !== undefined)('nftables proxier on a real kernel', () => {
  let node1: Netns;
  const others: Netns[] = [];
  let now = 1_000_000;

  beforeAll(async () => {
    node1 = await createNetns('nft-seq');
  });
  afterAll(async () => {
    await node1.delete();
    for (const netns of others) await netns.delete();
  });

  type Tuning = Partial<Pick<NftablesProxierOptions, 'rewriteMaxElements' | 'staleChainPatienceMs'>>;
  const proxierFor = (store: ModelStore, netns: Netns, nft = new Nft({ prefix: netns.prefix }), tuning: Tuning = {}): NftablesProxier =>
    new NftablesProxier({
      family: 'IPv4', store, nft, conntrackCleanup: undefined, context: () => context, fullSyncPeriodMs: 3_600_000, chainsPerTransaction: 3, now: () => now,
      ...tuning,
    });

  /** The table a fresh node gets from one full sync of the store's current state. */
  async function freshTable(store: ModelStore): Promise<unknown> {
    const fresh = await createNetns('nft-fresh');
    others.push(fresh);
    const report = await proxierFor(store, fresh).sync('initial');
    expect(report.result, JSON.stringify(report)).toBe('applied');
    const table = await tableOf(fresh);
    await fresh.delete();
    return table;
  }

  // Both ways of taking elements out: small maps flushed and rewritten (the default here), and `delete element`.
  it.each([
    ['maps rewritten', undefined],
    ['elements deleted', -1],
  ] as const)('after each partial sync the table equals a fresh full sync of the same state; stale chains go a sync later (%s)', async (_, rewriteMaxElements) => {
    const store = new ModelStore(node);
    await node1.exec('nft', ['delete', 'table', 'ip', 'kube-proxy']);
    const proxier = proxierFor(store, node1, undefined, rewriteMaxElements !== undefined ? { rewriteMaxElements } : {});
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.2']));
    store.upsertService(sticky('b', '10.96.0.2', 600));
    store.upsertEndpointSlice(slice('b', ['10.244.1.3']));
    store.upsertService(service('empty', '10.96.0.3'));
    const first = await proxier.sync('initial');
    expect(first.result, JSON.stringify(first)).toBe('applied');
    expect(first.kind).toBe('full');
    // 7 chains over transactions of >= 3: the head, three of service chains, the elements.
    expect(first.plan?.transactionCount).toBeGreaterThanOrEqual(4);
    expect(await tableOf(node1)).toEqual(await freshTable(store));

    const steps: [string, () => void][] = [
      ['an endpoint replaced', () => store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.9']))],
      ['endpoints for the empty Service', () => store.upsertEndpointSlice(slice('empty', ['10.244.1.4']))],
      ['a new affinity timeout', () => store.upsertService(sticky('b', '10.96.0.2', 60))],
      ['a Service removed', () => store.deleteService('default', 'a')],
      ['every endpoint of a sticky Service gone', () => store.upsertEndpointSlice(slice('b', []))],
      // Its affinity set is still in the kernel, waiting to be deleted: it is replaced, not reused.
      ['the endpoint back, with another affinity timeout', () => {
        store.upsertService(sticky('b', '10.96.0.2', 30));
        store.upsertEndpointSlice(slice('b', ['10.244.1.3']));
      }],
      ['every endpoint of the sticky Service gone again', () => store.upsertEndpointSlice(slice('b', []))],
      ['a Service added', () => store.upsertService(service('c', '10.96.0.9'))],
    ];
    for (const [label, change] of steps) {
      change();
      now += 100;
      const report = await proxier.sync('change');
      expect({ label, result: report.result, kind: report.kind }, JSON.stringify(report)).toEqual({ label, result: 'applied', kind: 'partial' });
      expect(report.plan?.transactionCount).toBe(1);
      const table = (await tableOf(node1)) as Record<string, unknown>;
      const fresh = (await freshTable(store)) as Record<string, unknown>;
      // Flushed stale chains wait for their deletion; nothing else may differ.
      expect(Object.keys(table).length).toBeGreaterThan(30);
      const pending = new Set([...proxier.pendingStaleChains.map((name) => `chain ${name}`), ...proxier.pendingStaleSets.map((name) => `set ${name}`)]);
      expect({ label, table: Object.fromEntries(Object.entries(table).filter(([key]) => !pending.has(key))) }).toEqual({ label, table: fresh });
    }

    expect(proxier.pendingStaleChains.length).toBeGreaterThan(0);
    now += 1_000;
    const later = await proxier.sync('periodic');
    expect(later.result).toBe('unchanged');
    await proxier.staleDeletionSettled();
    expect(proxier.pendingStaleChains).toEqual([]);
    expect(proxier.pendingStaleSets).toEqual([]);
    expect(await tableOf(node1)).toEqual(await freshTable(store));
  });

  it('takes over a table another owner left: keeps wanted objects, flushes then deletes chains and drops affinity sets nobody wants', async () => {
    const netns = await createNetns('nft-takeover');
    others.push(netns);
    const leftover = [
      'add table ip kube-proxy',
      'add chain ip kube-proxy service-AAAAAAAA-old/gone/tcp/p80',
      'add rule ip kube-proxy service-AAAAAAAA-old/gone/tcp/p80 meta l4proto tcp dnat to 10.244.9.9:80',
      'add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
      'add element ip kube-proxy service-ips { 10.96.9.9 . tcp . 80 : goto service-AAAAAAAA-old/gone/tcp/p80 }',
      'add set ip kube-proxy affinity-AAAAAAAA-old/gone/tcp/p80__10.244.9.9/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }',
      // A base chain with another priority than ours: re-created on the first sync.
      'add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -50 ; }',
    ];
    expect((await netns.exec('nft', ['-f', '-'], `${leftover.join('\n')}\n`)).code).toBe(0);
    const store = new ModelStore(node);
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    const proxier = proxierFor(store, netns);
    const first = await proxier.sync('initial');
    expect(first.result, JSON.stringify(first)).toBe('applied');
    expect(proxier.pendingStaleChains).toEqual(['service-AAAAAAAA-old/gone/tcp/p80']);
    const listed = (await netns.exec('nft', ['list', 'table', 'ip', 'kube-proxy'])).stdout;
    expect(listed).not.toContain('10.96.9.9');
    expect(listed).not.toContain('affinity-AAAAAAAA');
    expect(listed).toMatch(/chain nat-prerouting \{\n\s+type nat hook prerouting priority dstnat; policy accept;/);
    now += 1_000;
    await proxier.sync('periodic');
    await proxier.staleDeletionSettled();
    expect(await tableOf(netns)).toEqual(await freshTable(store));
  });

  it('stale chains wait ten times as long as the last deletion took, then go together, after the sync that carries a change', async () => {
    const netns = await createNetns('nft-stale');
    others.push(netns);
    // The real nft, on a clock where deleting chains takes 3 s (as nft's cache fill does at 10k Services).
    const nft = new (class extends Nft {
      override async apply(lines: readonly string[]): ReturnType<Nft['apply']> {
        if (lines[0]?.startsWith('delete chain')) now += 3_000;
        return super.apply(lines);
      }
    })({ prefix: netns.prefix });
    const store = new ModelStore(node);
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.2']));
    const proxier = proxierFor(store, netns, nft);
    expect((await proxier.sync('initial')).result).toBe('applied');
    const replace = async (ip: string): Promise<void> => {
      store.upsertEndpointSlice(slice('a', ['10.244.1.1', ip]));
      const report = await proxier.sync('change');
      expect({ result: report.result, transactions: report.plan?.transactionCount }).toEqual({ result: 'applied', transactions: 1 });
      await proxier.staleDeletionSettled();
    };
    // Nothing deleted yet: the first stale chain goes a second later.
    await replace('10.244.1.3');
    now += 1_000;
    await replace('10.244.1.4');
    expect(proxier.pendingStaleChains).toHaveLength(1);
    // That deletion took 3 s: the next waits 30 s, while changes keep landing alone.
    now += 2_000;
    await replace('10.244.1.5');
    expect(proxier.pendingStaleChains).toHaveLength(2);
    now += 20_000; // the oldest has waited 25 s
    expect((await proxier.sync('periodic')).result).toBe('unchanged');
    await proxier.staleDeletionSettled();
    expect(proxier.pendingStaleChains).toHaveLength(2);
    now += 6_000;
    expect((await proxier.sync('periodic')).result).toBe('unchanged');
    await proxier.staleDeletionSettled();
    expect(proxier.pendingStaleChains).toEqual([]);
    expect(await tableOf(netns)).toEqual(await freshTable(store));
  });

  /** The real nft, except that the first stale-chain deletion waits until `release()`. */
  function heldDeletionNft(netns: Netns): { nft: Nft; deletions: string[][]; release: () => void } {
    const deletions: string[][] = [];
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const nft = new (class extends Nft {
      override async apply(lines: readonly string[]): ReturnType<Nft['apply']> {
        if (lines[0]?.startsWith('delete chain')) {
          deletions.push([...lines]);
          if (deletions.length === 1) await held;
        }
        return super.apply(lines);
      }
    })({ prefix: netns.prefix });
    return { nft, deletions, release: () => release() };
  }

  /** The promise's value, or 'still waiting' if it has not settled within `ms`. */
  async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'still waiting'> {
    let timer: NodeJS.Timeout | undefined;
    const waiting = new Promise<'still waiting'>((resolve) => (timer = setTimeout(() => resolve('still waiting'), ms)));
    try {
      return await Promise.race([promise, waiting]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A fresh node with Service a (two endpoints) after a first full sync by a proxier whose first stale-chain deletion hangs in nft until `release()`. */
  async function nodeWithHeldDeletion(label: string, tuning: Tuning = {}) {
    const netns = await createNetns(label);
    others.push(netns);
    const held = heldDeletionNft(netns);
    const store = new ModelStore(node);
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.2']));
    const proxier = proxierFor(store, netns, held.nft, tuning);
    expect((await proxier.sync('initial')).result).toBe('applied');
    return { ...held, netns, store, proxier };
  }

  it('changes go on beside a stale-chain deletion; a sync re-creating a chain being deleted waits for it, and nothing fails', async () => {
    const { netns, store, proxier, deletions, release } = await nodeWithHeldDeletion('nft-beside');
    const change = async (ips: string[]): Promise<unknown> => {
      store.upsertEndpointSlice(slice('a', ips));
      const report = await within(proxier.sync('change'), 5_000);
      return report === 'still waiting' ? report : { result: report.result, kind: report.kind };
    };
    const applied = { result: 'applied', kind: 'partial' };
    expect(await change(['10.244.1.1', '10.244.1.3'])).toEqual(applied); // 10.244.1.2's chain goes stale
    now += 1_000;
    // This sync begins deleting that chain after its own transaction, and the deletion hangs in nft.
    expect(await change(['10.244.1.1', '10.244.1.4'])).toEqual(applied);
    expect(deletions).toHaveLength(1);
    const deleting = deletions[0]?.[0] ?? '';
    expect(deleting).toMatch(/^delete chain ip kube-proxy endpoint-\S+-default\/a\/tcp\/\S*__10\.244\.1\.2\/\d+$/);
    // A change meanwhile lands at once, and is in the kernel.
    expect(await change(['10.244.1.1', '10.244.1.5'])).toEqual(applied);
    expect((await netns.exec('nft', ['list', 'table', 'ip', 'kube-proxy'])).stdout).toMatch(/dnat to 10\.244\.1\.5:\d+/);
    // 10.244.1.2 comes back: its chain is the one being deleted, so this sync waits for the deletion.
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.2']));
    const recreating = proxier.sync('change');
    expect(await within(recreating, 1_000)).toBe('still waiting');
    release();
    expect(await within(recreating, 5_000)).toMatchObject(applied);
    await proxier.staleDeletionSettled();
    // The deletion went first and succeeded: no failure, so no full sync follows.
    now += 60_000;
    const next = await proxier.sync('periodic');
    expect({ result: next.result, kind: next.kind }).toEqual({ result: 'unchanged', kind: 'partial' });
    await proxier.staleDeletionSettled();
    expect(proxier.pendingStaleChains).toEqual([]);
    expect(await tableOf(netns)).toEqual(await freshTable(store));
  });

  it('a sync waits for a stale-chain deletion that has run past its patience (nft restarts its dump at every commit)', async () => {
    const { store, proxier, deletions, release } = await nodeWithHeldDeletion('nft-patience', { staleChainPatienceMs: 10_000 });
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.3']));
    expect((await proxier.sync('change')).result).toBe('applied');
    now += 1_000;
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.4']));
    expect(await within(proxier.sync('change'), 5_000)).toMatchObject({ result: 'applied' });
    expect(deletions).toHaveLength(1);
    now += 9_000;
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.5']));
    expect(await within(proxier.sync('change'), 5_000)).toMatchObject({ result: 'applied' });
    now += 1_000; // the deletion has now run 10 s
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.6']));
    const late = proxier.sync('change');
    expect(await within(late, 1_000)).toBe('still waiting');
    release();
    expect(await within(late, 5_000)).toMatchObject({ result: 'applied', kind: 'partial' });
  });

  it('notices a deleted table on a periodic sync and rebuilds it', async () => {
    const netns = await createNetns('nft-drift');
    others.push(netns);
    const store = new ModelStore(node);
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    const proxier = proxierFor(store, netns);
    expect((await proxier.sync('initial')).result).toBe('applied');
    expect((await netns.exec('nft', ['delete', 'table', 'ip', 'kube-proxy'])).code).toBe(0);
    const repaired = await proxier.sync('periodic');
    expect({ result: repaired.result, kind: repaired.kind, fullReason: repaired.fullReason }).toEqual({ result: 'applied', kind: 'full', fullReason: 'canary-missing' });
    expect(await tableOf(netns)).toEqual(await freshTable(store));
  });
});
