import { describe, expect, it } from 'vitest';
import { IptablesProxier, iptablesBackend } from '../../../src/sync/iptables-proxier.js';
import { parseRunArgs, type AgentConfig } from '../../../src/config/index.js';
import { ModelStore } from '../../../src/model/store.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import type { Netfilter, SaveResult } from '../../../src/netfilter/netfilter.js';
import type { ConntrackCleanupSink } from '../../../src/agent/conntrack-cleaner.js';
import { conntrackArgs, type ConntrackDeletion } from '../../../src/conntrack/plan.js';
import { servicePortChainNames, servicePortEndpointChainName } from '../../../src/render/names.js';
import { defaultRenderContext } from '../../../src/render/types.js';
import { service, slice } from '../agent/fixtures.js';

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };

function setup(options: { conntrackCleanup?: ConntrackCleanupSink; wrap?: (fake: FakeNetfilter) => Netfilter } = {}) {
  const store = new ModelStore(node);
  const netfilter = new FakeNetfilter();
  let now = 1_000_000;
  const syncer = new IptablesProxier({
    store,
    netfilter: options.wrap?.(netfilter) ?? netfilter,
    conntrackCleanup: options.conntrackCleanup,
    renderContext: () => ({ ...defaultRenderContext, clusterCIDR: '10.244.0.0/16', nodeIPs: node.ips, localhostNodePorts: false }),
    fullSyncPeriodMs: 3_600_000,
    now: () => now,
    monotonic: () => now,
  });
  return { store, netfilter, syncer, advance: (ms: number) => (now += ms) };
}

function configFor(): AgentConfig {
  const parsed = parseRunArgs(['--hostname-override', 'node1', '--cluster-cidr', '10.244.0.0/16,fd00:244::/56'], {}, () => '', 'node1');
  if (parsed.kind !== 'ok') throw new Error('config');
  return parsed.config;
}

const svcChain = (name: string) => servicePortChainNames(`default/${name}:p`, 'TCP').cluster;

/**
 * A netfilter whose iptables-save, once armed, takes the kernel's picture when called but answers
 * only once the test releases it (a slow iptables-nft-save at 10k Services).
 */
/** Service a synced on a node whose next iptables-save waits until `slow.release()`. */
async function syncedWithSlowSave() {
  let slow: ReturnType<typeof slowSave> | undefined;
  const synced = setup({ wrap: (fake) => (slow = slowSave(fake)).netfilter });
  if (slow === undefined) throw new Error('no netfilter');
  synced.store.upsertService(service('a', '10.96.0.1'));
  synced.store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
  await synced.syncer.sync('initial');
  slow.arm();
  return { ...synced, slow };
}

function slowSave(fake: FakeNetfilter) {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let armed = false;
  let saves = 0;
  const netfilter: Netfilter = {
    save: async (table): Promise<SaveResult> => {
      if (!armed) return fake.save(table);
      saves += 1;
      const picture = await fake.save(table);
      await gate;
      return picture;
    },
    restore: (payload, options) => fake.restore(payload, options),
    chainExists: (table, chain) => fake.chainExists(table, chain),
  };
  return { netfilter, arm: () => (armed = true), release: () => release(), saves: () => saves };
}

/** Whether the promise settles within a few event-loop turns (no real waiting on anything else). */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true), () => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return settled;
}

describe('IptablesProxier', () => {
  it('writes everything on the first sync, then only the changed service on the next', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.2']));
    store.upsertService(service('b', '10.96.0.2'));
    store.upsertEndpointSlice(slice('b', ['10.244.1.3']));
    const first = await syncer.sync('initial');
    expect(first.result).toBe('applied');
    expect(first.kind).toBe('full');
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(true);
    expect(netfilter.hasChain('nat', svcChain('b'))).toBe(true);
    expect(netfilter.hasChain('nat', 'KUBE-PROXY-CANARY')).toBe(true);

    store.upsertEndpointSlice(slice('a', ['10.244.1.1', '10.244.1.9']));
    const second = await syncer.sync('change');
    expect(second.result).toBe('applied');
    expect(second.kind).toBe('partial');
    const payload = second.plan?.payload ?? '';
    expect(payload).toContain(svcChain('a'));
    expect(payload).not.toContain(svcChain('b'));
    expect(payload).toContain(`-X ${servicePortEndpointChainName('default/a:p', 'TCP', '10.244.1.2', 8080)}`);
    expect(netfilter.hasChain('nat', servicePortEndpointChainName('default/a:p', 'TCP', '10.244.1.9', 8080))).toBe(true);
    expect(netfilter.hasChain('nat', servicePortEndpointChainName('default/a:p', 'TCP', '10.244.1.2', 8080))).toBe(false);
  });

  it('skips iptables-restore when nothing changed', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    await syncer.sync('initial');
    const calls = netfilter.restoreCalls;
    const report = await syncer.sync('change');
    expect(report.result).toBe('unchanged');
    expect(netfilter.restoreCalls).toBe(calls);
  });

  it('follows a failed restore with a full sync that repairs the kernel', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    await syncer.sync('initial');
    store.upsertService(service('b', '10.96.0.2'));
    store.upsertEndpointSlice(slice('b', ['10.244.1.3']));
    netfilter.failNextRestore('iptables-restore: line 3 failed', 3);
    const failed = await syncer.sync('change');
    expect(failed.result).toBe('failed');
    if (failed.result === 'failed') expect(failed.failedLine).toBe(failed.plan?.payload.split('\n')[2]);
    expect(netfilter.hasChain('nat', svcChain('b'))).toBe(false);
    const retry = await syncer.sync('retry');
    expect(retry.result).toBe('applied');
    expect(retry.kind).toBe('full');
    expect(retry.fullReason).toBe('after-failure');
    expect(netfilter.hasChain('nat', svcChain('b'))).toBe(true);
  });

  it('notices a flushed table at a periodic check and repairs it in the restore of the next sync', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    await syncer.sync('initial');
    // The periodic sync starts the check's read of the tables; the next sync compares it.
    expect((await syncer.sync('periodic')).result).toBe('unchanged');
    await syncer.driftReadSettled();
    netfilter.flushTable('nat');
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(false);
    // Its read came before the flush: nothing found; it starts the next read.
    expect((await syncer.sync('periodic')).drift).toMatchObject({ kind: 'checked', findings: [] });
    await syncer.driftReadSettled();
    const report = await syncer.sync('periodic');
    expect(report.result).toBe('applied');
    expect(report.drift?.kind === 'checked' ? report.drift.findings : undefined).toEqual([{ table: 'nat', chain: '*', kind: 'table-flushed' }]);
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(true);
    expect(netfilter.rules('nat', 'PREROUTING')?.some((rule) => rule.includes('-j KUBE-SERVICES'))).toBe(true);
  });

  it('repairs a dispatch rule deleted from KUBE-SERVICES by the next periodic check, touching only that rule, in the restore of the sync after its read', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    store.upsertService(service('b', '10.96.0.2'));
    store.upsertEndpointSlice(slice('b', ['10.244.1.2']));
    await syncer.sync('initial');
    const dispatch = netfilter.rules('nat', 'KUBE-SERVICES')?.find((rule) => rule.includes(svcChain('a'))) ?? '';
    netfilter.deleteRule('nat', 'KUBE-SERVICES', dispatch);
    // A change elsewhere (a partial sync) does not see it: only the periodic check does.
    store.upsertEndpointSlice(slice('b', ['10.244.1.3']));
    await syncer.sync('change');
    expect(netfilter.rules('nat', 'KUBE-SERVICES')?.some((rule) => rule.includes(svcChain('a')))).toBe(false);
    // The periodic sync reads the tables after its restore; the next sync compares and repairs.
    await syncer.sync('periodic');
    await syncer.driftReadSettled();
    store.upsertEndpointSlice(slice('b', ['10.244.1.4']));
    const restoresBefore = netfilter.restoreCalls;
    const report = await syncer.sync('periodic');
    expect(netfilter.restoreCalls - restoresBefore).toBe(1);
    expect(report.drift?.kind === 'checked' ? report.drift.findings : undefined).toEqual([{ table: 'nat', chain: 'KUBE-SERVICES', kind: 'rule-missing' }]);
    expect(report.drift?.kind === 'checked' ? report.drift.repair?.payload : undefined).toBe(`*nat\n-I KUBE-SERVICES 1 ${dispatch}\nCOMMIT\n`);
    expect(netfilter.rules('nat', 'KUBE-SERVICES')?.some((rule) => rule.includes(svcChain('a')))).toBe(true);
    await syncer.driftReadSettled();
    expect((await syncer.sync('periodic')).drift).toMatchObject({ kind: 'checked', findings: [] });
  });

  it('checks the canaries only when no full check runs this period: a change sync took the read, the next periodic sync begins one', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    await syncer.sync('initial');
    await syncer.sync('periodic');
    await syncer.driftReadSettled();
    store.upsertEndpointSlice(slice('a', ['10.244.1.2']));
    expect((await syncer.sync('change')).drift).toMatchObject({ kind: 'checked', findings: [] });
    netfilter.flushTable('nat');
    // No read to compare, but one begins after this sync: no canary fallback, no full sync.
    const periodic = await syncer.sync('periodic');
    expect(periodic.kind).toBe('partial');
    await syncer.driftReadSettled();
    const repair = await syncer.sync('periodic');
    expect(repair.drift?.kind === 'checked' ? repair.drift.findings : undefined).toEqual([{ table: 'nat', chain: '*', kind: 'table-flushed' }]);
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(true);
  });

  it('reads the tables for the drift check outside the sync: a change is applied while a slow iptables-save is under way', async () => {
    const { store, netfilter, syncer, slow } = await syncedWithSlowSave();
    // The periodic sync starts the read and finishes without waiting for it.
    expect(await settlesSoon(syncer.sync('periodic'))).toBe(true);
    expect(slow.saves()).toBeGreaterThan(0);
    store.upsertService(service('b', '10.96.0.2'));
    store.upsertEndpointSlice(slice('b', ['10.244.1.3']));
    const restoresBefore = netfilter.restoreCalls;
    const change = syncer.sync('change');
    expect(await settlesSoon(change)).toBe(true);
    expect((await change).result).toBe('applied');
    expect(netfilter.restoreCalls - restoresBefore).toBe(1);
    expect(netfilter.hasChain('nat', svcChain('b'))).toBe(true);
    // Only now does the save answer.
    slow.release();
    await syncer.driftReadSettled();
  });

  it('discards a read of the tables begun before a restore instead of comparing it with the newer rules', async () => {
    let slow: ReturnType<typeof slowSave> | undefined;
    const { store, netfilter, syncer } = setup({ wrap: (fake) => (slow = slowSave(fake)).netfilter });
    if (slow === undefined) throw new Error('no netfilter');
    for (const [name, ip, endpoint] of [['a', '10.96.0.1', '10.244.1.1'], ['b', '10.96.0.2', '10.244.1.2']] as const) {
      store.upsertService(service(name, ip));
      store.upsertEndpointSlice(slice(name, [endpoint]));
    }
    await syncer.sync('initial');
    slow.arm();
    await syncer.sync('periodic');
    expect(slow.saves()).toBeGreaterThan(0);
    // The read has taken its picture (a and b); a is deleted and applied meanwhile.
    store.deleteService('default', 'a');
    store.deleteEndpointSlice('default', 'a-abc');
    expect((await syncer.sync('change')).result).toBe('applied');
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(false);
    slow.release();
    await syncer.driftReadSettled();
    const restoresBefore = netfilter.restoreCalls;
    const report = await syncer.sync('periodic');
    // Not compared: nothing found, nothing repaired, a stays gone.
    expect(report.drift).toBeUndefined();
    expect(report.result).toBe('unchanged');
    expect(netfilter.restoreCalls).toBe(restoresBefore);
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(false);
    // The read that periodic sync began (after the restore) is used.
    await syncer.driftReadSettled();
    expect((await syncer.sync('periodic')).drift).toMatchObject({ kind: 'checked', findings: [] });
  });

  it('checks the canaries when a restore discarded the read: a node with a change every period still catches a flushed table', async () => {
    const { store, netfilter, syncer, slow } = await syncedWithSlowSave();
    await syncer.sync('periodic');
    // A change is applied while the read is under way: the read is older than the kernel.
    store.upsertEndpointSlice(slice('a', ['10.244.1.2']));
    expect((await syncer.sync('change')).result).toBe('applied');
    slow.release();
    await syncer.driftReadSettled();
    netfilter.flushTable('nat');
    // The read is discarded, so nothing was compared this period: the canaries find the flush.
    const periodic = await syncer.sync('periodic');
    expect(periodic.drift).toBeUndefined();
    expect(periodic.kind).toBe('full');
    expect(periodic.fullReason).toBe('canary-missing');
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(true);
  });

  it('does a periodic full sync once fullSyncPeriod has passed', async () => {
    const { store, syncer, advance } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    await syncer.sync('initial');
    advance(3_600_001);
    const report = await syncer.sync('periodic');
    expect(report.kind).toBe('full');
    expect(report.fullReason).toBe('periodic');
  });

  it('queues the UDP conntrack deletions of a removed endpoint after the rules changed, without running them', async () => {
    const queued: ConntrackDeletion[][] = [];
    const { store, syncer, netfilter } = setup({ conntrackCleanup: { enqueue: (deletions) => queued.push([...deletions]) } });
    store.upsertService(service('dns', '10.96.0.10', { protocol: 'UDP', port: 53 }));
    store.upsertEndpointSlice(slice('dns', ['10.244.1.1', '10.244.1.2'], { protocol: 'UDP' }));
    await syncer.sync('initial');
    expect(queued.flat()).toEqual([]);
    store.upsertEndpointSlice(slice('dns', ['10.244.1.1'], { protocol: 'UDP' }));
    const report = await syncer.sync('change');
    expect(report.result === 'applied' && report.conntrackDeletions).toBe(1);
    expect(queued.flat().map(conntrackArgs)).toEqual([['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dport', '53', '--reply-src', '10.244.1.2']]);
    // The rules were in the kernel before the deletion was handed over.
    expect(netfilter.hasChain('nat', servicePortEndpointChainName('default/dns:p', 'UDP', '10.244.1.2', 8080))).toBe(false);
  });
});

describe('iptablesBackend: one proxier per family', () => {
  const dualStack = (name: string, v4: string, v6: string, options: { protocol?: 'TCP' | 'UDP'; port?: number } = {}) => {
    const base = service(name, v4, options);
    return { ...base, spec: { ...base.spec, ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], clusterIPs: [v4, v6] } };
  };
  const sliceV6 = (name: string, ips: readonly string[], options: { protocol?: 'TCP' | 'UDP' } = {}) => {
    const base = slice(name, ips, options);
    return { ...base, metadata: { ...base.metadata, name: `${name}-v6` }, addressType: 'IPv6' };
  };

  function dualSetup() {
    const ipv4Netfilter = new FakeNetfilter();
    const ipv6Netfilter = new FakeNetfilter();
    const queued: ConntrackDeletion[] = [];
    const factory = iptablesBackend({ netfilter: ipv4Netfilter, ipv6Netfilter });
    const lanes = (['IPv4', 'IPv6'] as const).map((family) => {
      const familyNode = { ...node, ips: family === 'IPv4' ? ['172.30.0.10'] : ['fd00:30::10'] };
      const store = new ModelStore(familyNode, family);
      const proxier = factory({
        family,
        store,
        conntrackCleanup: { enqueue: (deletions) => queued.push(...deletions) },
        settings: () => ({ config: configFor(), node: familyNode, capabilities: { localhostNodePorts: true } }),
      });
      return { family, store, proxier };
    });
    const feed = (apply: (store: ModelStore) => void): void => lanes.forEach((lane) => apply(lane.store));
    return { ipv4Netfilter, ipv6Netfilter, lanes, feed, queued };
  }

  it('writes each family through its own binaries, IPv6 without localhost NodePorts, and cleans IPv6 flows with -f ipv6', async () => {
    const { ipv4Netfilter, ipv6Netfilter, lanes, feed, queued } = dualSetup();
    feed((store) => store.upsertService(dualStack('dns', '10.96.0.10', 'fd00:96::10', { protocol: 'UDP', port: 53 })));
    feed((store) => store.upsertEndpointSlice(slice('dns', ['10.244.1.1', '10.244.1.2'], { protocol: 'UDP' })));
    feed((store) => store.upsertEndpointSlice(sliceV6('dns', ['fd00:244::1', 'fd00:244::2'], { protocol: 'UDP' })));
    const [v4, v6] = await Promise.all(lanes.map((lane) => lane.proxier.sync('initial')));
    expect([v4?.result, v4?.family, v6?.result, v6?.family]).toEqual(['applied', 'IPv4', 'applied', 'IPv6']);
    const v4Payload = v4?.plan?.payload ?? '';
    const v6Payload = v6?.plan?.payload ?? '';
    expect(v4Payload).toContain('-d 10.96.0.10 --dport 53');
    expect(v4Payload).not.toContain('fd00:96::10');
    expect(v6Payload).toContain('-d fd00:96::10 --dport 53');
    // Endpoints as Go's JoinHostPort writes them, so the KUBE-SEP hashes are upstream's.
    expect(v6Payload).toContain('-j DNAT --to-destination [fd00:244::1]:8080');
    expect(v6Payload).toContain(`:${servicePortEndpointChainName('default/dns:p', 'UDP', 'fd00:244::1', 8080)} `);
    expect(v6Payload).not.toContain('10.96.0.10');
    expect(v6Payload).toContain('! -d ::1/128 -j KUBE-NODEPORTS');
    expect(v6Payload).not.toContain('127.0.0.0/8');
    expect(ipv4Netfilter.restoreCalls).toBe(1);
    expect(ipv6Netfilter.restoreCalls).toBe(1);

    feed((store) => store.upsertEndpointSlice(sliceV6('dns', ['fd00:244::1'], { protocol: 'UDP' })));
    const [v4Again, v6Again] = await Promise.all(lanes.map((lane) => lane.proxier.sync('change')));
    expect(v4Again?.result).toBe('unchanged');
    expect(v6Again?.result).toBe('applied');
    expect(queued.map((deletion) => conntrackArgs(deletion))).toEqual([['-D', '-p', 'udp', '--orig-dst', 'fd00:96::10', '--dport', '53', '--reply-src', 'fd00:244::2', '-f', 'ipv6']]);
  });

  it('a failed IPv6 restore leaves IPv4 programmed and syncing; the next IPv6 sync is full and repairs it', async () => {
    const { ipv4Netfilter, ipv6Netfilter, lanes, feed } = dualSetup();
    const [ipv4Lane, ipv6Lane] = lanes;
    if (ipv4Lane === undefined || ipv6Lane === undefined) throw new Error('setup');
    feed((store) => store.upsertService(dualStack('web', '10.96.0.20', 'fd00:96::20')));
    feed((store) => store.upsertEndpointSlice(slice('web', ['10.244.1.5'])));
    feed((store) => store.upsertEndpointSlice(sliceV6('web', ['fd00:244::5'])));
    ipv6Netfilter.failNextRestore('ip6tables-restore: line 2 failed', 2);
    const [v4, v6] = await Promise.all(lanes.map((lane) => lane.proxier.sync('initial')));
    expect(v4?.result).toBe('applied');
    expect(v6?.result).toBe('failed');
    expect(ipv4Netfilter.hasChain('nat', svcChain('web'))).toBe(true);
    expect(ipv6Netfilter.hasChain('nat', svcChain('web'))).toBe(false);

    feed((store) => store.upsertService(dualStack('api', '10.96.0.21', 'fd00:96::21')));
    feed((store) => store.upsertEndpointSlice(slice('api', ['10.244.1.6'])));
    feed((store) => store.upsertEndpointSlice(sliceV6('api', ['fd00:244::6'])));
    const v4Next = await ipv4Lane.proxier.sync('change');
    expect([v4Next.result, v4Next.kind]).toEqual(['applied', 'partial']);
    const v6Retry = await ipv6Lane.proxier.sync('retry');
    expect([v6Retry.result, v6Retry.kind, v6Retry.fullReason]).toEqual(['applied', 'full', 'after-failure']);
    expect(ipv6Netfilter.hasChain('nat', svcChain('web'))).toBe(true);
    expect(ipv6Netfilter.hasChain('nat', svcChain('api'))).toBe(true);
  });
});
