// Metrics of the stale-UDP conntrack cleanup: kube-proxy's reconciler names (duration of a round,
// entries deleted) and our own for what kube-proxy does not show (failures by reason, backlog).

import { Counter, Gauge, Histogram, exponentialBuckets, type Registry } from 'prom-client';

const IP_FAMILY = 'IPv4';

export type ConntrackFailureReason = 'binary-missing' | 'failed';

export interface ConntrackMetrics {
  /** One cleanup round finished: its wall time and the entries its filters deleted. */
  observeRound(durationSeconds: number, entriesDeleted: number): void;
  /** One `conntrack -D` filter failed (it stays queued and is retried). */
  filterFailed(reason: ConntrackFailureReason): void;
  /** Filters waiting to run or to be retried. */
  setPending(filters: number): void;
}

export function createConntrackMetrics(registry: Registry): ConntrackMetrics {
  const registers = [registry];
  const duration = new Histogram({
    name: 'kubeproxy_conntrack_reconciler_sync_duration_seconds',
    help: 'ReconcileConntrackFlowsLatency latency in seconds',
    labelNames: ['ip_family'],
    buckets: exponentialBuckets(0.001, 2, 15),
    registers,
  });
  const deleted = new Counter({
    name: 'kubeproxy_conntrack_reconciler_deleted_entries_total',
    help: 'Cumulative conntrack flows deleted by conntrack reconciler',
    labelNames: ['ip_family'],
    registers,
  });
  const failures = new Counter({
    name: 'kube_proxy_ts_conntrack_cleanup_failures_total',
    help: 'conntrack -D filters that failed (each is retried), by reason',
    labelNames: ['reason'],
    registers,
  });
  const pending = new Gauge({
    name: 'kube_proxy_ts_conntrack_cleanup_pending',
    help: 'Stale-UDP conntrack filters queued or waiting for a retry',
    registers,
  });
  for (const reason of ['binary-missing', 'failed'] as const) failures.inc({ reason }, 0);
  deleted.inc({ ip_family: IP_FAMILY }, 0);
  pending.set(0);
  return {
    observeRound(durationSeconds, entriesDeleted) {
      duration.observe({ ip_family: IP_FAMILY }, durationSeconds);
      deleted.inc({ ip_family: IP_FAMILY }, entriesDeleted);
    },
    filterFailed(reason) {
      failures.inc({ reason });
    },
    setPending(filters) {
      pending.set(filters);
    },
  };
}
