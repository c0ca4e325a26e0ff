// Test doubles for the k8s watchers: a hand-driven clock and an in-memory "apiserver" for one
// resource whose list and watch the test controls (fail, hang, disconnect, send events).

import type { KubernetesObject } from '@kubernetes/client-node';

import type { Clock, Timer } from '../../../src/k8s/clock.js';
import type { ListResult, ListWatchSource, RawWatchEvent, WatchHandle, WatchRequest } from '../../../src/k8s/list-watch.js';

/** Lets pending promise continuations (list results, watch connects) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface PendingTimer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
}

export class FakeClock implements Clock {
  private nowMs = 1_000_000;
  private seq = 0;
  private timers: PendingTimer[] = [];

  now(): number {
    return this.nowMs;
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    const timer: PendingTimer = { at: this.nowMs + Math.max(0, delayMs), seq: this.seq++, callback, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Timers still waiting to fire. */
  pending(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }

  /** Moves time forward, firing due timers in order and letting async work settle after each. */
  async advance(ms: number): Promise<void> {
    const target = this.nowMs + ms;
    await flush();
    for (;;) {
      const due = this.timers
        .filter((timer) => !timer.cancelled && timer.at <= target)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((timer) => timer !== due);
      this.nowMs = due.at;
      due.callback();
      await flush();
    }
    this.timers = this.timers.filter((timer) => !timer.cancelled);
    this.nowMs = target;
    await flush();
  }
}

export interface FakeObject extends KubernetesObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: string;
}

export class FakeWatch implements WatchHandle {
  aborted = false;
  ended = false;

  constructor(
    readonly request: WatchRequest,
    private readonly onEvent: (event: RawWatchEvent<FakeObject>) => void,
    private readonly onEnd: (error: unknown) => void,
  ) {}

  get open(): boolean {
    return !this.aborted && !this.ended;
  }

  abort(): void {
    this.aborted = true;
  }

  send(event: RawWatchEvent<FakeObject>): void {
    if (this.open) this.onEvent(event);
  }

  end(error?: unknown): void {
    if (!this.open) return;
    this.ended = true;
    this.onEnd(error);
  }
}

type Deferred<T> = { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void };
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * One resource of an apiserver. Changes made while a watch is open are streamed to it; changes
 * made while none is open are only visible to the next list — like events lost during a
 * disconnect.
 */
export class FakeApiserver implements ListWatchSource<FakeObject> {
  readonly watches: FakeWatch[] = [];
  listCalls = 0;
  private version = 100;
  private readonly objects = new Map<string, FakeObject>();
  private readonly listFailures: unknown[] = [];
  private hangingList: Deferred<ListResult<FakeObject>> | undefined;
  private hangLists = false;
  private watchFailures: unknown[] = [];

  get currentWatch(): FakeWatch | undefined {
    const last = this.watches[this.watches.length - 1];
    return last?.open === true ? last : undefined;
  }

  get resourceVersion(): string {
    return String(this.version);
  }

  failNextList(error: unknown): void {
    this.listFailures.push(error);
  }

  failNextWatch(error: unknown): void {
    this.watchFailures.push(error);
  }

  /** Lists stay pending until `releaseLists()`. */
  holdLists(): void {
    this.hangLists = true;
  }

  releaseLists(): void {
    this.hangLists = false;
    this.hangingList?.resolve(this.snapshot());
    this.hangingList = undefined;
  }

  async list(): Promise<ListResult<FakeObject>> {
    this.listCalls += 1;
    const failure = this.listFailures.shift();
    if (failure !== undefined) throw failure;
    if (this.hangLists) {
      this.hangingList = deferred();
      return this.hangingList.promise;
    }
    return this.snapshot();
  }

  async watch(
    request: WatchRequest,
    onEvent: (event: RawWatchEvent<FakeObject>) => void,
    onEnd: (error: unknown) => void,
  ): Promise<WatchHandle> {
    const failure = this.watchFailures.shift();
    if (failure !== undefined) throw failure;
    const watch = new FakeWatch(request, onEvent, onEnd);
    this.watches.push(watch);
    return watch;
  }

  put(name: string, data = '', namespace = 'default'): FakeObject {
    const key = `${namespace}/${name}`;
    const existed = this.objects.has(key);
    this.version += 1;
    const object: FakeObject = { metadata: { name, namespace, resourceVersion: String(this.version) }, data };
    this.objects.set(key, object);
    this.currentWatch?.send({ type: existed ? 'MODIFIED' : 'ADDED', object });
    return object;
  }

  remove(name: string, namespace = 'default'): void {
    const key = `${namespace}/${name}`;
    const object = this.objects.get(key);
    if (object === undefined) throw new Error(`no ${key}`);
    this.objects.delete(key);
    this.version += 1;
    this.currentWatch?.send({
      type: 'DELETED',
      object: { ...object, metadata: { ...object.metadata, resourceVersion: String(this.version) } },
    });
  }

  bookmark(): void {
    this.currentWatch?.send({ type: 'BOOKMARK', resourceVersion: String(this.version) });
  }

  private snapshot(): ListResult<FakeObject> {
    return { items: [...this.objects.values()], resourceVersion: String(this.version) };
  }
}

/** Records what a handler saw, as compact strings (`add default/a 101`) plus its view. */
export class RecordingHandler {
  readonly log: string[] = [];
  readonly view = new Map<string, FakeObject>();

  readonly handle = (event: { type: 'synced' } | { type: 'add' | 'update' | 'delete'; object: FakeObject }): void => {
    if (event.type === 'synced') {
      this.log.push('synced');
      return;
    }
    const key = `${event.object.metadata.namespace}/${event.object.metadata.name}`;
    this.log.push(`${event.type} ${key} ${event.object.metadata.resourceVersion}`);
    if (event.type === 'delete') this.view.delete(key);
    else this.view.set(key, event.object);
  };

  take(): string[] {
    return this.log.splice(0);
  }
}
