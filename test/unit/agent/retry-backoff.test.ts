import { describe, expect, it } from 'vitest';
import { RetryBackoff } from '../../../src/agent/retry-backoff.js';

describe('RetryBackoff', () => {
  it('doubles the delay with each consecutive failure up to syncPeriod, and starts over after a success', () => {
    let now = 0;
    const backoff = new RetryBackoff({ initialMs: 1000, maxMs: 30_000, clock: () => now });
    const delays = Array.from({ length: 8 }, () => backoff.failed());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    now = 42_000;
    expect(backoff.failingForMs()).toBe(42_000);
    expect(backoff.consecutiveFailures).toBe(8);
    backoff.succeeded();
    expect(backoff.failingForMs()).toBe(0);
    expect(backoff.failed()).toBe(1000);
  });
});
