import { Registry } from 'prom-client';
import { beforeEach, describe, expect, it } from 'vitest';
import { createMetrics, type AgentMetrics } from '../../../src/server/metrics.js';

interface Sample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly metricName?: string;
}

async function samples(registry: Registry, name: string): Promise<readonly Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`metric ${name} is not registered`);
  const data = await metric.get();
  return data.values as readonly Sample[];
}

async function value(registry: Registry, name: string, labels: Readonly<Record<string, string>> = {}): Promise<number | undefined> {
  const wanted = Object.entries(labels);
  const match = (await samples(registry, name)).find(
    (sample) =>
      (sample.metricName === undefined || sample.metricName === name) &&
      wanted.every(([key, expected]) => String(sample.labels[key]) === expected) &&
      Object.keys(sample.labels).length === wanted.length,
  );
  return match?.value;
}

/** `_count` of a histogram for exactly these labels. */
async function histogramCount(registry: Registry, name: string, labels: Readonly<Record<string, string>>): Promise<number | undefined> {
  const wanted = Object.entries(labels);
  const match = (await samples(registry, name)).find(
    (sample) => sample.metricName === `${name}_count` && wanted.every(([key, expected]) => String(sample.labels[key]) === expected),
  );
  return match?.value;
}

describe('createMetrics', () => {
  let registry: Registry;
  let metrics: AgentMetrics;

  beforeEach(() => {
    registry = new Registry();
    metrics = createMetrics(registry, { processMetrics: false });
  });

  it("registers kube-proxy's metric names and ours", async () => {
    const names = (await registry.getMetricsAsJSON()).map((metric) => metric.name).sort();
    expect(names).toEqual(
      [
        'kubeproxy_network_programming_duration_seconds',
        'kubeproxy_proxy_healthz_total',
        'kubeproxy_proxy_livez_total',
        'kubeproxy_sync_full_proxy_rules_duration_seconds',
        'kubeproxy_sync_partial_proxy_rules_duration_seconds',
        'kubeproxy_sync_proxy_rules_duration_seconds',
        'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
        'kubeproxy_sync_proxy_rules_endpoint_changes_total',
        'kubeproxy_sync_proxy_rules_iptables_last',
        'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
        'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
        'kubeproxy_sync_proxy_rules_iptables_total',
        'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
        'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
        'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
        'kubeproxy_sync_proxy_rules_service_changes_pending',
        'kubeproxy_sync_proxy_rules_service_changes_total',
        'kube_proxy_ts_health_check_node_port_listen_failures_total',
        'kube_proxy_ts_health_check_node_port_servers',
        'kube_proxy_ts_localhost_nodeports',
        'kube_proxy_ts_objects_skipped',
        'kube_proxy_ts_objects_skipped_total',
        'kube_proxy_ts_sync_chains_deleted',
        'kube_proxy_ts_sync_chains_written',
        'kube_proxy_ts_sync_phase_duration_seconds',
        'kube_proxy_ts_sync_restore_payload_bytes',
        'kube_proxy_ts_sync_restore_payload_lines',
        'kube_proxy_ts_syncs_total',
        'kube_proxy_ts_watch_restarts_total',
      ].sort(),
    );
  });

  it("uses kube-proxy's buckets for sync and network programming durations", async () => {
    metrics.observeSync({ kind: 'full', result: 'applied', durationSeconds: 0.003, finishedAtSeconds: 1 });
    metrics.observeNetworkProgramming(1.5);
    const text = await registry.metrics();
    const bounds = (name: string): string[] =>
      [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)",ip_family="IPv4"\\}`, 'gm'))].map((match) => match[1] ?? '');
    const syncBounds = bounds('kubeproxy_sync_proxy_rules_duration_seconds');
    expect(syncBounds).toHaveLength(16); // 15 buckets + Inf
    expect(Number(syncBounds[0])).toBeCloseTo(0.001);
    expect(Number(syncBounds[14])).toBeCloseTo(16.384);
    const programmingBounds = bounds('kubeproxy_network_programming_duration_seconds').map(Number);
    expect(programmingBounds.slice(0, 5)).toEqual([0, 0.25, 0.5, 1, 2]);
    expect(programmingBounds).toContain(59);
    expect(programmingBounds).toContain(115);
    expect(programmingBounds.at(-2)).toBe(300);
    expect(programmingBounds).toHaveLength(1 + 2 + 59 + 12 + 7 + 1);
  });

  it('says whether NodePorts answer on 127.0.0.1, and why not, one series at a time', async () => {
    metrics.setLocalhostNodePorts(true, 'enabled');
    expect(await value(registry, 'kube_proxy_ts_localhost_nodeports', { reason: 'enabled' })).toBe(1);
    metrics.setLocalhostNodePorts(false, 'route_localnet');
    expect(await value(registry, 'kube_proxy_ts_localhost_nodeports', { reason: 'route_localnet' })).toBe(0);
    expect(await value(registry, 'kube_proxy_ts_localhost_nodeports', { reason: 'enabled' })).toBeUndefined();
  });

  it("exports the localhost NodePort packets of kube-proxy's nfacct counter as read at the scrape", async () => {
    let packets: number | undefined = 7;
    metrics.countLocalhostNodePortPackets(async () => packets);
    expect(await value(registry, 'kubeproxy_iptables_localhost_nodeports_accepted_packets_total')).toBe(7);
    packets = 9;
    expect(await value(registry, 'kubeproxy_iptables_localhost_nodeports_accepted_packets_total')).toBe(9);
  });

  it('starts failure counters and sync counters at zero so rate() works before the first failure', async () => {
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', { ip_family: 'IPv4' })).toBe(0);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', { ip_family: 'IPv4' })).toBe(0);
    expect(await value(registry, 'kube_proxy_ts_syncs_total', { kind: 'partial', result: 'failed' })).toBe(0);
    expect(await value(registry, 'kube_proxy_ts_health_check_node_port_servers')).toBe(0);
  });

  it('records a successful partial sync', async () => {
    metrics.observeSync({
      kind: 'partial',
      result: 'applied',
      durationSeconds: 0.02,
      finishedAtSeconds: 1_700_000_000,
      phases: { model: 0.001, render: 0.002, diff: 0.003, restore: 0.014 },
      payload: { bytes: 2048, lines: 40 },
      chainsWritten: 3,
      chainsDeleted: 1,
      rulesTotal: { filter: 12, nat: 340 },
      rulesWritten: { nat: 25 },
      noLocalEndpoints: { internal: 2, external: 1 },
    });
    expect(await histogramCount(registry, 'kubeproxy_sync_proxy_rules_duration_seconds', { ip_family: 'IPv4' })).toBe(1);
    expect(await histogramCount(registry, 'kubeproxy_sync_partial_proxy_rules_duration_seconds', { ip_family: 'IPv4' })).toBe(1);
    expect(await histogramCount(registry, 'kubeproxy_sync_full_proxy_rules_duration_seconds', { ip_family: 'IPv4' })).toBeUndefined();
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family: 'IPv4' })).toBe(1_700_000_000);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_total', { ip_family: 'IPv4', table: 'nat' })).toBe(340);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_total', { ip_family: 'IPv4', table: 'filter' })).toBe(12);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_last', { ip_family: 'IPv4', table: 'nat' })).toBe(25);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', { ip_family: 'IPv4', traffic_policy: 'internal' })).toBe(2);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_no_local_endpoints_total', { ip_family: 'IPv4', traffic_policy: 'external' })).toBe(1);
    expect(await value(registry, 'kube_proxy_ts_syncs_total', { kind: 'partial', result: 'applied' })).toBe(1);
    expect(await histogramCount(registry, 'kube_proxy_ts_sync_restore_payload_bytes', { kind: 'partial' })).toBe(1);
    expect(await histogramCount(registry, 'kube_proxy_ts_sync_restore_payload_lines', { kind: 'partial' })).toBe(1);
    expect(await histogramCount(registry, 'kube_proxy_ts_sync_chains_written', { kind: 'partial' })).toBe(1);
    expect(await histogramCount(registry, 'kube_proxy_ts_sync_chains_deleted', { kind: 'partial' })).toBe(1);
    for (const phase of ['model', 'render', 'diff', 'restore']) {
      expect(await histogramCount(registry, 'kube_proxy_ts_sync_phase_duration_seconds', { phase })).toBe(1);
    }
    const bytesSum = (await samples(registry, 'kube_proxy_ts_sync_restore_payload_bytes')).find(
      (sample) => sample.metricName === 'kube_proxy_ts_sync_restore_payload_bytes_sum',
    );
    expect(bytesSum?.value).toBe(2048);
  });

  it('counts a failed partial restore as both a restore failure and a partial one, and keeps the last success time', async () => {
    metrics.observeSync({ kind: 'full', result: 'applied', durationSeconds: 0.1, finishedAtSeconds: 100 });
    metrics.observeSync({ kind: 'partial', result: 'failed', durationSeconds: 0.05, finishedAtSeconds: 200, rulesTotal: { nat: 1 } });
    metrics.observeSync({ kind: 'full', result: 'failed', durationSeconds: 0.05, finishedAtSeconds: 300 });
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total', { ip_family: 'IPv4' })).toBe(2);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total', { ip_family: 'IPv4' })).toBe(1);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family: 'IPv4' })).toBe(100);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_iptables_total', { ip_family: 'IPv4', table: 'nat' })).toBeUndefined();
    expect(await histogramCount(registry, 'kubeproxy_sync_proxy_rules_duration_seconds', { ip_family: 'IPv4' })).toBe(3);
    expect(await value(registry, 'kube_proxy_ts_syncs_total', { kind: 'full', result: 'failed' })).toBe(1);
  });

  it('tracks queued time, pending and total changes', async () => {
    metrics.syncQueued(1234.5);
    metrics.setPendingChanges({ services: 3, endpoints: 7 });
    metrics.countChanges({ services: 2, endpoints: 5 });
    metrics.countChanges({ endpoints: 1 });
    metrics.setPendingChanges({ endpoints: 0 });
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds', { ip_family: 'IPv4' })).toBe(1234.5);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_service_changes_pending')).toBe(3);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_endpoint_changes_pending')).toBe(0);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_service_changes_total')).toBe(2);
    expect(await value(registry, 'kubeproxy_sync_proxy_rules_endpoint_changes_total')).toBe(6);
  });

  it('clamps a negative network programming latency (clock skew) to zero', async () => {
    metrics.observeNetworkProgramming(-3);
    const sum = (await samples(registry, 'kubeproxy_network_programming_duration_seconds')).find(
      (sample) => sample.metricName === 'kubeproxy_network_programming_duration_seconds_sum',
    );
    expect(sum?.value).toBe(0);
  });

  it('counts watch restarts, health probes and healthCheckNodePort servers', async () => {
    metrics.watchRestarted('endpointslices', 'watchdog');
    metrics.watchRestarted('endpointslices', 'watchdog');
    metrics.watchRestarted('services', 'error');
    metrics.healthProbe('healthz', 200);
    metrics.healthProbe('healthz', 503);
    metrics.healthProbe('livez', 200);
    metrics.setHealthCheckNodePortServers(4);
    metrics.healthCheckNodePortListenFailed();
    expect(await value(registry, 'kube_proxy_ts_watch_restarts_total', { resource: 'endpointslices', reason: 'watchdog' })).toBe(2);
    expect(await value(registry, 'kube_proxy_ts_watch_restarts_total', { resource: 'services', reason: 'error' })).toBe(1);
    expect(await value(registry, 'kubeproxy_proxy_healthz_total', { code: '503' })).toBe(1);
    expect(await value(registry, 'kubeproxy_proxy_livez_total', { code: '200' })).toBe(1);
    expect(await value(registry, 'kube_proxy_ts_health_check_node_port_servers')).toBe(4);
    expect(await value(registry, 'kube_proxy_ts_health_check_node_port_listen_failures_total')).toBe(1);
  });

  it('reports the currently skipped objects and counts skips', async () => {
    metrics.setSkippedObjects([
      { kind: 'Service', reason: 'invalid-ip' },
      { kind: 'Service', reason: 'invalid-ip' },
      { kind: 'EndpointSlice', reason: 'missing-service-name-label' },
    ]);
    metrics.objectSkipped({ kind: 'Service', reason: 'invalid-ip' });
    expect(await value(registry, 'kube_proxy_ts_objects_skipped', { kind: 'Service', reason: 'invalid-ip' })).toBe(2);
    expect(await value(registry, 'kube_proxy_ts_objects_skipped', { kind: 'EndpointSlice', reason: 'missing-service-name-label' })).toBe(1);
    metrics.setSkippedObjects([{ kind: 'EndpointSlice', reason: 'missing-service-name-label' }]);
    expect(await value(registry, 'kube_proxy_ts_objects_skipped', { kind: 'Service', reason: 'invalid-ip' })).toBeUndefined();
    expect(await value(registry, 'kube_proxy_ts_objects_skipped_total', { kind: 'Service', reason: 'invalid-ip' })).toBe(1);
  });

  it('adds Node.js process metrics to the same registry, and registries stay independent', async () => {
    const withProcess = new Registry();
    createMetrics(withProcess);
    const names = (await withProcess.getMetricsAsJSON()).map((metric) => metric.name);
    expect(names).toContain('process_cpu_user_seconds_total');
    expect(names).toContain('nodejs_heap_size_used_bytes');
    // A second agent instance in the same process gets its own registry without name clashes.
    expect(() => createMetrics(new Registry())).not.toThrow();
    expect((await registry.getMetricsAsJSON()).map((metric) => metric.name)).not.toContain('process_cpu_user_seconds_total');
  });

  it('exposes the ip_family label exactly where kube-proxy has it', async () => {
    metrics.observeSync({ kind: 'full', result: 'applied', durationSeconds: 0.01, finishedAtSeconds: 1, rulesTotal: { nat: 1 } });
    metrics.setPendingChanges({ services: 1, endpoints: 1 });
    metrics.countChanges({ services: 1, endpoints: 1 });
    const text = await registry.metrics();
    expect(text).toContain('kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1');
    expect(text).toContain('kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="nat"} 1');
    expect(text).toMatch(/^kubeproxy_sync_proxy_rules_service_changes_pending 1$/m);
    expect(text).toMatch(/^kubeproxy_sync_proxy_rules_endpoint_changes_total 1$/m);
  });
});
