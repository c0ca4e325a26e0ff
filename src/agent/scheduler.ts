// Serialises and coalesces syncs: one queue of concurrency 1 and a dirty flag, never one job per
// event. Pacing follows kube-proxy's iptables proxier (v1.33):
// - Change syncs go through a token bucket like its BoundedFrequencyRunner (`minSyncPeriod`,
//   burstSyncs = 2): one token per minSyncPeriod, at most two. A first change after a quiet period
//   runs at once, and so does the EndpointSlice the controller writes right after a Service;
//   minSyncPeriod only paces bursts.
// - The initial sync (kube-proxy: OnServiceSynced/OnEndpointSlicesSynced call syncProxyRules
//   directly) and the periodic one (the canary check of its iptables monitor) take no token.
// - Beyond upstream: a sync that had nothing to write gives its token back, so a change arriving
//   just after it is not held back by a sync that did nothing.
// - After a failed sync, `retryAfter(delay)` holds every sync (changes and periodic ones too) until
//   the delay has passed: one retry then runs with whatever accumulated (agent/retry-backoff.ts
//   grows the delay up to syncPeriod), so a failing restore never takes the xtables lock back to back.
// Every decision is logged at debug level (component "scheduler"): why a sync ran at once or
// waited, which syncs spent the tokens, and what each sync did with its token.

import PQueue from 'p-queue';
import type { Logger } from 'pino';

export interface Timers {
  readonly now: () => number;
  readonly setTimeout: (callback: () => void, ms: number) => unknown;
  readonly clearTimeout: (handle: unknown) => void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export type SyncReason = 'change' | 'periodic' | 'retry' | 'initial';

/** What a sync did: wrote rules (or tried to and failed), or found nothing to write. */
export type SyncOutcome = 'wrote' | 'unchanged' | 'failed';

/** What asked for a sync, for the debug log (e.g. `{ kind: 'Service', key: 'ns/name' }`). */
export type SyncTrigger = Readonly<Record<string, string | number | boolean>>;

export interface SchedulerOptions {
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly timers?: Timers;
  /** Decisions go here at debug level. */
  readonly logger?: Logger;
  /** Runs one sync (`sync` numbers them, as in the log); must not throw (failures are values handled inside). */
  readonly run: (reason: SyncReason, sync: number) => Promise<SyncOutcome>;
}

/** Syncs that may start back to back before minSyncPeriod applies (kube-proxy: burstSyncs). */
export const SYNC_BURST = 2;

/** Whether a sync for this reason takes a token (upstream: goes through the BoundedFrequencyRunner). */
function takesToken(reason: SyncReason): boolean {
  return reason === 'change' || reason === 'retry';
}

/** A sync that took a token, for saying who spent them when a request has to wait. */
interface Spender {
  readonly sync: number;
  readonly reason: SyncReason;
  readonly startedAt: number;
  outcome: SyncOutcome | 'running';
}

export class SyncScheduler {
  private readonly queue = new PQueue({ concurrency: 1 });
  private readonly timers: Timers;
  private readonly logger: Logger | undefined;
  /** A request waiting for a token: its timer, reason and when it was first asked for. */
  private pending: { handle: unknown; reason: SyncReason; requestedAt: number; dueAt: number } | undefined;
  /** A sync in the queue that has not started yet (changes coalesce into it). */
  private queued: { sync: number; reason: SyncReason; requestedAt: number } | undefined;
  private running: { sync: number; reason: SyncReason } | undefined;
  /** Token bucket: one token per minSyncPeriod, at most SYNC_BURST; each change sync takes one. */
  private tokens = SYNC_BURST;
  private tokensAt = 0;
  /** The last SYNC_BURST syncs that took a token, newest last. */
  private readonly spenders: Spender[] = [];
  private nextSync = 1;
  private periodicHandle: unknown;
  private stopped = false;
  /** No sync starts before this time (a retry backoff); 0 = no hold. */
  private holdUntil = 0;

  constructor(private readonly options: SchedulerOptions) {
    this.timers = options.timers ?? realTimers;
    this.logger = options.logger;
  }

  /** Starts the periodic timer and runs the first sync now. */
  start(): void {
    this.armPeriodic();
    this.enqueue('initial', this.timers.now(), 'initial sync: runs now, takes no token');
  }

  /**
   * Asks for a sync as soon as the token bucket allows; many calls coalesce into one sync. A
   * periodic sync neither waits for nor takes a token (kube-proxy's iptables monitor runs beside
   * its sync runner); when a change is waiting for a token, the periodic sync takes it along.
   */
  request(reason: SyncReason = 'change', trigger?: SyncTrigger): void {
    if (this.stopped) return;
    const now = this.timers.now();
    if (this.queued !== undefined) {
      this.debug({ reason, trigger, into: this.queued.sync, intoReason: this.queued.reason }, 'sync request: joins the queued sync');
      return;
    }
    if (now < this.holdUntil) {
      this.armHold(now);
      this.debug({ reason, trigger, dueInMs: this.holdUntil - now }, 'sync request: joins the retry after the backoff');
      return;
    }
    if (this.pending !== undefined) {
      if (!takesToken(reason)) {
        // A token-free sync now covers what the pending one waits for.
        const { requestedAt, reason: waiting } = this.pending;
        this.timers.clearTimeout(this.pending.handle);
        this.pending = undefined;
        this.enqueue(reason, requestedAt, `${reason} sync runs now (no token) and takes along the ${waiting} sync that was waiting for a token`, trigger);
        return;
      }
      this.debug({ reason, trigger, dueInMs: this.pending.dueAt - now }, 'sync request: joins the sync waiting for a token');
      return;
    }
    if (!takesToken(reason)) {
      this.enqueue(reason, now, `${reason} sync: runs now, takes no token`, trigger);
      return;
    }
    this.schedule(reason, now, trigger);
  }

  /**
   * Holds every sync for `delayMs` (after a failure), then runs one retry: requests made meanwhile
   * join it, a sync already queued waits for it.
   */
  retryAfter(delayMs: number): void {
    if (this.stopped) return;
    const now = this.timers.now();
    this.holdUntil = now + delayMs;
    if (this.pending !== undefined) this.timers.clearTimeout(this.pending.handle);
    this.pending = undefined;
    this.armHold(now);
    this.debug({ delayMs }, `sync failed: the next attempt waits ${delayMs} ms (backoff)`);
  }

  /** Resolves when no sync is running or queued. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pending !== undefined) this.timers.clearTimeout(this.pending.handle);
    this.pending = undefined;
    if (this.periodicHandle !== undefined) this.timers.clearTimeout(this.periodicHandle);
    this.queue.clear();
    this.queued = undefined;
    await this.queue.onIdle();
  }

  /** Makes sure one retry is armed for the end of the hold. */
  private armHold(now: number): void {
    if (this.pending !== undefined) return;
    const requestedAt = now;
    const handle = this.timers.setTimeout(() => {
      this.pending = undefined;
      this.enqueue('retry', requestedAt, `retry: the backoff of ${this.holdUntil - requestedAt} ms has passed, runs now`);
    }, Math.max(0, this.holdUntil - now));
    this.pending = { handle, reason: 'retry', requestedAt, dueAt: this.holdUntil };
  }

  private armPeriodic(): void {
    this.periodicHandle = this.timers.setTimeout(() => {
      if (this.stopped) return;
      this.request('periodic');
      this.armPeriodic();
    }, this.options.syncPeriodMs);
  }

  /** Enqueues a token-taking sync now, or arms a timer for when the bucket holds a token. */
  private schedule(reason: SyncReason, requestedAt: number, trigger?: SyncTrigger): void {
    const now = this.timers.now();
    const wait = this.waitForToken();
    if (wait === 0) {
      this.enqueue(reason, requestedAt, `${reason} sync: a token is free (${this.tokens.toFixed(2)} of ${SYNC_BURST}), runs now`, trigger);
      return;
    }
    const handle = this.timers.setTimeout(() => {
      this.pending = undefined;
      this.enqueue(reason, requestedAt, `${reason} sync: waited ${this.timers.now() - requestedAt} ms for a token, runs now`);
    }, wait);
    this.pending = { handle, reason, requestedAt, dueAt: now + wait };
    this.debug(
      {
        reason,
        trigger,
        waitMs: wait,
        tokens: round(this.tokens),
        running: this.running,
        spentBy: this.spenders.map((spender) => ({ ...spender, agoMs: now - spender.startedAt })),
      },
      `sync request: no token free (${this.tokens.toFixed(2)} of ${SYNC_BURST}), waits ${wait} ms (minSyncPeriod ${this.options.minSyncPeriodMs} ms)`,
    );
  }

  private refill(): void {
    const now = this.timers.now();
    const period = this.options.minSyncPeriodMs;
    this.tokens = period <= 0 ? SYNC_BURST : Math.min(SYNC_BURST, this.tokens + (now - this.tokensAt) / period);
    this.tokensAt = now;
  }

  /** Milliseconds until a token-taking sync may start. */
  private waitForToken(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.options.minSyncPeriodMs);
  }

  private enqueue(reason: SyncReason, requestedAt: number, why: string, trigger?: SyncTrigger): void {
    if (this.stopped || this.queued !== undefined) return;
    const sync = this.nextSync++;
    this.queued = { sync, reason, requestedAt };
    this.debug({ sync, reason, trigger, tokens: round(this.tokens), running: this.running }, `sync request: ${why}${this.running !== undefined ? ` (after running sync ${this.running.sync})` : ''}`);
    void this.queue.add(async () => {
      // Changes arriving from here on need another sync: clear the flag before running.
      this.queued = undefined;
      if (this.timers.now() < this.holdUntil) {
        // Queued before a failure asked for a backoff: the retry at the end of it covers this one.
        this.armHold(this.timers.now());
        this.debug({ sync, reason }, 'sync held back by the retry backoff');
        return;
      }
      this.running = { sync, reason };
      let spender: Spender | undefined;
      if (takesToken(reason)) {
        this.refill();
        this.tokens = Math.max(0, this.tokens - 1);
        spender = { sync, reason, startedAt: this.timers.now(), outcome: 'running' };
        this.spenders.push(spender);
        if (this.spenders.length > SYNC_BURST) this.spenders.shift();
      }
      const startedAt = this.timers.now();
      this.debug(
        { sync, reason, requestedAgoMs: startedAt - requestedAt, tokenTaken: spender !== undefined, tokensLeft: round(this.tokens) },
        'sync starts',
      );
      let outcome: SyncOutcome = 'failed';
      try {
        outcome = await this.options.run(reason, sync);
      } finally {
        this.running = undefined;
        this.finished(sync, reason, spender, outcome, startedAt);
      }
    });
  }

  /** Gives the token of a sync that wrote nothing back, and lets a waiting request use it. */
  private finished(sync: number, reason: SyncReason, spender: Spender | undefined, outcome: SyncOutcome, startedAt: number): void {
    const refund = spender !== undefined && outcome === 'unchanged';
    if (spender !== undefined) spender.outcome = outcome;
    if (refund) {
      this.refill();
      this.tokens = Math.min(SYNC_BURST, this.tokens + 1);
      const index = this.spenders.indexOf(spender);
      if (index !== -1) this.spenders.splice(index, 1);
    }
    this.debug(
      { sync, reason, outcome, durationMs: this.timers.now() - startedAt, tokenRefunded: refund, tokens: round(this.tokens) },
      outcome === 'unchanged' ? 'sync done: nothing to write' : outcome === 'wrote' ? 'sync done: wrote rules' : 'sync done: failed',
    );
    if (refund && this.pending !== undefined && !this.stopped) {
      // The wait was computed while this sync held its token: compute it again.
      const { handle, reason: waiting, requestedAt } = this.pending;
      this.timers.clearTimeout(handle);
      this.pending = undefined;
      if (this.queued === undefined) this.schedule(waiting, requestedAt);
    }
  }

  private debug(fields: Record<string, unknown>, message: string): void {
    this.logger?.debug(fields, message);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
