// The agent's Prometheus metrics: kube-proxy's `kubeproxy_*` names (so existing dashboards and
// alerts keep working), our own `kube_proxy_ts_*` ones, and Node.js process metrics, all on one
// Registry per agent instance. Callers describe what happened (`observeSync({...})`); only this
// module touches prom-client.

import { Counter, Gauge, Histogram, collectDefaultMetrics, exponentialBuckets, linearBuckets, type Registry } from 'prom-client';
import type { SkipReason, Skipped } from '../model/types.js';
import type { IPFamily } from '../ip.js';

export type SyncKind = 'full' | 'partial';
/** `unchanged`: nothing differed, so nothing was restored; still a successful sync. */
export type SyncOutcome = 'applied' | 'unchanged' | 'failed';
export type SyncPhase = 'model' | 'render' | 'diff' | 'restore';
export type HealthProbe = 'healthz' | 'livez';

export interface SyncObservation {
  readonly kind: SyncKind;
  readonly result: SyncOutcome;
  /** Wall time of the whole sync, failed ones included (kube-proxy observes those too). */
  readonly durationSeconds: number;
  /** Unix time the sync finished; becomes `..._last_timestamp_seconds` when it succeeded. */
  readonly finishedAtSeconds: number;
  readonly phases?: Partial<Readonly<Record<SyncPhase, number>>>;
  /** The iptables-restore input, when one was sent. */
  readonly payload?: { readonly bytes: number; readonly lines: number };
  readonly chainsWritten?: number;
  readonly chainsDeleted?: number;
  /** Rules we own per table once the sync succeeded (`kubeproxy_sync_proxy_rules_iptables_total`);
   * the tables are the backend's word, a label here. */
  readonly rulesTotal?: Readonly<Record<string, number>>;
  /** Rules this sync wrote per table (`kubeproxy_sync_proxy_rules_iptables_last`). */
  readonly rulesWritten?: Readonly<Record<string, number>>;
  /** Services with a Local traffic policy and no local endpoint, by which policy. */
  readonly noLocalEndpoints?: { readonly internal: number; readonly external: number };
  /** The proxier that synced (the `ip_family` label); default the first of MetricsOptions' families. */
  readonly family?: IPFamily;
}

export interface AgentMetrics {
  observeSync(observation: SyncObservation): void;
  /** A change arrived and a sync was requested (`..._last_queued_timestamp_seconds`). */
  syncQueued(atSeconds: number, family?: IPFamily): void;
  /** Per EndpointSlice trigger time (`endpoints.kubernetes.io/last-change-trigger-time`) programmed by a sync. */
  observeNetworkProgramming(latencySeconds: number, family?: IPFamily): void;
  setPendingChanges(pending: { readonly services?: number; readonly endpoints?: number }): void;
  countChanges(changes: { readonly services?: number; readonly endpoints?: number }): void;
  watchRestarted(resource: string, reason: string): void;
  /** An object (or part of one) was just skipped; counts it once. */
  objectSkipped(skipped: Pick<Skipped, 'kind' | 'reason'>): void;
  /** Every object skipped right now; replaces the previous set. */
  setSkippedObjects(skipped: readonly Pick<Skipped, 'kind' | 'reason'>[]): void;
  setHealthCheckNodePortServers(count: number): void;
  healthCheckNodePortListenFailed(): void;
  healthProbe(probe: HealthProbe, statusCode: number): void;
  /**
   * Exports `kubeproxy_iptables_ct_state_invalid_dropped_packets_total`, read from the nfacct
   * counter on the INVALID drop rule at every scrape (`read` gives undefined when it cannot).
   */
  countInvalidDrops(read: () => Promise<number | undefined>): void;
  /**
   * Exports `kubeproxy_iptables_localhost_nodeports_accepted_packets_total`, read from the nfacct
   * counter on the 127.0.0.0/8 NodePort rules at every scrape.
   */
  countLocalhostNodePortPackets(read: () => Promise<number | undefined>): void;
  /** Whether NodePorts answer on 127.0.0.1 and, when not, why (`kube_proxy_ts_localhost_nodeports`). */
  setLocalhostNodePorts(enabled: boolean, reason: string): void;
}

// kube-proxy's sync duration buckets: 1ms doubling 15 times (~16s).
const SYNC_BUCKETS = exponentialBuckets(0.001, 2, 15);
// kube-proxy's network programming buckets, including the leading 0 its bucket merge adds.
const NETWORK_PROGRAMMING_BUCKETS = [
  0,
  ...linearBuckets(0.25, 0.25, 2),
  ...linearBuckets(1, 1, 59),
  ...linearBuckets(60, 5, 12),
  ...linearBuckets(120, 30, 7),
];
// Our phases are often sub-millisecond; 100µs doubling 16 times (~3.3s).
const PHASE_BUCKETS = exponentialBuckets(0.0001, 2, 16);
const PAYLOAD_BYTES_BUCKETS = exponentialBuckets(256, 4, 10); // 256 B .. 64 MiB
const PAYLOAD_LINES_BUCKETS = exponentialBuckets(1, 4, 11); // 1 .. ~1M lines
const CHAIN_BUCKETS = [0, ...exponentialBuckets(1, 2, 17)]; // 0, 1 .. 65536

export interface MetricsOptions {
  /** Node.js process metrics (`process_*`, `nodejs_*`); default true. */
  readonly processMetrics?: boolean;
  /** The proxiers' families, the `ip_family` label (one proxier per family); default IPv4 only. */
  readonly families?: readonly IPFamily[];
}

export function createMetrics(registry: Registry, options: MetricsOptions = {}): AgentMetrics {
  const registers = [registry];
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const syncDuration = new Histogram({
    name: 'kubeproxy_sync_proxy_rules_duration_seconds',
    help: 'SyncProxyRules latency in seconds',
    labelNames: ['ip_family'],
    buckets: SYNC_BUCKETS,
    registers,
  });
  const fullSyncDuration = new Histogram({
    name: 'kubeproxy_sync_full_proxy_rules_duration_seconds',
    help: 'SyncProxyRules latency in seconds for full resyncs',
    labelNames: ['ip_family'],
    buckets: SYNC_BUCKETS,
    registers,
  });
  const partialSyncDuration = new Histogram({
    name: 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
    help: 'SyncProxyRules latency in seconds for partial resyncs',
    labelNames: ['ip_family'],
    buckets: SYNC_BUCKETS,
    registers,
  });
  const networkProgramming = new Histogram({
    name: 'kubeproxy_network_programming_duration_seconds',
    help: 'In Cluster Network Programming Latency in seconds',
    labelNames: ['ip_family'],
    buckets: NETWORK_PROGRAMMING_BUCKETS,
    registers,
  });
  const lastSync = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_last_timestamp_seconds',
    help: 'The last time proxy rules were successfully synced',
    labelNames: ['ip_family'],
    registers,
  });
  const lastQueued = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds',
    help: 'The last time a sync of proxy rules was queued',
    labelNames: ['ip_family'],
    registers,
  });
  // The change trackers feed every proxier, so upstream leaves these four without ip_family.
  const endpointChangesPending = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_endpoint_changes_pending',
    help: 'Pending proxy rules Endpoint changes',
    registers,
  });
  const endpointChangesTotal = new Counter({
    name: 'kubeproxy_sync_proxy_rules_endpoint_changes_total',
    help: 'Cumulative proxy rules Endpoint changes',
    registers,
  });
  const serviceChangesPending = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_service_changes_pending',
    help: 'Pending proxy rules Service changes',
    registers,
  });
  const serviceChangesTotal = new Counter({
    name: 'kubeproxy_sync_proxy_rules_service_changes_total',
    help: 'Cumulative proxy rules Service changes',
    registers,
  });
  const rulesTotal = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_iptables_total',
    help: 'Total number of iptables rules owned by kube-proxy',
    labelNames: ['ip_family', 'table'],
    registers,
  });
  const rulesLast = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_iptables_last',
    help: 'Number of iptables rules written by kube-proxy in last sync',
    labelNames: ['ip_family', 'table'],
    registers,
  });
  const restoreFailures = new Counter({
    name: 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total',
    help: 'Cumulative proxy iptables restore failures',
    labelNames: ['ip_family'],
    registers,
  });
  const partialRestoreFailures = new Counter({
    name: 'kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total',
    help: 'Cumulative proxy iptables partial restore failures',
    labelNames: ['ip_family'],
    registers,
  });
  const noLocalEndpoints = new Gauge({
    name: 'kubeproxy_sync_proxy_rules_no_local_endpoints_total',
    help: 'Number of services with a Local traffic policy and no endpoints',
    labelNames: ['ip_family', 'traffic_policy'],
    registers,
  });
  const healthzTotal = new Counter({
    name: 'kubeproxy_proxy_healthz_total',
    help: 'Cumulative proxy healthz HTTP status',
    labelNames: ['code'],
    registers,
  });
  const livezTotal = new Counter({
    name: 'kubeproxy_proxy_livez_total',
    help: 'Cumulative proxy livez HTTP status',
    labelNames: ['code'],
    registers,
  });

  const payloadBytes = new Histogram({
    name: 'kube_proxy_ts_sync_restore_payload_bytes',
    help: 'Size of the iptables-restore input sent by one sync',
    labelNames: ['kind'],
    buckets: PAYLOAD_BYTES_BUCKETS,
    registers,
  });
  const payloadLines = new Histogram({
    name: 'kube_proxy_ts_sync_restore_payload_lines',
    help: 'Lines of the iptables-restore input sent by one sync',
    labelNames: ['kind'],
    buckets: PAYLOAD_LINES_BUCKETS,
    registers,
  });
  const syncsTotal = new Counter({
    name: 'kube_proxy_ts_syncs_total',
    help: 'Syncs by kind (full, partial) and result (applied, unchanged, failed)',
    labelNames: ['kind', 'result'],
    registers,
  });
  const chainsWritten = new Histogram({
    name: 'kube_proxy_ts_sync_chains_written',
    help: 'Chains one sync declared and (re)wrote',
    labelNames: ['kind'],
    buckets: CHAIN_BUCKETS,
    registers,
  });
  const chainsDeleted = new Histogram({
    name: 'kube_proxy_ts_sync_chains_deleted',
    help: 'Stale chains one sync deleted',
    labelNames: ['kind'],
    buckets: CHAIN_BUCKETS,
    registers,
  });
  const phaseDuration = new Histogram({
    name: 'kube_proxy_ts_sync_phase_duration_seconds',
    help: 'Time one sync spent in each phase (model, render, diff, restore)',
    labelNames: ['phase'],
    buckets: PHASE_BUCKETS,
    registers,
  });
  const watchRestarts = new Counter({
    name: 'kube_proxy_ts_watch_restarts_total',
    help: 'Informer restarts by resource and reason',
    labelNames: ['resource', 'reason'],
    registers,
  });
  const skippedNow = new Gauge({
    name: 'kube_proxy_ts_objects_skipped',
    help: 'Objects (or parts of objects) currently not used because they are invalid, by kind and reason',
    labelNames: ['kind', 'reason'],
    registers,
  });
  const skippedTotal = new Counter({
    name: 'kube_proxy_ts_objects_skipped_total',
    help: 'Times an object (or part of one) was skipped, by kind and reason',
    labelNames: ['kind', 'reason'],
    registers,
  });
  const healthCheckServers = new Gauge({
    name: 'kube_proxy_ts_health_check_node_port_servers',
    help: 'healthCheckNodePort HTTP servers currently listening',
    registers,
  });
  const healthCheckListenFailures = new Counter({
    name: 'kube_proxy_ts_health_check_node_port_listen_failures_total',
    help: 'healthCheckNodePort servers that could not listen (e.g. port in use)',
    registers,
  });

  // Series that alerts take rate() of must exist from the start, not appear on the first failure.
  // kube-proxy labels most sync metrics by the proxier's family.
  const families = options.families ?? ['IPv4'];
  const primary = families[0] ?? 'IPv4';
  const label = (family: IPFamily | undefined): { ip_family: IPFamily } => ({ ip_family: family ?? primary });
  for (const family of families) {
    restoreFailures.inc(label(family), 0);
    partialRestoreFailures.inc(label(family), 0);
  }
  for (const kind of ['full', 'partial'] as const) {
    for (const result of ['applied', 'unchanged', 'failed'] as const) syncsTotal.inc({ kind, result }, 0);
  }
  healthCheckServers.set(0);
  const localhostNodePorts = new Gauge({
    name: 'kube_proxy_ts_localhost_nodeports',
    help: 'Whether NodePorts answer on 127.0.0.1 (1) or not (0); reason: enabled, config, nodePortAddresses or route_localnet (the sysctl could not be set)',
    labelNames: ['reason'],
    registers,
  });

  // The kernel's nfacct counter is the truth: the metric shows it as it is, read at each scrape.
  const nfacctCounter = (name: string, help: string, read: () => Promise<number | undefined>): void => {
    new Counter({
      name,
      help,
      registers,
      async collect() {
        const packets = await read();
        if (packets === undefined) return;
        this.reset();
        this.inc(packets);
      },
    });
  };

  return {
    countInvalidDrops(read) {
      nfacctCounter('kubeproxy_iptables_ct_state_invalid_dropped_packets_total', 'packets dropped by the iptables rule for conntrack-INVALID packets (its nfacct counter)', read);
    },
    countLocalhostNodePortPackets(read) {
      nfacctCounter('kubeproxy_iptables_localhost_nodeports_accepted_packets_total', 'Number of packets accepted on nodeports of loopback interface (their nfacct counter)', read);
    },
    setLocalhostNodePorts(enabled, reason) {
      localhostNodePorts.reset();
      localhostNodePorts.set({ reason }, enabled ? 1 : 0);
    },
    observeSync(observation) {
      const { kind } = observation;
      const family = label(observation.family);
      syncDuration.observe(family, observation.durationSeconds);
      (kind === 'full' ? fullSyncDuration : partialSyncDuration).observe(family, observation.durationSeconds);
      syncsTotal.inc({ kind, result: observation.result });
      for (const [phase, seconds] of Object.entries(observation.phases ?? {})) {
        if (seconds !== undefined) phaseDuration.observe({ phase }, seconds);
      }
      if (observation.payload !== undefined) {
        payloadBytes.observe({ kind }, observation.payload.bytes);
        payloadLines.observe({ kind }, observation.payload.lines);
      }
      if (observation.chainsWritten !== undefined) chainsWritten.observe({ kind }, observation.chainsWritten);
      if (observation.chainsDeleted !== undefined) chainsDeleted.observe({ kind }, observation.chainsDeleted);
      for (const [table, written] of Object.entries(observation.rulesWritten ?? {})) rulesLast.set({ ...family, table }, written);
      if (observation.result === 'failed') {
        // As kube-proxy: every failed restore counts, and a failed partial one counts twice over.
        restoreFailures.inc(family);
        if (kind === 'partial') partialRestoreFailures.inc(family);
        return;
      }
      lastSync.set(family, observation.finishedAtSeconds);
      for (const [table, total] of Object.entries(observation.rulesTotal ?? {})) rulesTotal.set({ ...family, table }, total);
      if (observation.noLocalEndpoints !== undefined) {
        noLocalEndpoints.set({ ...family, traffic_policy: 'internal' }, observation.noLocalEndpoints.internal);
        noLocalEndpoints.set({ ...family, traffic_policy: 'external' }, observation.noLocalEndpoints.external);
      }
    },
    syncQueued(atSeconds, family) {
      lastQueued.set(label(family), atSeconds);
    },
    observeNetworkProgramming(latencySeconds, family) {
      // A trigger time ahead of our clock (skew with the controller) is not a negative latency.
      networkProgramming.observe(label(family), Math.max(0, latencySeconds));
    },
    setPendingChanges(pending) {
      if (pending.services !== undefined) serviceChangesPending.set(pending.services);
      if (pending.endpoints !== undefined) endpointChangesPending.set(pending.endpoints);
    },
    countChanges(changes) {
      if (changes.services !== undefined && changes.services > 0) serviceChangesTotal.inc(changes.services);
      if (changes.endpoints !== undefined && changes.endpoints > 0) endpointChangesTotal.inc(changes.endpoints);
    },
    watchRestarted(resource, reason) {
      watchRestarts.inc({ resource, reason });
    },
    objectSkipped(skipped) {
      skippedTotal.inc({ kind: skipped.kind, reason: skipped.reason });
    },
    setSkippedObjects(skipped) {
      const counts = new Map<string, { kind: Skipped['kind']; reason: SkipReason; count: number }>();
      for (const { kind, reason } of skipped) {
        const key = `${kind}/${reason}`;
        const entry = counts.get(key);
        if (entry === undefined) counts.set(key, { kind, reason, count: 1 });
        else entry.count += 1;
      }
      // Reset so a reason that no longer applies disappears instead of lingering at its old value.
      skippedNow.reset();
      for (const { kind, reason, count } of counts.values()) skippedNow.set({ kind, reason }, count);
    },
    setHealthCheckNodePortServers(count) {
      healthCheckServers.set(count);
    },
    healthCheckNodePortListenFailed() {
      healthCheckListenFailures.inc();
    },
    healthProbe(probe, statusCode) {
      (probe === 'healthz' ? healthzTotal : livezTotal).inc({ code: String(statusCode) });
    },
  };
}
