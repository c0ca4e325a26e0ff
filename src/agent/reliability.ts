// What the agent does with a sync's outcome beyond kube-proxy's metrics (issue 12): logs and
// counts drift repairs, grows the retry delay over consecutive failures (retry-backoff.ts), and
// says whether the agent is still alive (`/livez` fails once every sync has failed for longer than
// livezSyncFailureTimeout).

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createReliabilityMetrics, type ReliabilityMetrics } from '../server/reliability-metrics.js';
import { RetryBackoff } from './retry-backoff.js';
import type { DriftFinding, SyncReport } from './proxier.js';

export interface SyncReliabilityOptions {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  /** 0 = /livez never fails because of failing syncs. */
  readonly livezSyncFailureTimeoutMs: number;
  readonly clock?: () => number;
}

export class SyncReliability {
  readonly metrics: ReliabilityMetrics;
  private readonly backoff: RetryBackoff;
  private readonly clock: () => number;

  constructor(private readonly options: SyncReliabilityOptions) {
    this.metrics = createReliabilityMetrics(options.registry);
    this.clock = options.clock ?? Date.now;
    this.backoff = new RetryBackoff({ initialMs: Math.max(1000, options.minSyncPeriodMs), maxMs: options.syncPeriodMs, clock: this.clock });
  }

  /** Accounts for one sync; returns the delay before the retry when it failed. */
  observe(report: SyncReport): number | undefined {
    this.observeDrift(report);
    if (report.result !== 'failed') {
      if (this.backoff.consecutiveFailures > 0) {
        this.options.logger.info({ component: 'sync', failures: this.backoff.consecutiveFailures, failingForMs: this.backoff.failingForMs() }, 'sync succeeded again after failures');
      }
      this.backoff.succeeded();
      this.metrics.setRetryDelay(0);
      return undefined;
    }
    const delay = this.backoff.failed();
    this.metrics.setRetryDelay(delay / 1000);
    this.options.logger.warn(
      { component: 'sync', failures: this.backoff.consecutiveFailures, failingForMs: this.backoff.failingForMs(), retryInMs: delay },
      `sync failed; next attempt (a full sync) in ${delay} ms`,
    );
    return delay;
  }

  /** false once every sync has failed for longer than livezSyncFailureTimeout. */
  live(now: number = this.clock()): boolean {
    const timeout = this.options.livezSyncFailureTimeoutMs;
    return timeout <= 0 || this.backoff.consecutiveFailures === 0 || this.backoff.failingForMs(now) < timeout;
  }

  private observeDrift(report: SyncReport): void {
    const drift = report.drift;
    if (drift === undefined || drift.kind === 'deferred') return;
    this.metrics.observeDriftCheck(drift.seconds);
    const log = this.options.logger.child({ component: 'drift' });
    if (drift.kind === 'unread') {
      log.warn({ error: drift.message }, 'drift check: could not read the tables; checking the canaries only');
      return;
    }
    if (drift.findings.length === 0) {
      log.debug({ durationMs: Math.round(drift.seconds * 1000) }, 'drift check: the kernel holds what was applied');
      return;
    }
    const fields = { repairs: describeFindings(drift.findings), count: drift.findings.length, durationMs: Math.round(drift.seconds * 1000) };
    if (report.result === 'failed') {
      log.error(fields, 'drift found, but the restore carrying its repair failed');
      return;
    }
    for (const finding of drift.findings) this.metrics.driftRepaired(finding.table, finding.kind);
    log.warn(fields, 'drift repaired: rules in chains we own had been changed behind our back');
  }
}

/** Findings grouped for one log line: kind -> table -> chain names (capped). */
function describeFindings(findings: readonly DriftFinding[], cap = 20): Record<string, Record<string, string[]>> {
  const grouped: Record<string, Record<string, string[]>> = {};
  for (const finding of findings) {
    const chains = ((grouped[finding.kind] ??= {})[finding.table] ??= []);
    if (chains.length < cap) chains.push(finding.chain);
  }
  return grouped;
}
