// The seam between a watcher and the apiserver: one resource's list and watch. The real source
// below builds both requests from the same selectors, so they cannot disagree (client-node 1.4's
// makeInformer sends its label selector to the watch only). Unit tests substitute a fake.

import { Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
// Not re-exported from the package index in 1.4; the list calls use this same serializer, so
// decoding watch objects with it hands the handler identical shapes (Dates, class instances)
// whether an object came from a list or a watch. The dependency is pinned to ~1.4.0.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';

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

/** The query of one page of a list call; the field names are client-node's request fields. */
export interface ListPageRequest {
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limit: number;
  readonly _continue?: string;
}

export interface ClientNodeSourceOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** Collection path of the watch, e.g. `/api/v1/services`. */
  readonly path: string;
  /** client-node model name of one object, e.g. `V1Service`; decodes watch objects. */
  readonly typeName: string;
  /** One page of the list, e.g. `(request) => coreV1.listServiceForAllNamespaces(request)`. */
  readonly listPage: (request: ListPageRequest) => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  /** Page size: bounds the apiserver's memory per request on big clusters. */
  readonly pageSize?: number;
}

export class ListError extends Error {
  override readonly name = 'ListError';
}

export function clientNodeSource<T extends KubernetesObject>(options: ClientNodeSourceOptions<T>): ListWatchSource<T> {
  const watch = new Watch(options.kubeConfig);
  const selectors = {
    ...(options.labelSelector !== undefined ? { labelSelector: options.labelSelector } : {}),
    ...(options.fieldSelector !== undefined ? { fieldSelector: options.fieldSelector } : {}),
  };
  const limit = options.pageSize ?? 500;

  return {
    async list() {
      const items: T[] = [];
      let continueToken: string | undefined;
      let resourceVersion = '';
      do {
        const page = await options.listPage({
          ...selectors,
          limit,
          ...(continueToken !== undefined ? { _continue: continueToken } : {}),
        });
        items.push(...page.items);
        resourceVersion = page.metadata?.resourceVersion ?? '';
        const next = page.metadata?._continue;
        continueToken = next === undefined || next === '' ? undefined : next;
      } while (continueToken !== undefined);
      // Watching from "" would mean "from now, replaying everything as ADDED": never what we want.
      if (resourceVersion === '') throw new ListError(`list of ${options.path} returned no resourceVersion`);
      return { items, resourceVersion };
    },

    async watch(request, onEvent, onEnd) {
      const query = {
        ...selectors,
        resourceVersion: request.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: request.timeoutSeconds,
      };
      const controller = await watch.watch(
        options.path,
        query,
        (phase: string, object: unknown) => {
          const event = decodeWatchEvent<T>(phase, object, options.typeName);
          if (event !== undefined) onEvent(event);
        },
        (error: unknown) => onEnd(error ?? undefined),
      );
      return { abort: () => controller.abort() };
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Undefined for phases this client does not know (future API additions are ignored). */
export function decodeWatchEvent<T>(phase: string, object: unknown, typeName: string): RawWatchEvent<T> | undefined {
  switch (phase) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
      return { type: phase, object: ObjectSerializer.deserialize(object, typeName, '') as T };
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
