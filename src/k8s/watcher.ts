// A resilient list+watch of one resource that tells its handler what changed, and keeps doing so
// through apiserver restarts, dropped connections and silent hangs.
//
// Why not client-node 1.4's makeInformer: it stops for good on most errors, has no watchdog (a
// half-open connection hangs forever), sends its label selector to the watch only, takes no field
// selector, cannot ask for bookmarks or a server-side timeout, and does not re-announce cached
// objects after a restart. Driving list and watch ourselves gives one place that owns the whole
// lifecycle: list -> diff against our own store -> `synced` -> watch from the list's
// resourceVersion -> on any failure back off and start over.

import type { KubernetesObject } from '@kubernetes/client-node';

import { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
import { systemClock, type Clock, type Timer } from './clock.js';
import type { ListResult, ListWatchSource, RawWatchEvent, WatchHandle } from './list-watch.js';
import { ObjectStore, objectKey } from './object-store.js';
import {
  watcherDefaults,
  type RestartReason,
  type WatchEvent,
  type Watcher,
  type WatcherLogger,
  type WatcherObserver,
  type WatcherOptions,
  type WatcherState,
  type WatcherStatus,
} from './watcher-types.js';
import { messageOf } from '../values.js';

export * from './watcher-types.js';

export function createWatcher<T extends KubernetesObject>(options: WatcherOptions<T>): Watcher {
  return new ResourceWatcher(options);
}

const silentLogger: WatcherLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

function isGone(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const record = error as Record<string, unknown>;
  return record['statusCode'] === 410 || record['code'] === 410;
}

class ResourceWatcher<T extends KubernetesObject> implements Watcher {
  readonly synced: Promise<void>;

  private readonly resource: string;
  private readonly source: ListWatchSource<T>;
  private readonly handler: (event: WatchEvent<T>) => void;
  private readonly logger: WatcherLogger;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff: BackoffOptions;
  private readonly watchdogMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly healthyWatchMs: number;
  private readonly observer: WatcherObserver | undefined;

  private readonly store = new ObjectStore<T>();
  private state: WatcherState = 'idle';
  /** Bumped whenever an attempt is abandoned: callbacks of older attempts are ignored. */
  private generation = 0;
  private resourceVersion = '';
  private attempt = 0;
  private handle: WatchHandle | undefined;
  private retryTimer: Timer | undefined;
  private watchdogTimer: Timer | undefined;
  private lastActivityAt = 0;
  private watchOpenedAt: number | undefined;
  private watchTimeoutMs = 0;
  private watchDeliveredEvents = false;

  private hasSynced = false;
  private resolveSynced: () => void = () => undefined;
  private rejectSynced: (error: Error) => void = () => undefined;

  private readonly restarts: Record<RestartReason, number> = {
    'list-failed': 0,
    'watch-failed': 0,
    'watch-closed': 0,
    gone: 0,
    watchdog: 0,
  };
  private renewals = 0;
  private errors = 0;
  private handlerErrors = 0;
  private lastEventAt: number | undefined;

  constructor(options: WatcherOptions<T>) {
    this.resource = options.resource;
    this.source = options.source;
    this.handler = options.handler;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? defaultBackoff;
    this.watchdogMs = options.watchdogMs ?? watcherDefaults.watchdogMs;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? watcherDefaults.watchTimeoutSeconds;
    this.healthyWatchMs = options.healthyWatchMs ?? watcherDefaults.healthyWatchMs;
    this.observer = options.observer;
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // Nobody may be waiting when a watcher is stopped early; that must not crash the process.
    this.synced.catch(() => undefined);
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.connect(true);
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.abandonAttempt();
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    if (!this.hasSynced) {
      this.rejectSynced(new Error(`${this.resource} watcher stopped before its first list completed`));
    }
  }

  status(): WatcherStatus {
    return {
      resource: this.resource,
      state: this.state,
      synced: this.hasSynced,
      restarts: { ...this.restarts },
      renewals: this.renewals,
      errors: this.errors,
      handlerErrors: this.handlerErrors,
      lastEventAt: this.lastEventAt,
      objects: this.store.size,
    };
  }

  private isCurrent(generation: number): boolean {
    return generation === this.generation && this.state !== 'stopped';
  }

  /** One attempt: list (unless resuming a healthy watch) and then watch. */
  private connect(relist: boolean): void {
    const generation = ++this.generation;
    this.watchOpenedAt = undefined;
    this.watchDeliveredEvents = false;
    this.lastActivityAt = this.clock.now();
    this.armWatchdog(generation, this.watchdogMs);
    void this.runAttempt(generation, relist || this.resourceVersion === '');
  }

  private async runAttempt(generation: number, relist: boolean): Promise<void> {
    if (relist) {
      this.state = 'listing';
      let result: ListResult<T>;
      try {
        result = await this.source.list();
      } catch (error) {
        if (this.isCurrent(generation)) this.restart('list-failed', error);
        return;
      }
      if (!this.isCurrent(generation)) return;
      this.applyList(result);
      if (!this.isCurrent(generation)) return; // the handler stopped us
    }

    this.state = 'connecting';
    const timeoutSeconds = Math.max(1, Math.round(this.watchTimeoutSeconds * (0.75 + 0.25 * this.random())));
    this.watchTimeoutMs = timeoutSeconds * 1000;
    let handle: WatchHandle;
    try {
      handle = await this.source.watch(
        { resourceVersion: this.resourceVersion, timeoutSeconds },
        (event) => this.onWatchEvent(generation, event),
        (error) => this.onWatchEnd(generation, error),
      );
    } catch (error) {
      if (this.isCurrent(generation)) this.restart('watch-failed', error);
      return;
    }
    // Stopped, timed out or already ended while connecting: close what we just opened.
    if (!this.isCurrent(generation)) {
      handle.abort();
      return;
    }
    this.handle = handle;
    this.state = 'watching';
    this.watchOpenedAt = this.clock.now();
    this.lastActivityAt = this.watchOpenedAt; // a sign of life for the watchdog, but not an event
  }

  private applyList(result: ListResult<T>): void {
    const items: { key: string; object: T }[] = [];
    for (const object of result.items) {
      const key = objectKey(object);
      if (key === undefined) {
        this.logger.warn({ resource: this.resource }, 'skipping listed object without a name');
        continue;
      }
      items.push({ key, object });
    }
    const events = this.store.replace(items);
    this.resourceVersion = result.resourceVersion;
    this.touch();
    for (const event of events) this.emit(event);
    this.emit({ type: 'synced' });
    if (!this.hasSynced) {
      this.hasSynced = true;
      this.logger.info({ resource: this.resource, objects: this.store.size }, 'initial list complete');
      this.resolveSynced();
    } else {
      this.logger.info({ resource: this.resource, objects: this.store.size, changes: events.length }, 'relisted');
    }
  }

  private onWatchEvent(generation: number, event: RawWatchEvent<T>): void {
    if (!this.isCurrent(generation)) return;
    if (event.type === 'ERROR') {
      const error = Object.assign(new Error(`watch error: ${event.message}`), { code: event.code });
      this.restart(event.code === 410 ? 'gone' : 'watch-failed', error);
      return;
    }
    this.touch();
    this.watchDeliveredEvents = true;
    this.attempt = 0;
    if (event.type === 'BOOKMARK') {
      if (event.resourceVersion !== '') this.resourceVersion = event.resourceVersion;
      return;
    }
    const object = event.object;
    const objectVersion = object.metadata?.resourceVersion;
    if (objectVersion !== undefined && objectVersion !== '') this.resourceVersion = objectVersion;
    const key = objectKey(object);
    if (key === undefined) {
      this.logger.warn({ resource: this.resource, type: event.type }, 'skipping watched object without a name');
      return;
    }
    const change = event.type === 'DELETED' ? this.store.delete(key, object) : this.store.upsert(key, object);
    if (change !== undefined) this.emit(change);
  }

  private onWatchEnd(generation: number, error: unknown): void {
    if (!this.isCurrent(generation)) return;
    this.handle = undefined;
    if (error !== undefined) {
      this.restart(isGone(error) ? 'gone' : 'watch-failed', error);
      return;
    }
    if (this.watchWasHealthy()) {
      // The server's timeoutSeconds ran out: resume from where we are, no relist needed.
      this.renewals += 1;
      this.logger.debug({ resource: this.resource, resourceVersion: this.resourceVersion }, 'watch renewed');
      this.connect(false);
      return;
    }
    this.restart('watch-closed', undefined);
  }

  // A watch that ran (nearly) its whole server-side timeout was healthy too, even when quiet and
  // shorter than healthyWatchMs: otherwise short timeouts would turn every renewal into a relist.
  private watchWasHealthy(): boolean {
    if (this.watchDeliveredEvents) return true;
    if (this.watchOpenedAt === undefined) return false;
    const threshold = Math.min(this.healthyWatchMs, this.watchTimeoutMs * 0.9);
    return this.clock.now() - this.watchOpenedAt >= threshold;
  }

  /** Abandon the current attempt and schedule a fresh list+watch after a backoff. */
  private restart(reason: RestartReason, error: unknown): void {
    if (this.watchWasHealthy()) this.attempt = 0;
    this.abandonAttempt();
    const delayMs = backoffDelay(this.attempt, this.backoff, this.random);
    this.attempt += 1;
    this.restarts[reason] += 1;
    if (error !== undefined) this.errors += 1;
    this.logger.warn(
      { resource: this.resource, reason, delayMs, ...(error !== undefined ? { err: messageOf(error) } : {}) },
      'restarting watch',
    );
    this.observer?.restarted?.(this.resource, reason, delayMs, error);
    this.state = 'backoff';
    this.retryTimer = this.clock.setTimer(delayMs, () => {
      this.retryTimer = undefined;
      if (this.state === 'backoff') this.connect(true);
    });
  }

  private abandonAttempt(): void {
    this.generation += 1;
    const handle = this.handle;
    this.handle = undefined;
    this.watchdogTimer?.cancel();
    this.watchdogTimer = undefined;
    if (handle !== undefined) {
      try {
        handle.abort();
      } catch (error) {
        this.logger.debug({ resource: this.resource, err: messageOf(error) }, 'aborting watch failed');
      }
    }
  }

  private touch(): void {
    const now = this.clock.now();
    this.lastActivityAt = now;
    this.lastEventAt = now;
  }

  // One timer per attempt, re-armed for the remaining quiet time when it fires early, rather than
  // a cancel+create on every event of a busy stream.
  private armWatchdog(generation: number, delayMs: number): void {
    this.watchdogTimer?.cancel();
    this.watchdogTimer = this.clock.setTimer(delayMs, () => {
      this.watchdogTimer = undefined;
      if (!this.isCurrent(generation)) return;
      const quietMs = this.clock.now() - this.lastActivityAt;
      if (quietMs >= this.watchdogMs) {
        this.restart('watchdog', undefined);
      } else {
        this.armWatchdog(generation, this.watchdogMs - quietMs);
      }
    });
  }

  private emit(event: WatchEvent<T>): void {
    if (this.state === 'stopped') return;
    try {
      this.handler(event);
    } catch (error) {
      this.handlerErrors += 1;
      this.logger.error({ resource: this.resource, type: event.type, err: messageOf(error) }, 'watch handler threw');
    }
  }
}
