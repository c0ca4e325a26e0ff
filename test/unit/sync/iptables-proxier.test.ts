import { describe, expect, it } from 'vitest';
import { IptablesProxier } from '../../../src/sync/iptables-proxier.js';
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
