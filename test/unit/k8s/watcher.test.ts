import { afterEach, describe, expect, it } from 'vitest';

import { createWatcher, type Watcher, type WatcherOptions } from '../../../src/k8s/watcher.js';
import { FakeApiserver, FakeClock, RecordingHandler, flush, type FakeObject } from './fakes.js';

// random() = 0.5: backoff delay for attempt n is 0.75 * min(30 s, 200 ms * 2^n) -> 150, 300, 600 ...
const options = {
  random: () => 0.5,
  backoff: { initialMs: 200, maxMs: 30_000 },
  watchdogMs: 60_000,
  watchTimeoutSeconds: 40,
  healthyWatchMs: 10_000,
};

const running: Watcher[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((watcher) => watcher.stop()));
});

function setup(overrides: Partial<WatcherOptions<FakeObject>> = {}) {
  const clock = new FakeClock();
  const api = new FakeApiserver();
  const handler = new RecordingHandler();
  const restarts: string[] = [];
  const watcher = createWatcher<FakeObject>({
    ...options,
    resource: 'things',
    source: api,
    handler: handler.handle,
    clock,
    observer: { restarted: (_resource, reason, delayMs) => restarts.push(`${reason} ${delayMs}`) },
    ...overrides,
  });
  running.push(watcher);
  return { clock, api, handler, watcher, restarts };
}

/** Starts the watcher on whatever the fake apiserver holds and waits for the watch to open. */
async function started(overrides: Partial<WatcherOptions<FakeObject>> = {}) {
  const context = setup(overrides);
  context.watcher.start();
  await flush();
  return context;
}

describe('initial list', () => {
  it('announces every listed object, then synced, then watches from the list resourceVersion', async () => {
    const { api, handler, watcher } = setup();
    api.put('a');
    api.put('b', '', 'other');
    watcher.start();
    await watcher.synced;
    await flush();

    expect(handler.take()).toEqual(['add default/a 101', 'add other/b 102', 'synced']);
    expect(api.watches).toHaveLength(1);
    expect(api.currentWatch?.request).toEqual({ resourceVersion: '102', timeoutSeconds: 35 });
    expect(watcher.status()).toMatchObject({ synced: true, state: 'watching', objects: 2, errors: 0 });
  });

  it('keeps retrying a failing first list with growing, capped delays', async () => {
    const { api, clock, watcher, restarts } = setup({ backoff: { initialMs: 200, maxMs: 1_000 } });
    for (let i = 0; i < 5; i += 1) api.failNextList(new Error('connection refused'));
    watcher.start();
    await clock.advance(10_000);

    expect(restarts).toEqual(['list-failed 150', 'list-failed 300', 'list-failed 600', 'list-failed 750', 'list-failed 750']);
    expect(api.listCalls).toBe(6);
    expect(watcher.status()).toMatchObject({ synced: true, errors: 5 });
    await expect(watcher.synced).resolves.toBeUndefined();
  });
});

describe('watch events', () => {
  it('pass through as add, update and delete, dropping replays of a version already seen', async () => {
    const { api, handler } = await started();
    handler.take();

    const a = api.put('a', 'one');
    api.put('a', 'two');
    api.currentWatch?.send({ type: 'MODIFIED', object: { ...a, metadata: { ...a.metadata, resourceVersion: '102' } } });
    api.remove('a');
    api.currentWatch?.send({ type: 'DELETED', object: a }); // already gone: nothing to delete

    expect(handler.take()).toEqual(['add default/a 101', 'update default/a 102', 'delete default/a 103']);
  });

  it('skips objects without a name instead of failing the watch', async () => {
    const { api, handler, watcher } = await started();
    handler.take();
    api.currentWatch?.send({ type: 'ADDED', object: { metadata: { name: '' } } });
    api.put('a');
    expect(handler.take()).toEqual(['add default/a 101']);
    expect(watcher.status().state).toBe('watching');
  });

  it('a handler that throws is counted and does not stop the stream', async () => {
    const seen: string[] = [];
    const { api, watcher } = await started({
      handler: (event) => {
        if (event.type === 'synced') return;
        seen.push(event.object.metadata.name);
        if (event.object.metadata.name === 'bad') throw new Error('boom');
      },
    });
    api.put('bad');
    api.put('good');
    expect(seen).toEqual(['bad', 'good']);
    expect(watcher.status().handlerErrors).toBe(1);
  });
});

describe('restart after an error', () => {
  it('backs off, relists, and emits exactly the difference to what the handler saw', async () => {
    const { api, clock, handler, watcher, restarts } = await started();
    api.put('gone');
    api.put('changed', 'v1');
    api.put('same');
    handler.take();
    const first = api.currentWatch;

    first?.end(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    // Disconnected: none of this is streamed.
    api.remove('gone');
    api.put('changed', 'v2');
    api.put('new');
    expect(handler.take()).toEqual([]);
    expect(watcher.status().state).toBe('backoff');

    await clock.advance(149);
    expect(api.listCalls).toBe(1);
    await clock.advance(1);
    expect(api.listCalls).toBe(2);

    expect(handler.take()).toEqual(['delete default/gone 101', 'update default/changed 105', 'add default/new 106', 'synced']);
    expect([...handler.view.keys()].sort()).toEqual(['default/changed', 'default/new', 'default/same']);
    expect(restarts).toEqual(['watch-failed 150']);
    expect(watcher.status()).toMatchObject({ state: 'watching', errors: 1, objects: 3 });
    expect(watcher.status().restarts['watch-failed']).toBe(1);
    expect(api.currentWatch?.request.resourceVersion).toBe('106');
    expect(first?.aborted || first?.ended).toBe(true);
  });

  it('restarts when the watch request itself fails', async () => {
    const { api, clock, watcher } = setup();
    api.failNextWatch(new Error('socket hang up'));
    watcher.start();
    await clock.advance(150);
    expect(watcher.status().restarts['watch-failed']).toBe(1);
    expect(api.listCalls).toBe(2);
    expect(api.currentWatch).toBeDefined();
  });

  it('a stream that closes cleanly before proving healthy counts as watch-closed and relists', async () => {
    const { api, clock, watcher } = await started();
    await clock.advance(1_000);
    api.currentWatch?.end();
    expect(watcher.status().restarts['watch-closed']).toBe(1);
    await clock.advance(150);
    expect(api.listCalls).toBe(2);
  });

  it('grows the backoff while failures repeat and resets it after a healthy watch', async () => {
    const { api, clock, restarts } = await started();
    api.currentWatch?.end(new Error('reset 1'));
    await clock.advance(150);
    api.currentWatch?.end(new Error('reset 2'));
    await clock.advance(300);
    api.put('a'); // an event proves the new watch healthy
    api.currentWatch?.end(new Error('reset 3'));
    expect(restarts).toEqual(['watch-failed 150', 'watch-failed 300', 'watch-failed 150']);
  });

  it('ignores late callbacks of an abandoned watch', async () => {
    const { api, clock, handler } = await started();
    const old = api.currentWatch;
    old?.end(new Error('reset'));
    await clock.advance(150);
    handler.take();
    // A misbehaving transport that still delivers on the old stream after abort.
    (old as unknown as { aborted: boolean; ended: boolean }).ended = false;
    (old as unknown as { aborted: boolean }).aborted = false;
    old?.send({ type: 'ADDED', object: { metadata: { name: 'ghost', namespace: 'default', resourceVersion: '999' } } });
    old?.end(new Error('late'));
    expect(handler.take()).toEqual([]);
    expect(api.currentWatch).not.toBe(old);
  });
});

describe('410 Gone', () => {
  it('an ERROR event with code 410 relists', async () => {
    const { api, clock, handler, watcher } = await started();
    api.put('a');
    handler.take();
    api.currentWatch?.send({ type: 'ERROR', code: 410, message: 'too old resource version: 1 (50)' });
    expect(api.currentWatch).toBeUndefined(); // aborted at once
    api.remove('a');
    await clock.advance(150);
    expect(handler.take()).toEqual(['delete default/a 101', 'synced']);
    expect(watcher.status().restarts.gone).toBe(1);
  });

  it('an HTTP 410 on the watch request relists', async () => {
    const { api, clock, watcher } = await started();
    api.currentWatch?.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
    await clock.advance(150);
    expect(watcher.status().restarts.gone).toBe(1);
    expect(api.listCalls).toBe(2);
  });

  it('other ERROR events count as watch failures', async () => {
    const { api, watcher } = await started();
    api.currentWatch?.send({ type: 'ERROR', code: 500, message: 'internal error' });
    expect(watcher.status().restarts['watch-failed']).toBe(1);
  });
});

describe('server-side timeout', () => {
  it('a healthy watch that ends cleanly resumes from the last resourceVersion without a relist', async () => {
    const { api, clock, handler, watcher } = await started();
    api.put('a');
    api.bookmark();
    await clock.advance(35_000);
    api.currentWatch?.end();
    await flush();

    expect(api.listCalls).toBe(1);
    expect(api.watches).toHaveLength(2);
    expect(api.currentWatch?.request.resourceVersion).toBe('101');
    expect(watcher.status()).toMatchObject({ renewals: 1, errors: 0 });
    expect(Object.values(watcher.status().restarts).every((count) => count === 0)).toBe(true);
    expect(handler.take()).toEqual(['synced', 'add default/a 101']);
  });

  it('a quiet watch that ran its whole server timeout renews, even when shorter than healthyWatchMs', async () => {
    const { api, clock, watcher } = await started({ watchTimeoutSeconds: 4 }); // 4 * 0.875, rounded
    expect(api.currentWatch?.request.timeoutSeconds).toBe(4);
    await clock.advance(4_000);
    api.currentWatch?.end();
    await flush();
    expect(watcher.status()).toMatchObject({ renewals: 1 });
    expect(api.listCalls).toBe(1);
  });

  it('bookmarks move the resume point', async () => {
    const { api, clock } = await started();
    api.put('a');
    api.currentWatch?.send({ type: 'BOOKMARK', resourceVersion: '500' });
    await clock.advance(20_000);
    api.currentWatch?.end();
    await flush();
    expect(api.currentWatch?.request.resourceVersion).toBe('500');
  });
});

describe('watchdog', () => {
  it('restarts a silent watch and relists', async () => {
    const { api, clock, watcher, restarts } = await started();
    const silent = api.currentWatch;
    await clock.advance(59_999);
    expect(restarts).toEqual([]);
    await clock.advance(1);
    expect(restarts).toEqual(['watchdog 150']);
    expect(silent?.aborted).toBe(true);
    await clock.advance(150);
    expect(api.listCalls).toBe(2);
    expect(watcher.status()).toMatchObject({ state: 'watching', errors: 0 });
    expect(watcher.status().restarts.watchdog).toBe(1);
  });

  it('stays quiet while events or bookmarks keep arriving', async () => {
    const { api, clock, restarts } = await started();
    for (let i = 0; i < 5; i += 1) {
      await clock.advance(40_000);
      api.bookmark();
    }
    await clock.advance(40_000);
    api.put('a');
    await clock.advance(59_000);
    expect(restarts).toEqual([]);
    expect(api.listCalls).toBe(1);
  });

  it('also covers a list that never answers', async () => {
    const { api, clock, handler, watcher } = setup();
    api.put('a');
    api.holdLists();
    watcher.start();
    await clock.advance(60_000);
    expect(watcher.status().restarts.watchdog).toBe(1);
    // The hung list answers late: its result is dropped; the retry delivers.
    api.releaseLists();
    await flush();
    expect(handler.take()).toEqual([]);
    await clock.advance(150);
    expect(handler.take()).toEqual(['add default/a 101', 'synced']);
  });

  it('lastEventAt follows lists, events and bookmarks', async () => {
    const { api, clock, watcher } = await started();
    const listedAt = watcher.status().lastEventAt;
    expect(listedAt).toBe(clock.now());
    await clock.advance(5_000);
    api.bookmark();
    expect(watcher.status().lastEventAt).toBe(clock.now());
    expect(clock.now() - (listedAt ?? 0)).toBe(5_000);
  });
});

describe('stop', () => {
  it('aborts the open watch, cancels every timer and silences the handler', async () => {
    const { api, clock, handler, watcher } = await started();
    const open = api.currentWatch;
    handler.take();
    await watcher.stop();
    expect(open?.aborted).toBe(true);
    expect(clock.pending()).toBe(0);
    expect(watcher.status().state).toBe('stopped');
    await clock.advance(600_000);
    expect(api.listCalls).toBe(1);
    expect(handler.take()).toEqual([]);
  });

  it('cancels a pending backoff', async () => {
    const { api, clock, watcher } = await started();
    api.currentWatch?.end(new Error('reset'));
    await watcher.stop();
    expect(clock.pending()).toBe(0);
    await clock.advance(60_000);
    expect(api.listCalls).toBe(1);
  });

  it('rejects synced when stopped before the first list, and closes a watch that connects late', async () => {
    const { api, clock, watcher } = setup();
    api.holdLists();
    watcher.start();
    await flush();
    await watcher.stop();
    await expect(watcher.synced).rejects.toThrow(/stopped before/);
    api.releaseLists();
    await clock.advance(1_000);
    expect(api.watches).toHaveLength(0);
  });

  it('start after stop does nothing', async () => {
    const { api, watcher } = await started();
    await watcher.stop();
    watcher.start();
    await flush();
    expect(api.listCalls).toBe(1);
  });
});
