import { describe, expect, it } from 'vitest';
import { SyncScheduler, type SyncOutcome, type SyncReason, type Timers } from '../../../src/agent/scheduler.js';
import { createLogger } from '../../../src/log.js';

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

type Run = { reason: SyncReason; at: number };

/**
 * A scheduler whose syncs finish at once and write something, unless `outcome` says otherwise;
 * `hold(n)` makes the n-th sync (1-based) run until the test calls the returned release().
 */
function scheduler(minSyncPeriodMs: number, syncPeriodMs: number, outcome: (run: number, reason: SyncReason) => SyncOutcome = () => 'wrote') {
  const { timers, advance } = fakeTimers();
  const runs: Run[] = [];
  const held = new Map<number, Promise<void>>();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
  const instance = new SyncScheduler({
    minSyncPeriodMs,
    syncPeriodMs,
    timers,
    logger,
    run: async (reason) => {
      runs.push({ reason, at: timers.now() });
      const number = runs.length;
      await held.get(number);
      return outcome(number, reason);
    },
  });
  const hold = (run: number): (() => void) => {
    let release = (): void => undefined;
    held.set(run, new Promise<void>((resolve) => (release = resolve)));
    return () => release();
  };
  return { instance, runs, advance, hold, lines };
}

describe('SyncScheduler', () => {
  it('runs the initial sync at start, then a burst of changes: two at once, the rest coalesced into one sync after minSyncPeriod', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(0);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }]);
    for (let round = 0; round < 2; round += 1) {
      for (let index = 0; index < 50; index += 1) instance.request('change');
      await advance(0);
    }
    expect(runs).toEqual([{ reason: 'initial', at: 0 }, { reason: 'change', at: 0 }, { reason: 'change', at: 0 }]);
    for (let index = 0; index < 50; index += 1) instance.request('change');
    await advance(999);
    expect(runs).toHaveLength(3);
    await advance(1);
    expect(runs.at(-1)).toEqual({ reason: 'change', at: 1000 });
    await advance(5000);
    expect(runs).toHaveLength(4);
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

  // Pacing as kube-proxy v1.33 (BoundedFrequencyRunner, burstSyncs = 2; the first syncs and the
  // iptables monitor outside it), and a sync that wrote nothing gives its token back.

  it('the initial sync takes no token: a Service and its EndpointSlice right after it go back to back, a third change waits', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(100);
    instance.request('change');
    await advance(0);
    instance.request('change');
    await advance(0);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }, { reason: 'change', at: 100 }, { reason: 'change', at: 100 }]);
    instance.request('change');
    await advance(999);
    expect(runs).toHaveLength(3);
    await advance(1);
    expect(runs.at(-1)).toEqual({ reason: 'change', at: 1100 });
    await instance.stop();
  });

  it('a change arriving right after a sync that wrote nothing is applied at once, without waiting a minSyncPeriod', async () => {
    // The second sync finds nothing to write (say, a slice update that changes no rule).
    const { instance, runs, advance } = scheduler(1000, 30_000, (run) => (run === 3 ? 'unchanged' : 'wrote'));
    instance.start();
    await advance(10_000);
    instance.request('change');
    await advance(100);
    instance.request('change');
    await advance(100);
    // Before: the bucket held 0.2 tokens now, and this change waited until 11,000.
    instance.request('change');
    await advance(0);
    expect(runs.slice(1)).toEqual([
      { reason: 'change', at: 10_000 },
      { reason: 'change', at: 10_100 },
      { reason: 'change', at: 10_200 },
    ]);
    // Two syncs that wrote are a burst: the next change waits for a token (0.2 left at 10,200).
    instance.request('change');
    await advance(799);
    expect(runs).toHaveLength(4);
    await advance(1);
    expect(runs.at(-1)).toEqual({ reason: 'change', at: 11_000 });
    await instance.stop();
  });

  it('syncs that write nothing do not count in the burst: any number of them, then two changes at once', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000, (run) => (run >= 2 && run <= 6 ? 'unchanged' : 'wrote'));
    instance.start();
    await advance(10_000);
    for (let change = 0; change < 7; change += 1) {
      instance.request('change');
      await advance(10);
    }
    expect(runs.slice(1).map((run) => run.at)).toEqual([10_000, 10_010, 10_020, 10_030, 10_040, 10_050, 10_060]);
    instance.request('change');
    await advance(0);
    expect(runs).toHaveLength(8);
    await advance(1000);
    expect(runs).toHaveLength(9);
    await instance.stop();
  });

  it('a change waiting for a token behind a running sync goes as soon as that sync turns out to have written nothing', async () => {
    const { instance, runs, advance, hold } = scheduler(1000, 30_000, (run) => (run === 3 ? 'unchanged' : 'wrote'));
    const release = hold(3);
    instance.start();
    await advance(10_000);
    instance.request('change'); // sync 2 writes
    await advance(0);
    instance.request('change'); // sync 3 runs until released, then says it wrote nothing
    await advance(100);
    instance.request('change'); // no token while sync 3 holds one: would wait until 11,000
    await advance(100);
    expect(runs).toHaveLength(3);
    release();
    await advance(0);
    expect(runs.slice(1)).toEqual([
      { reason: 'change', at: 10_000 },
      { reason: 'change', at: 10_000 },
      { reason: 'change', at: 10_200 },
    ]);
    await instance.stop();
  });

  it('a periodic sync takes along a change that is waiting for a token', async () => {
    const { instance, runs, advance } = scheduler(1000, 30_000);
    instance.start();
    await advance(29_500);
    instance.request('change');
    await advance(0);
    instance.request('change');
    await advance(100);
    instance.request('change'); // waits for a token until 30,500
    await advance(300);
    expect(runs.slice(1)).toEqual([{ reason: 'change', at: 29_500 }, { reason: 'change', at: 29_500 }]);
    await advance(1000);
    expect(runs.slice(3)).toEqual([{ reason: 'periodic', at: 30_000 }]);
    await instance.stop();
  });

  it('after a failure, holds every sync (changes, periodic) for the retry delay, then runs one retry', async () => {
    const { instance, runs, advance } = scheduler(100, 10_000, (run) => (run <= 2 ? 'failed' : 'wrote'));
    instance.start();
    await advance(0);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }]);
    instance.retryAfter(1000);
    // Changes during the hold, and the periodic sync, join the retry instead of taking the lock again.
    for (let index = 0; index < 20; index += 1) {
      instance.request('change');
      await advance(40);
    }
    instance.request('periodic');
    await advance(150);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }]);
    await advance(50);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }, { reason: 'retry', at: 1000 }]);
    instance.retryAfter(2000);
    await advance(1999);
    expect(runs).toHaveLength(2);
    await advance(1);
    expect(runs.at(-1)).toEqual({ reason: 'retry', at: 3000 });
    await instance.stop();
  });

  it('a sync queued while the failing one ran waits for the retry instead of running right after it', async () => {
    const { instance, runs, advance, hold } = scheduler(0, 10_000, (run) => (run === 1 ? 'failed' : 'wrote'));
    const release = hold(1);
    instance.start();
    await advance(0);
    instance.request('change');
    await advance(0);
    instance.retryAfter(500);
    release();
    await advance(499);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }]);
    await advance(1);
    expect(runs).toEqual([{ reason: 'initial', at: 0 }, { reason: 'retry', at: 500 }]);
    await instance.stop();
  });

  it('logs at debug level why a sync waited, which syncs spent the tokens and whether each wrote anything', async () => {
    const { instance, advance, lines } = scheduler(1000, 30_000, (run) => (run === 2 ? 'unchanged' : 'wrote'));
    instance.start();
    await advance(10_000);
    instance.request('change', { kind: 'EndpointSlice', key: 'ns/a' }); // sync 2: nothing to write
    await advance(0);
    instance.request('change', { kind: 'Service', key: 'ns/b' }); // sync 3
    await advance(0);
    instance.request('change', { kind: 'Service', key: 'ns/c' }); // sync 4
    await advance(0);
    instance.request('change', { kind: 'Service', key: 'ns/d' }); // waits
    await advance(0);
    const done = lines.filter((line) => String(line['msg']).startsWith('sync done'));
    expect(done.map((line) => [line['sync'], line['reason'], line['outcome'], line['tokenRefunded']])).toEqual([
      [1, 'initial', 'wrote', false],
      [2, 'change', 'unchanged', true],
      [3, 'change', 'wrote', false],
      [4, 'change', 'wrote', false],
    ]);
    const waited = lines.find((line) => String(line['msg']).includes('no token free'));
    expect(waited).toMatchObject({ level: 'debug', reason: 'change', trigger: { kind: 'Service', key: 'ns/d' }, waitMs: 1000, tokens: 0 });
    expect((waited?.['spentBy'] as { sync: number; reason: string; outcome: string }[]).map((spender) => [spender.sync, spender.reason, spender.outcome])).toEqual([
      [3, 'change', 'wrote'],
      [4, 'change', 'wrote'],
    ]);
    await instance.stop();
  });
});
