// The public vocabulary of a watcher: its events, options, status and restart reasons. Kept apart
// from the state machine in watcher.ts so consumers (sources, agent, metrics) read one short file.

import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import type { BackoffOptions } from './backoff.js';
import type { Clock } from './clock.js';
import type { ListWatchSource } from './list-watch.js';
import type { ObjectEvent } from './object-store.js';

export type { ObjectEvent, ObjectEventType } from './object-store.js';

/** `synced` follows every completed list: the handler's view now equals the apiserver's. */
export type WatchEvent<T> = ObjectEvent<T> | { readonly type: 'synced' };

/** Why a watch was started over (after a backoff, with a fresh list). Stable: labels a metric. */
export type RestartReason =
  | 'list-failed'
  | 'watch-failed'
  /** The stream ended cleanly before it proved healthy (no event, open only briefly). */
  | 'watch-closed'
  /** 410 Gone: our resourceVersion is too old for the apiserver. */
  | 'gone'
  /** No event, bookmark or list result for `watchdogMs`. */
  | 'watchdog';

export const restartReasons: readonly RestartReason[] = ['list-failed', 'watch-failed', 'watch-closed', 'gone', 'watchdog'];

export type WatcherState = 'idle' | 'listing' | 'connecting' | 'watching' | 'backoff' | 'stopped';

export interface WatcherStatus {
  readonly resource: string;
  readonly state: WatcherState;
  /** At least one full list has been delivered to the handler. */
  readonly synced: boolean;
  readonly restarts: Readonly<Record<RestartReason, number>>;
  /** Healthy watches that the server ended (its timeout) and that resumed without a relist. */
  readonly renewals: number;
  /** Failed lists and watches. */
  readonly errors: number;
  /** Exceptions thrown by the handler (caught, logged, otherwise ignored). */
  readonly handlerErrors: number;
  /** Last list result, watch event or bookmark (clock milliseconds). */
  readonly lastEventAt: number | undefined;
  readonly objects: number;
}

/** Push notifications for metrics that are counters rather than gauges. */
export interface WatcherObserver {
  restarted?(resource: string, reason: RestartReason, delayMs: number, error: unknown): void;
}

export type WatcherLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

export interface WatcherOptions<T extends KubernetesObject> {
  /** Name in logs, status and metrics, e.g. `services`. */
  readonly resource: string;
  readonly source: ListWatchSource<T>;
  /** Bookkeeping only: it runs synchronously inside the watch stream. */
  readonly handler: (event: WatchEvent<T>) => void;
  readonly logger?: WatcherLogger;
  readonly clock?: Clock;
  /** In [0, 1); jitter for backoff and server timeouts. */
  readonly random?: () => number;
  readonly backoff?: BackoffOptions;
  /** Restart when nothing arrived for this long. Bookmarks arrive about once a minute. */
  readonly watchdogMs?: number;
  /** Server-side watch timeout before jitter; each watch asks for 75-100 % of it. */
  readonly watchTimeoutSeconds?: number;
  /** A watch open this long (or that delivered an event) counts as healthy: the backoff resets. */
  readonly healthyWatchMs?: number;
  readonly observer?: WatcherObserver;
}

export interface Watcher {
  /** Starts listing and watching; a watcher runs once (start after stop does nothing). */
  start(): void;
  /** Cancels timers and the open watch; the handler is not called afterwards. */
  stop(): Promise<void>;
  /** Resolves after the first list reached the handler; rejects if stopped before that. */
  readonly synced: Promise<void>;
  status(): WatcherStatus;
}

export const watcherDefaults = {
  watchdogMs: 5 * 60_000,
  // Below the watchdog, so a quiet watch on a server without bookmarks renews before the
  // watchdog would call it hung; jittered so many nodes do not renew together.
  watchTimeoutSeconds: 240,
  healthyWatchMs: 10_000,
} as const;
