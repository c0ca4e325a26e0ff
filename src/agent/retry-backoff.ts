// How long to wait after failed syncs before the next attempt, and since when syncs have been
// failing. Upstream kube-proxy retries a failed sync after syncPeriod; here the first retry comes
// sooner (a transient failure, e.g. a lock held for a moment, costs little) and the delay doubles
// with each consecutive failure up to syncPeriod. Pure: the clock is injected.

export interface RetryBackoffOptions {
  /** The first delay (the agent uses max(minSyncPeriod, 1 s)). */
  readonly initialMs: number;
  /** The longest delay (syncPeriod). */
  readonly maxMs: number;
  /** Milliseconds since the epoch. */
  readonly clock?: () => number;
}

export class RetryBackoff {
  private failures = 0;
  private firstFailureAt: number | undefined;
  private readonly clock: () => number;

  constructor(private readonly options: RetryBackoffOptions) {
    this.clock = options.clock ?? Date.now;
  }

  /** Records a failed sync; returns the delay before the next attempt. */
  failed(): number {
    this.firstFailureAt ??= this.clock();
    this.failures++;
    const initial = Math.max(1, this.options.initialMs);
    return Math.min(this.options.maxMs, initial * 2 ** Math.min(this.failures - 1, 30));
  }

  /** A sync succeeded: the next failure starts from the first delay again. */
  succeeded(): void {
    this.failures = 0;
    this.firstFailureAt = undefined;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Milliseconds since the first of the current run of failures; 0 when the last sync succeeded. */
  failingForMs(now: number = this.clock()): number {
    return this.firstFailureAt === undefined ? 0 : now - this.firstFailureAt;
  }
}
