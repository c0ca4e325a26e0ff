import { describe, expect, it } from 'vitest';
import { IptablesProxier, iptablesBackend } from '../../../src/sync/iptables-proxier.js';
import { parseRunArgs, type AgentConfig } from '../../../src/config/index.js';
import { ModelStore } from '../../../src/model/store.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import type { ConntrackCleanupSink } from '../../../src/agent/conntrack-cleaner.js';
import { conntrackArgs, type ConntrackDeletion } from '../../../src/conntrack/plan.js';
import { servicePortChainNames, servicePortEndpointChainName } from '../../../src/render/names.js';
import { defaultRenderContext } from '../../../src/render/types.js';
import { service, slice } from '../agent/fixtures.js';

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };

function setup(options: { conntrackCleanup?: ConntrackCleanupSink } = {}) {
  const store = new ModelStore(node);
  const netfilter = new FakeNetfilter();
  let now = 1_000_000;
  const syncer = new IptablesProxier({
    store,
    netfilter,
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

  it('notices a flushed table at the periodic check and repairs it in the same sync', async () => {
    const { store, netfilter, syncer } = setup();
    store.upsertService(service('a', '10.96.0.1'));
    store.upsertEndpointSlice(slice('a', ['10.244.1.1']));
    await syncer.sync('initial');
    expect((await syncer.sync('periodic')).result).toBe('unchanged');
    netfilter.flushTable('nat');
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(false);
    const report = await syncer.sync('periodic');
    expect(report.result).toBe('applied');
    expect(report.drift?.kind === 'checked' ? report.drift.findings : undefined).toEqual([{ table: 'nat', chain: '*', kind: 'table-flushed' }]);
    expect(netfilter.hasChain('nat', svcChain('a'))).toBe(true);
    expect(netfilter.rules('nat', 'PREROUTING')?.some((rule) => rule.includes('-j KUBE-SERVICES'))).toBe(true);
  });

  it('repairs a dispatch rule deleted from KUBE-SERVICES at the next periodic check, touching only that rule, in the restore of that sync', async () => {
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
    store.upsertEndpointSlice(slice('b', ['10.244.1.4']));
    const restoresBefore = netfilter.restoreCalls;
    const report = await syncer.sync('periodic');
    expect(netfilter.restoreCalls - restoresBefore).toBe(1);
    expect(report.drift?.kind === 'checked' ? report.drift.findings : undefined).toEqual([{ table: 'nat', chain: 'KUBE-SERVICES', kind: 'rule-missing' }]);
    expect(report.drift?.kind === 'checked' ? report.drift.repair?.payload : undefined).toBe(`*nat\n-I KUBE-SERVICES 1 ${dispatch}\nCOMMIT\n`);
    expect(netfilter.rules('nat', 'KUBE-SERVICES')?.some((rule) => rule.includes(svcChain('a')))).toBe(true);
    expect((await syncer.sync('periodic')).drift).toMatchObject({ kind: 'checked', findings: [] });
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
