// Serialises and coalesces syncs: one queue of concurrency 1 and a dirty flag, never one job per
// event. Requests are rate-limited by minSyncPeriod with a burst of two, as kube-proxy's
// BoundedFrequencyRunner (burstSyncs = 2): a Service and the EndpointSlice the controller writes
// right after it are both programmed at once, instead of the second waiting a whole minSyncPeriod.
// A timer asks for a sync every syncPeriod; that one takes no token.

import PQueue from 'p-queue';

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

export interface SchedulerOptions {
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly timers?: Timers;
  /** Runs one sync; must not throw (failures are values handled inside). */
  readonly run: (reason: SyncReason) => Promise<void>;
}

export type SyncReason = 'change' | 'periodic' | 'retry' | 'initial';

/** Syncs that may start back to back before minSyncPeriod applies (kube-proxy: burstSyncs). */
export const SYNC_BURST = 2;

export class SyncScheduler {
  private readonly queue = new PQueue({ concurrency: 1 });
  private readonly timers: Timers;
  private pending: { handle: unknown; reason: SyncReason } | undefined;
  private queued = false;
  /** Token bucket: one token per minSyncPeriod, at most SYNC_BURST; each sync start takes one. */
  private tokens = SYNC_BURST;
  private tokensAt = 0;
  private periodicHandle: unknown;
  private stopped = false;

  constructor(private readonly options: SchedulerOptions) {
    this.timers = options.timers ?? realTimers;
  }

  /** Starts the periodic timer and runs the first sync now. */
  start(): void {
    this.armPeriodic();
    this.enqueue('initial');
  }

  /**
   * Asks for a sync as soon as minSyncPeriod allows; many calls coalesce into one sync. A periodic
   * sync (the canary check, kube-proxy's iptables monitor) neither waits for nor takes a token, so
   * a change right after it is not held back by minSyncPeriod.
   */
  request(reason: SyncReason = 'change'): void {
    if (this.stopped || this.pending !== undefined || this.queued) return;
    const wait = reason === 'periodic' ? 0 : this.waitForToken();
    if (wait === 0) {
      this.enqueue(reason);
      return;
    }
    const handle = this.timers.setTimeout(() => {
      this.pending = undefined;
      this.enqueue(reason);
    }, wait);
    this.pending = { handle, reason };
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
    await this.queue.onIdle();
  }

  private armPeriodic(): void {
    this.periodicHandle = this.timers.setTimeout(() => {
      if (this.stopped) return;
      this.request('periodic');
      this.armPeriodic();
    }, this.options.syncPeriodMs);
  }

  private refill(): void {
    const now = this.timers.now();
    const period = this.options.minSyncPeriodMs;
    this.tokens = period <= 0 ? SYNC_BURST : Math.min(SYNC_BURST, this.tokens + (now - this.tokensAt) / period);
    this.tokensAt = now;
  }

  /** Milliseconds until a sync may start. */
  private waitForToken(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.options.minSyncPeriodMs);
  }

  private takeToken(): void {
    this.refill();
    this.tokens = Math.max(0, this.tokens - 1);
  }

  private enqueue(reason: SyncReason): void {
    if (this.stopped) return;
    if (this.queued) return;
    this.queued = true;
    void this.queue.add(async () => {
      // Changes arriving from here on need another sync: clear the flag before running.
      this.queued = false;
      if (reason !== 'periodic') this.takeToken();
      await this.options.run(reason);
    });
  }
}
