// What the agent does with a sync's outcome beyond kube-proxy's metrics (issue 12): logs and
// counts drift repairs, grows the retry delay over consecutive failures (retry-backoff.ts), and
// says whether the agent is still alive (`/livez` fails once every sync of a family has failed for
// longer than livezSyncFailureTimeout). Backoff and liveness are kept per address family: each
// family's proxier fails and recovers on its own, so one family's failures never delay the other's
// retries and the other's successes never hide them.

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createReliabilityMetrics, type ReliabilityMetrics } from '../server/reliability-metrics.js';
import { RetryBackoff } from './retry-backoff.js';
import type { DriftFinding, SyncReport } from './proxier.js';
import type { IPFamily } from '../ip.js';

export interface SyncReliabilityOptions {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  /** 0 = /livez never fails because of failing syncs. */
  readonly livezSyncFailureTimeoutMs: number;
  /** The families whose syncs are observed (the retry-delay gauge starts at 0 for each); default IPv4. */
  readonly families?: readonly IPFamily[];
  readonly clock?: () => number;
}

/** One family's run of failures, for /livez and its JSON. */
export interface FamilyLiveness {
  readonly live: boolean;
  readonly consecutiveFailures: number;
  /** Milliseconds since the first of the current run of failures; 0 when its last sync succeeded. */
  readonly failingForMs: number;
}

export class SyncReliability {
  readonly metrics: ReliabilityMetrics;
  private readonly backoffs = new Map<IPFamily, RetryBackoff>();
  private readonly clock: () => number;

  constructor(private readonly options: SyncReliabilityOptions) {
    this.clock = options.clock ?? Date.now;
    const families = options.families ?? ['IPv4'];
    this.metrics = createReliabilityMetrics(options.registry, families);
    for (const family of families) this.backoffOf(family);
  }

  /** Accounts for one sync of `report.family`; returns the delay before that family's retry when it failed. */
  observe(report: SyncReport): number | undefined {
    this.observeDrift(report);
    const family = report.family;
    const backoff = this.backoffOf(family);
    const log = { component: 'sync', ipFamily: family };
    if (report.result !== 'failed') {
      if (backoff.consecutiveFailures > 0) {
        this.options.logger.info({ ...log, failures: backoff.consecutiveFailures, failingForMs: backoff.failingForMs() }, 'sync succeeded again after failures');
      }
      backoff.succeeded();
      this.metrics.setRetryDelay(0, family);
      return undefined;
    }
    const delay = backoff.failed();
    this.metrics.setRetryDelay(delay / 1000, family);
    this.options.logger.warn(
      { ...log, failures: backoff.consecutiveFailures, failingForMs: backoff.failingForMs(), retryInMs: delay },
      `${family} sync failed; next attempt (a full sync) in ${delay} ms`,
    );
    return delay;
  }

  /** false once every sync of some family has failed for longer than livezSyncFailureTimeout. */
  live(now: number = this.clock()): boolean {
    return [...this.backoffs.keys()].every((family) => this.familyLiveness(family, now).live);
  }

  /** Whether each observed family is live (what /livez decides on, per family). */
  liveness(now: number = this.clock()): Readonly<Partial<Record<IPFamily, boolean>>> {
    const families: Partial<Record<IPFamily, boolean>> = {};
    for (const family of this.backoffs.keys()) families[family] = this.familyLiveness(family, now).live;
    return families;
  }

  /** One family's run of failures. */
  familyLiveness(family: IPFamily, now: number = this.clock()): FamilyLiveness {
    const backoff = this.backoffOf(family);
    const timeout = this.options.livezSyncFailureTimeoutMs;
    const failingForMs = backoff.failingForMs(now);
    const live = timeout <= 0 || backoff.consecutiveFailures === 0 || failingForMs < timeout;
    return { live, consecutiveFailures: backoff.consecutiveFailures, failingForMs };
  }

  private backoffOf(family: IPFamily): RetryBackoff {
    let backoff = this.backoffs.get(family);
    if (backoff === undefined) {
      backoff = new RetryBackoff({ initialMs: Math.max(1000, this.options.minSyncPeriodMs), maxMs: this.options.syncPeriodMs, clock: this.clock });
      this.backoffs.set(family, backoff);
    }
    return backoff;
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
