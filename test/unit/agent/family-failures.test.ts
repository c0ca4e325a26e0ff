// One family failing does not touch the other (issue 13): the agent, wired to a stand-in apiserver
// and one fake netfilter per family, with every ip6tables-restore failing after the first sync.
// The IPv4 proxier keeps applying changes, its retry backoff stays its own, and /livez fails
// because of the IPv6 family alone, saying which family in its body.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import type { IptablesSyncReport } from '../../../src/sync/iptables-proxier.js';
import { waitFor } from '../k8s/http-apiserver.js';
import { startAgentOnStandIn, type AgentOnStandIn } from './agent-on-stand-in.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function service(name: string, clusterIPs: readonly string[], resourceVersion = '1'): unknown {
  const dual = clusterIPs.length > 1;
  return {
    metadata: { namespace: 'default', name, resourceVersion },
    spec: {
      clusterIP: clusterIPs[0], clusterIPs,
      ipFamilies: clusterIPs.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      ipFamilyPolicy: dual ? 'RequireDualStack' : 'SingleStack',
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
    },
  };
}

function slice(name: string, addressType: 'IPv4' | 'IPv6', address: string, resourceVersion = '1'): unknown {
  return {
    metadata: { namespace: 'default', name: `${name}-${addressType.toLowerCase()}`, resourceVersion, labels: { 'kubernetes.io/service-name': name } },
    addressType,
    endpoints: [{ addresses: [address], conditions: { ready: true }, nodeName: 'node1' }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

const node = {
  metadata: { name: 'node1', resourceVersion: '1' },
  status: { addresses: [{ type: 'InternalIP', address: '10.0.0.10' }, { type: 'InternalIP', address: 'fd00::10' }] },
};

async function retryDelays(running: AgentOnStandIn): Promise<Record<string, number>> {
  const metric = await running.agent.registry.getSingleMetric('kube_proxy_ts_sync_retry_backoff_seconds')?.get();
  return Object.fromEntries((metric?.values ?? []).map((value) => [String(value.labels.ip_family), value.value]));
}

describe('a family whose restores keep failing', () => {
  it('neither delays nor hides behind the other family: per-family backoff, /livez per family', async () => {
    const ipv4Netfilter = new FakeNetfilter();
    const ipv6Netfilter = new FakeNetfilter();
    const reports: IptablesSyncReport[] = [];
    const running = await startAgentOnStandIn(
      // syncPeriod long enough that no family turns stale (2 x syncPeriod) during the test: what
      // /livez reports here comes from the failing syncs alone.
      ['--healthz-bind-address', '127.0.0.1:0', '--sync-period', '60s', '--min-sync-period', '0s', '--livez-sync-failure-timeout', '2500ms'],
      {
        services: [service('web', ['10.96.0.10', 'fd00:96::10'])],
        endpointSlices: [slice('web', 'IPv4', '10.244.0.5'), slice('web', 'IPv6', 'fd00:244::5')],
        nodes: [node],
      },
      { families: ['IPv4', 'IPv6'], netfilter: ipv4Netfilter, ipv6Netfilter, onSyncReport: (report) => reports.push(report) },
    );
    cleanups.push(() => running.stop());
    const [services] = running.apiserver.openWatches('/api/v1/services');
    const [slices] = running.apiserver.openWatches('/apis/discovery.k8s.io/v1/endpointslices');
    if (services === undefined || slices === undefined) throw new Error('no watch');

    ipv6Netfilter.everyRestoreFails = 'ip6tables-restore: line 3 failed';
    const failingSince = Date.now();
    slices.send('MODIFIED', slice('web', 'IPv6', 'fd00:244::6', '2'));
    // IPv4-only changes, one every 200 ms for 3.6 s: each is applied by the IPv4 proxier alone,
    // and each success would (with one shared backoff) reset the IPv6 family's run of failures.
    const ipv4Services: string[] = [];
    for (let index = 0; Date.now() - failingSince < 3_600; index++) {
      const name = `v4-${index}`;
      ipv4Services.push(name);
      services.send('ADDED', service(name, [`10.96.1.${index + 1}`]));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const lastIPv4 = ipv4Services.at(-1) ?? '';
    await waitFor(() => reports.some((report) => report.family === 'IPv4' && report.result === 'applied' && report.plan?.payload.includes(`default/${lastIPv4}:http`) === true), 2_000);

    const ipv6Failures = reports.filter((report) => report.family === 'IPv6' && report.result === 'failed');
    const ipv4Applied = reports.filter((report) => report.family === 'IPv4' && report.result === 'applied');
    // Failures at 0, +1 s and +3 s (delays 1 s, 2 s, 4 s); a shared backoff reset by IPv4's
    // successes retries every second instead.
    expect(ipv6Failures.length).toBe(3);
    expect(ipv4Applied.length).toBeGreaterThanOrEqual(ipv4Services.length / 2);
    expect(await retryDelays(running)).toEqual({ IPv4: 0, IPv6: 4 });

    // /livez: failing for longer than livezSyncFailureTimeout (2.5 s) in IPv6 only.
    const livez = await fetch(`http://127.0.0.1:${running.agent.healthPort ?? 0}/livez`);
    const body = (await livez.json()) as { status?: Record<string, { healthy: boolean }> };
    expect(livez.status).toBe(503);
    expect(body.status?.IPv4?.healthy).toBe(true);
    expect(body.status?.IPv6?.healthy).toBe(false);

    // An IPv4 failure now starts from the first delay (1 s): its backoff is untouched by IPv6's run.
    ipv4Netfilter.failNextRestore('iptables-restore: line 2 failed');
    services.send('ADDED', service('v4-last', ['10.96.2.1']));
    await waitFor(() => reports.some((report) => report.family === 'IPv4' && report.result === 'failed'), 2_000);
    expect((await retryDelays(running)).IPv4).toBe(1);
  }, 15_000);
});
