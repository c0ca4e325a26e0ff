// The seam between a watcher and the apiserver: one resource's list and watch. The real source
// below builds both requests from the same selectors, so they cannot disagree. Objects are handed
// on as the apiserver's JSON, parsed and nothing more, from lists and watches alike; the model
// reads them as plain data (src/model/parse.ts). Unit tests substitute a fake source.

import type { ApiConnection } from './connection.js';
import { getJson } from './http-get.js';
import { openWatchStream } from './watch-stream.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { isRecord } from '../values.js';

export interface ListResult<T> {
  readonly items: readonly T[];
  /** The list's resourceVersion: where the following watch starts. */
  readonly resourceVersion: string;
}

export type RawWatchEvent<T> =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: T }
  | { readonly type: 'BOOKMARK'; readonly resourceVersion: string }
  /** A `Status` sent inside the stream; the apiserver closes the stream after it. */
  | { readonly type: 'ERROR'; readonly code: number | undefined; readonly message: string };

export interface WatchRequest {
  readonly resourceVersion: string;
  /** Server-side timeout: the apiserver ends the stream cleanly after this many seconds. */
  readonly timeoutSeconds: number;
}

export interface WatchHandle {
  abort(): void;
}

export interface ListWatchSource<T> {
  list(): Promise<ListResult<T>>;
  /**
   * Opens a watch. `onEnd` is called once, with `undefined` for a clean end of the stream and
   * the error otherwise; it may be called before the returned promise settles.
   */
  watch(
    request: WatchRequest,
    onEvent: (event: RawWatchEvent<T>) => void,
    onEnd: (error: unknown) => void,
  ): Promise<WatchHandle>;
}

/** The query of one list request. */
export interface ListPageRequest {
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limit?: number;
  readonly continue?: string;
  /** "0": any version the apiserver has at hand (its watch cache), as client-go's first list. */
  readonly resourceVersion?: string;
}

export interface ApiserverSourceOptions {
  readonly connection: ApiConnection;
  /** Collection path of the list and the watch, e.g. `/api/v1/services`. */
  readonly path: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Page size of a consistent relist: bounds the apiserver's memory per request on big clusters. */
  readonly pageSize?: number;
  /** Abort a list request after this long (default 120 s). */
  readonly listTimeoutMs?: number;
  /** One list request, answered with the response body; the default asks the apiserver (tests substitute one). */
  readonly listPage?: (request: ListPageRequest) => Promise<unknown>;
}

export function listQuery(path: string, request: ListPageRequest): string {
  const query = new URLSearchParams();
  if (request.labelSelector !== undefined) query.set('labelSelector', request.labelSelector);
  if (request.fieldSelector !== undefined) query.set('fieldSelector', request.fieldSelector);
  if (request.limit !== undefined) query.set('limit', String(request.limit));
  if (request.continue !== undefined) query.set('continue', request.continue);
  if (request.resourceVersion !== undefined) query.set('resourceVersion', request.resourceVersion);
  const text = query.toString();
  return text === '' ? path : `${path}?${text}`;
}

export class ListError extends Error {
  override readonly name = 'ListError';
}

export function apiserverSource<T extends KubernetesObject>(options: ApiserverSourceOptions): ListWatchSource<T> {
  const selectors = {
    ...(options.labelSelector !== undefined ? { labelSelector: options.labelSelector } : {}),
    ...(options.fieldSelector !== undefined ? { fieldSelector: options.fieldSelector } : {}),
  };
  const limit = options.pageSize ?? 500;
  const listTimeoutMs = options.listTimeoutMs ?? 120_000;
  const listPage =
    options.listPage ??
    ((request: ListPageRequest): Promise<unknown> => getJson({ connection: options.connection, path: listQuery(options.path, request), timeoutMs: listTimeoutMs }));
  let listed = false;

  return {
    async list() {
      // The first list is served from the apiserver's watch cache (as client-go's reflector does:
      // resourceVersion=0): no etcd read, the fastest start. Relists (after a watch ends with 410
      // Gone, say) are consistent reads. Both in pages where the apiserver pages them (a page's
      // body and its parse are the agent's largest transient allocation); a continued page names
      // no resourceVersion, as the API requires.
      const first = !listed;
      const items: T[] = [];
      let continueToken: string | undefined;
      let resourceVersion = '';
      do {
        const page = await listPage({
          ...selectors,
          limit,
          ...(continueToken !== undefined ? { continue: continueToken } : first ? { resourceVersion: '0' } : {}),
        });
        const pageItems = isRecord(page) ? page['items'] : undefined;
        // An empty list may come as "items": null.
        if (pageItems !== null && !Array.isArray(pageItems)) throw new ListError(`list of ${options.path} returned no items`);
        for (const item of pageItems ?? []) if (isRecord(item)) items.push(item as T);
        const metadata = isRecord(page) ? page['metadata'] : undefined;
        const version = isRecord(metadata) ? metadata['resourceVersion'] : undefined;
        const next = isRecord(metadata) ? metadata['continue'] : undefined;
        resourceVersion = typeof version === 'string' ? version : '';
        continueToken = typeof next === 'string' && next !== '' ? next : undefined;
      } while (continueToken !== undefined);
      // Watching from "" would mean "from now, replaying everything as ADDED": never what we want.
      if (resourceVersion === '') throw new ListError(`list of ${options.path} returned no resourceVersion`);
      listed = true;
      return { items, resourceVersion };
    },

    async watch(request, onEvent, onEnd) {
      const query = new URLSearchParams({ watch: 'true', ...selectors });
      query.set('resourceVersion', request.resourceVersion);
      query.set('allowWatchBookmarks', 'true');
      query.set('timeoutSeconds', String(request.timeoutSeconds));
      return openWatchStream(
        options.connection,
        `${options.path}?${query.toString()}`,
        (type, object) => {
          const event = decodeWatchEvent<T>(type, object);
          if (event !== undefined) onEvent(event);
        },
        onEnd,
      );
    },
  };
}

/** Undefined for phases this client does not know (future API additions are ignored). */
export function decodeWatchEvent<T>(phase: string, object: unknown): RawWatchEvent<T> | undefined {
  switch (phase) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
      if (!isRecord(object)) return { type: 'ERROR', code: undefined, message: `watch ${phase} event without an object` };
      return { type: phase, object: object as T };
    case 'BOOKMARK': {
      const metadata = isRecord(object) ? object['metadata'] : undefined;
      const resourceVersion = isRecord(metadata) ? metadata['resourceVersion'] : undefined;
      return { type: 'BOOKMARK', resourceVersion: typeof resourceVersion === 'string' ? resourceVersion : '' };
    }
    case 'ERROR': {
      const code = isRecord(object) ? object['code'] : undefined;
      const message = isRecord(object) ? object['message'] : undefined;
      return {
        type: 'ERROR',
        code: typeof code === 'number' ? code : undefined,
        message: typeof message === 'string' ? message : 'watch error without a message',
      };
    }
    default:
      return undefined;
  }
}
