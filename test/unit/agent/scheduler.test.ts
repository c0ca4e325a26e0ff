import { describe, expect, it } from 'vitest';
import { SyncScheduler, type SyncReason, type Timers } from '../../../src/agent/scheduler.js';

/** Hand-driven timers: `advance(ms)` fires due callbacks in order. */
function fakeTimers() {
  let now = 0;
  let nextId = 0;
  const pending = new Map<number, { at: number; callback: () => void }>();
  const timers: Timers = {
    now: () => now,
    setTimeout: (callback, ms) => {
      nextId += 1;
      pending.set(nextId, { at: now + ms, callback });
      return nextId;
    },
    clearTimeout: (handle) => {
      pending.delete(handle as number);
    },
  };
  const advance = async (ms: number): Promise<void> => {
    const end = now + ms;
    for (;;) {
      const due = [...pending.entries()].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      pending.delete(due[0]);
      now = due[1].at;
      due[1].callback();
      await new Promise((resolve) => setImmediate(resolve));
    }
    now = end;
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { timers, advance };
}

function scheduler(minSyncPeriodMs: number, syncPeriodMs: number) {
  const { timers, advance } = fakeTimers();
  const runs: { reason: SyncReason; at: number }[] = [];
  const instance = new SyncScheduler({
    minSyncPeriodMs,
    syncPeriodMs,
    timers,
    run: async (reason) => {
      runs.push({ reason, at: timers.now() });
    },
  });
  return { instance, runs, advance };
}

describe('SyncScheduler', () => {
  it('runs the initial sync at start, one change at once (burst of two), then coalesces a burst of changes into one sync after minSyncPeriod', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(0);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }]);
    for (let index = 0; index < 50; index += 1) instance.request('change');
    await advance(0);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }, { reason: 'change', at: 0 }]);
    for (let index = 0; index < 50; index += 1) instance.request('change');
    await advance(999);
    expect(runs).toHaveLength(2);
    await advance(1);
    expect(runs.at(-1)).toEqual({ reason: 'change', at: 1000 });
    await advance(5000);
    expect(runs).toHaveLength(3);
    await instance.stop();
  });

  it('allows two syncs back to back (a Service, then its EndpointSlice), then one per minSyncPeriod', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(10_000);
    for (let change = 0; change < 4; change += 1) {
      instance.request('change');
      await advance(0);
    }
    expect(runs.map((run) => run.at)).toEqual([0, 10_000, 10_000]);
    await advance(1000);
    expect(runs.map((run) => run.at)).toEqual([0, 10_000, 10_000, 11_000]);
    instance.request('change');
    await advance(999);
    expect(runs).toHaveLength(4);
    await advance(1);
    expect(runs.map((run) => run.at)).toEqual([0, 10_000, 10_000, 11_000, 12_000]);
    await instance.stop();
  });

  it('a periodic sync takes no token: a Service and its EndpointSlice right after it still go back to back', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(30_000);
    expect(runs.map((run) => run.reason)).toEqual(['initial', 'periodic']);
    instance.request('change');
    await advance(0);
    instance.request('change');
    await advance(0);
    expect(runs.slice(2)).toEqual([{ reason: 'change', at: 30_000 }, { reason: 'change', at: 30_000 }]);
    // The burst is spent now: the next change waits for minSyncPeriod.
    instance.request('change');
    await advance(999);
    expect(runs).toHaveLength(4);
    await advance(1);
    expect(runs.at(-1)).toEqual({ reason: 'change', at: 31_000 });
    await instance.stop();
  });

  it('runs at once when the last sync is older than minSyncPeriod', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(5000);
    instance.request('change');
    await advance(0);
    expect(runs.map((run) => run.at)).toEqual([0, 5000]);
    await instance.stop();
  });

  it('asks for a periodic sync every syncPeriod, and nothing after stop', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(90_000);
    expect(runs.map((run) => `${run.reason}@${run.at}`)).toEqual(['initial@0', 'periodic@30000', 'periodic@60000', 'periodic@90000']);
    await instance.stop();
    instance.request('change');
    await advance(60_000);
    expect(runs).toHaveLength(4);
  });
});
