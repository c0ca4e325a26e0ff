// Metrics of drift repair and of retries after a failed sync (issue 12), on the agent's registry
// beside metrics.ts's. Counters alerts take rate() of exist from the start at 0.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { DRIFT_KINDS, type DriftKind } from '../agent/proxier.js';
import type { IPFamily } from '../ip.js';

export interface ReliabilityMetrics {
  /** One repaired chain (or missing jump, or flushed table). */
  driftRepaired(table: string, kind: DriftKind): void;
  /** Seconds one drift check took (reading the tables and comparing). */
  observeDriftCheck(seconds: number): void;
  /** The delay before `family`'s next retry after failed syncs; 0 when its last sync succeeded. */
  setRetryDelay(seconds: number, family: IPFamily): void;
}

export function createReliabilityMetrics(registry: Registry, families: readonly IPFamily[] = ['IPv4']): ReliabilityMetrics {
  const registers = [registry];
  const repairs = new Counter({
    name: 'kube_proxy_ts_drift_repairs_total',
    help: 'Chains (or built-in jumps, or whole tables) found to differ from what was applied, and repaired',
    labelNames: ['table', 'kind'],
    registers,
  });
  for (const table of ['filter', 'nat'] as const) for (const kind of DRIFT_KINDS) repairs.inc({ table, kind }, 0);
  const checkSeconds = new Histogram({
    name: 'kube_proxy_ts_drift_check_duration_seconds',
    help: 'Wall time of one drift check (iptables-save of each table and the comparison), every syncPeriod',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const retryDelay = new Gauge({
    name: 'kube_proxy_ts_sync_retry_backoff_seconds',
    help: 'Delay before the next attempt after failed syncs of the family (grows up to syncPeriod); 0 after a successful sync',
    labelNames: ['ip_family'],
    registers,
  });
  for (const family of families) retryDelay.set({ ip_family: family }, 0);
  return {
    driftRepaired: (table, kind) => repairs.inc({ table, kind }),
    observeDriftCheck: (seconds) => checkSeconds.observe(seconds),
    setRetryDelay: (seconds, family) => retryDelay.set({ ip_family: family }, seconds),
  };
}
