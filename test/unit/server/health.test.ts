import { describe, expect, it } from 'vitest';
import { ProxierHealth, TO_BE_DELETED_TAINT } from '../../../src/server/health.js';

const SYNC_PERIOD_MS = 30_000;

function fakeClock(startMs: number): { now: () => number; advance: (ms: number) => void } {
  let current = startMs;
  return { now: () => current, advance: (ms) => (current += ms) };
}

describe('ProxierHealth', () => {
  it('allows two sync periods, as kube-proxy does', () => {
    expect(new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: () => 0 }).healthTimeoutMs).toBe(60_000);
  });

  it('is healthy while starting up, even with changes pending longer than the timeout', () => {
    const clock = fakeClock(1_000);
    const health = new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: clock.now });
    expect(health.isHealthy()).toBe(true);
    health.queued();
    clock.advance(10 * 60_000);
    expect(health.isHealthy()).toBe(true);
    expect(health.snapshot().lastUpdatedMs).toBeUndefined();
  });

  it('turns unhealthy once a change has waited 2 x syncPeriod after the first sync, and healthy again on the next sync', () => {
    const clock = fakeClock(0);
    const health = new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: clock.now });
    health.updated();
    clock.advance(5 * 60_000);
    // Nothing pending: an idle proxy is healthy however old its last sync.
    expect(health.isHealthy()).toBe(true);

    health.queued();
    const queuedAt = clock.now();
    clock.advance(59_999);
    expect(health.isHealthy()).toBe(true);
    clock.advance(1);
    expect(health.isHealthy()).toBe(false);
    expect(health.isHealthy(queuedAt + 59_999)).toBe(true);

    health.updated();
    expect(health.isHealthy()).toBe(true);
    expect(health.snapshot()).toEqual({
      healthy: true,
      lastUpdatedMs: clock.now(),
      currentTimeMs: clock.now(),
      nodeEligible: false,
      families: { IPv4: { healthy: true, lastUpdatedMs: clock.now() } },
    });
  });

  it('measures from the oldest pending change, not the latest', () => {
    const clock = fakeClock(0);
    const health = new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: clock.now });
    health.updated();
    health.queued();
    clock.advance(40_000);
    health.queued();
    clock.advance(20_000);
    expect(health.isHealthy()).toBe(false);
  });

  it('accepts explicit times', () => {
    const health = new ProxierHealth({ syncPeriodMs: 1_000, clock: () => 0 });
    health.updated(100);
    health.queued(200);
    expect(health.isHealthy(2_199)).toBe(true);
    expect(health.isHealthy(2_200)).toBe(false);
  });

  it('treats the node as eligible only when known, not deleting and not tainted for deletion', () => {
    const health = new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: () => 0 });
    expect(health.nodeEligible()).toBe(false);
    health.syncNode({ metadata: {}, spec: { taints: [{ key: 'node.kubernetes.io/unschedulable' }] } });
    expect(health.nodeEligible()).toBe(true);
    health.syncNode({ metadata: {}, spec: { taints: [{ key: TO_BE_DELETED_TAINT }] } });
    expect(health.nodeEligible()).toBe(false);
    health.syncNode({ metadata: {}, spec: {} });
    expect(health.nodeEligible()).toBe(true);
    health.syncNode({ metadata: { deletionTimestamp: new Date(0) } });
    expect(health.nodeEligible()).toBe(false);
    health.syncNode({});
    expect(health.nodeEligible()).toBe(true);
    health.syncNode(undefined);
    expect(health.nodeEligible()).toBe(false);
  });

  it('keeps node eligibility out of the proxier health', () => {
    const health = new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: () => 0 });
    health.syncNode({ spec: { taints: [{ key: TO_BE_DELETED_TAINT }] } });
    expect(health.isHealthy()).toBe(true);
    expect(health.snapshot().nodeEligible).toBe(false);
  });

  it('keeps each family apart: one family stuck makes the proxy unhealthy, and says which (kube-proxy\'s status map)', () => {
    const clock = fakeClock(0);
    const health = new ProxierHealth({ syncPeriodMs: SYNC_PERIOD_MS, clock: clock.now });
    health.updated(0, 'IPv4');
    health.updated(0, 'IPv6');
    health.queued(clock.now(), 'IPv6');
    health.queued(clock.now(), 'IPv4');
    clock.advance(30_000);
    health.updated(clock.now(), 'IPv4');
    clock.advance(30_000);
    // IPv4 synced what was queued; IPv6 has had a change pending for 60 s.
    const snapshot = health.snapshot();
    expect(snapshot.healthy).toBe(false);
    expect(snapshot.families).toEqual({ IPv4: { healthy: true, lastUpdatedMs: 30_000 }, IPv6: { healthy: false, lastUpdatedMs: 0 } });
    expect(snapshot.lastUpdatedMs).toBe(30_000);
    health.updated(clock.now(), 'IPv6');
    expect(health.snapshot().healthy).toBe(true);
  });
});
