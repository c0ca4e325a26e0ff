// Runs the stale-UDP conntrack deletions that syncs queue, off the sync path: a sync hands over its
// filters and returns; rounds of `conntrack -D` run beside later syncs with bounded concurrency.
// A filter leaves the queue only once it ran successfully after its latest queueing, so a failure
// (or a missing binary) is retried with a growing delay and never lost (kubernetes #139628).
// Each `conntrack -D` walks the whole table in the kernel, so a round with several filters lists the
// UDP flows once and runs only the filters that match one.

import type { Logger } from 'pino';
import type { ConntrackDeleter } from '../conntrack/tool.js';
import type { ConntrackFailureReason, ConntrackMetrics } from '../server/conntrack-metrics.js';
import { conntrackArgs, conntrackDeletionKey, type ConntrackDeletion } from '../conntrack/plan.js';
import { deletionsWithFlows } from '../conntrack/entries.js';

export interface ConntrackCleanerOptions {
  readonly deleter: ConntrackDeleter;
  readonly logger: Logger;
  readonly metrics: ConntrackMetrics;
  /** `conntrack` processes at once; each walks the whole table in the kernel. Default 2. */
  readonly concurrency?: number;
  /** First retry delay after a failed round, doubled per failed round up to maxRetryDelayMs. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  readonly monotonic?: () => number;
}

interface Queued {
  readonly deletion: ConntrackDeletion;
  /** Bumped by every enqueue of the same filter: a round removes it only if unchanged since it started. */
  readonly generation: number;
}

interface Failure {
  readonly reason: ConntrackFailureReason;
  readonly message: string;
  readonly filter: string;
}

/** From this many queued filters on, a round lists the UDP flows first (one walk instead of many). */
const LIST_FIRST_FROM = 4;

/** Where a sync hands its deletions (the Syncer knows nothing more of the cleanup). */
export interface ConntrackCleanupSink {
  enqueue(deletions: readonly ConntrackDeletion[]): void;
}

export class ConntrackCleaner implements ConntrackCleanupSink {
  private readonly queue = new Map<string, Queued>();
  private generation = 0;
  private round: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failedRounds = 0;
  private lastFailure: string | undefined;
  private stopped = false;
  private readonly concurrency: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly monotonic: () => number;

  constructor(private readonly options: ConntrackCleanerOptions) {
    this.concurrency = Math.max(1, options.concurrency ?? 2);
    this.retryDelayMs = options.retryDelayMs ?? 1_000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.monotonic = options.monotonic ?? (() => performance.now());
  }

  /** Filters queued or waiting for a retry. */
  get pending(): number {
    return this.queue.size;
  }

  enqueue(deletions: readonly ConntrackDeletion[]): void {
    if (deletions.length === 0 || this.stopped) return;
    for (const deletion of deletions) {
      this.generation += 1;
      this.queue.set(conntrackDeletionKey(deletion), { deletion, generation: this.generation });
    }
    this.options.metrics.setPending(this.queue.size);
    this.kick();
  }

  /** Resolves once no round is running (queued filters waiting for a retry do not count). */
  async idle(): Promise<void> {
    while (this.round !== undefined) await this.round;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.idle();
  }

  private kick(): void {
    if (this.round !== undefined || this.stopped) return;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.round = this.runRounds().finally(() => {
      this.round = undefined;
    });
  }

  /** Rounds until the queue is empty or a round failed (then a retry is scheduled). */
  private async runRounds(): Promise<void> {
    while (this.queue.size > 0 && !this.stopped) {
      const queuedBefore = this.generation;
      const failed = await this.runRound([...this.queue.entries()]);
      this.options.metrics.setPending(this.queue.size);
      // Filters queued during a failed round get their own round now; the rest wait for the retry.
      if (failed > 0 && this.generation === queuedBefore) {
        this.scheduleRetry();
        return;
      }
    }
  }

  /** Runs every filter of the snapshot that has something to delete; returns how many failed. */
  private async runRound(snapshot: readonly [string, Queued][]): Promise<number> {
    const started = this.monotonic();
    const failures: Failure[] = [];
    const narrowed = await this.narrow(snapshot, failures);
    let next = 0;
    let entriesDeleted = 0;
    // Without the binary every filter fails alike: stop the round at the first one.
    let binaryMissing = failures.some((failure) => failure.reason === 'binary-missing');
    const worker = async (): Promise<void> => {
      for (let index = next++; index < narrowed.length && !binaryMissing && !this.stopped; index = next++) {
        const item = narrowed[index];
        if (item === undefined) continue;
        const [key, queued] = item;
        const result = await this.options.deleter.delete(queued.deletion);
        if (result.ok) {
          entriesDeleted += result.entriesDeleted;
          this.done(key, queued);
        } else {
          this.options.metrics.filterFailed(result.reason);
          if (result.reason === 'binary-missing') binaryMissing = true;
          failures.push({ reason: result.reason, message: result.message, filter: conntrackArgs(queued.deletion).join(' ') });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, narrowed.length) }, worker));
    const seconds = (this.monotonic() - started) / 1000;
    this.options.metrics.observeRound(seconds, entriesDeleted);
    this.report({ filters: snapshot.length, ran: narrowed.length, entriesDeleted, seconds }, failures);
    return failures.length;
  }

  /**
   * With a few filters or more, one listing of the UDP flows first: the filters that match none
   * are done without a walk of their own. A failed listing runs them all (unless the binary is missing).
   */
  private async narrow(snapshot: readonly [string, Queued][], failures: Failure[]): Promise<readonly [string, Queued][]> {
    const { deleter } = this.options;
    if (snapshot.length < LIST_FIRST_FROM || deleter.listUdp === undefined) return snapshot;
    const listed = await deleter.listUdp();
    if (!listed.ok) {
      this.options.metrics.filterFailed(listed.reason);
      failures.push({ reason: listed.reason, message: listed.message, filter: '-L -p udp' });
      return listed.reason === 'binary-missing' ? [] : snapshot;
    }
    const withFlows = new Set(deletionsWithFlows(snapshot.map(([key, queued]) => ({ key, queued, deletion: queued.deletion })), listed.flows).map((item) => item.key));
    for (const [key, queued] of snapshot) if (!withFlows.has(key)) this.done(key, queued);
    return snapshot.filter(([key]) => withFlows.has(key));
  }

  /** Removes a filter that ran (or had nothing to delete), unless it was queued again meanwhile. */
  private done(key: string, queued: Queued): void {
    if (this.queue.get(key)?.generation === queued.generation) this.queue.delete(key);
  }

  private report(round: { filters: number; ran: number; entriesDeleted: number; seconds: number }, failures: readonly Failure[]): void {
    const { logger } = this.options;
    const fields = { filters: round.filters, ran: round.ran, entriesDeleted: round.entriesDeleted, durationMs: Math.round(round.seconds * 10_000) / 10 };
    const first = failures[0];
    if (first === undefined) {
      if (this.failedRounds > 0) logger.info({ ...fields, failedRounds: this.failedRounds }, 'stale UDP conntrack cleanup recovered');
      else logger.debug(fields, 'stale UDP conntrack entries deleted');
      this.failedRounds = 0;
      this.lastFailure = undefined;
      return;
    }
    this.failedRounds += 1;
    const retryInMs = this.nextRetryDelay();
    const details = { ...fields, failed: failures.length, pending: this.queue.size, reason: first.reason, error: first.message, filter: first.filter, retryInMs };
    // Loud once per kind of failure, then quiet while it lasts (the counter keeps counting).
    const kind = `${first.reason}:${first.message}`;
    if (kind === this.lastFailure) {
      logger.debug(details, 'stale UDP conntrack cleanup still failing');
      return;
    }
    this.lastFailure = kind;
    if (first.reason === 'binary-missing') {
      logger.error(details, 'the conntrack binary is missing: stale UDP flows cannot be deleted (install conntrack-tools); rules are still programmed and the deletions stay queued');
    } else {
      logger.warn(details, 'some stale UDP conntrack entries could not be deleted; they stay queued and are retried');
    }
  }

  private nextRetryDelay(): number {
    return Math.min(this.maxRetryDelayMs, this.retryDelayMs * 2 ** Math.max(0, this.failedRounds - 1));
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, this.nextRetryDelay());
    this.retryTimer.unref();
  }
}
