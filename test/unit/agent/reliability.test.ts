import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { SyncReliability } from '../../../src/agent/reliability.js';
import type { SyncReport } from '../../../src/agent/proxier.js';
import { createLogger } from '../../../src/log.js';

const failed = { result: 'failed', family: 'IPv4', kind: 'full', reason: 'retry', fullReason: 'after-failure', phases: { modelSeconds: 0, renderSeconds: 0, diffSeconds: 0, restoreSeconds: 0 }, totalSeconds: 0, message: 'boom', failedLine: undefined, writes: undefined, drift: undefined } as const satisfies SyncReport;

describe('SyncReliability', () => {
  it('grows the retry delay, and is no longer live once syncs have failed for longer than livezSyncFailureTimeout', async () => {
    let now = 1_000_000;
    const registry = new Registry();
    const reliability = new SyncReliability({
      registry, logger: createLogger({ level: 'silent' }), minSyncPeriodMs: 100, syncPeriodMs: 8000, livezSyncFailureTimeoutMs: 20_000, clock: () => now,
    });
    expect(reliability.live()).toBe(true);
    expect(reliability.observe(failed)).toBe(1000);
    now += 1000;
    expect(reliability.observe(failed)).toBe(2000);
    expect(reliability.live()).toBe(true);
    now += 19_000;
    expect(reliability.live()).toBe(false);
    expect((await registry.getSingleMetric('kube_proxy_ts_sync_retry_backoff_seconds')?.get())?.values[0]?.value).toBe(2);
  });

  it('stays live when the timeout is 0', () => {
    let now = 0;
    const reliability = new SyncReliability({
      registry: new Registry(), logger: createLogger({ level: 'silent' }), minSyncPeriodMs: 1000, syncPeriodMs: 30_000, livezSyncFailureTimeoutMs: 0, clock: () => now,
    });
    reliability.observe(failed);
    now += 3_600_000;
    expect(reliability.live()).toBe(true);
  });

  it("keeps each family's run of failures apart: the other family's successes neither reset nor extend it", () => {
    let now = 0;
    const reliability = new SyncReliability({
      registry: new Registry(), logger: createLogger({ level: 'silent' }), minSyncPeriodMs: 0, syncPeriodMs: 30_000, livezSyncFailureTimeoutMs: 10_000,
      families: ['IPv4', 'IPv6'], clock: () => now,
    });
    const ipv6Failed = { ...failed, family: 'IPv6' } as const;
    const ipv4Applied = { ...failed, result: 'unchanged', family: 'IPv4' } as unknown as SyncReport;
    expect(reliability.observe(ipv6Failed)).toBe(1000);
    expect(reliability.observe(ipv4Applied)).toBeUndefined();
    expect(reliability.observe(ipv6Failed)).toBe(2000);
    now += 11_000;
    expect(reliability.observe(ipv4Applied)).toBeUndefined();
    expect(reliability.liveness()).toEqual({ IPv4: true, IPv6: false });
    expect(reliability.live()).toBe(false);
    // IPv4's first failure waits the first delay, not IPv6's grown one.
    expect(reliability.observe(failed)).toBe(1000);
  });
});
