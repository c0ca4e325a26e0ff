// The three inputs of a node's proxy rules — Services, EndpointSlices and this Node — as resilient
// watchers with kube-proxy's selectors, started together and synced together; and, when asked
// (nftables mode), the cluster's ServiceCIDRs, which never hold up the first sync (as upstream's
// ServiceCIDR config runs beside the proxier's own readiness).

import type { V1EndpointSlice, V1Node, V1Service, V1ServiceCIDR } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import type { BackoffOptions } from './backoff.js';
import type { Clock } from './clock.js';
import type { ApiConnection } from './connection.js';
import { apiserverSource, type ListWatchSource } from './list-watch.js';
import { createWatcher, type WatchEvent, type Watcher, type WatcherObserver, type WatcherStatus } from './watcher.js';

// As upstream kube-proxy (cmd/kube-proxy/app/server.go): Services that name another proxy
// implementation are not ours, headless Services are served by DNS, and the EndpointSlices of
// headless Services carry the `service.kubernetes.io/headless` label.
export const serviceLabelSelector = '!service.kubernetes.io/service-proxy-name';
export const serviceFieldSelector = 'spec.clusterIP!=None';
export const endpointSliceLabelSelector = '!service.kubernetes.io/headless';
export function nodeFieldSelector(nodeName: string): string {
  return `metadata.name=${nodeName}`;
}

export type SourceName = 'services' | 'endpointSlices' | 'node';
export const sourceNames: readonly SourceName[] = ['services', 'endpointSlices', 'node'];

export interface SourceHandlers {
  readonly service: (event: WatchEvent<V1Service>) => void;
  readonly endpointSlice: (event: WatchEvent<V1EndpointSlice>) => void;
  readonly node: (event: WatchEvent<V1Node>) => void;
  /** Set to watch ServiceCIDR objects (networking.k8s.io/v1) too. */
  readonly serviceCIDR?: (event: WatchEvent<V1ServiceCIDR>) => void;
}

export interface StartSourcesOptions {
  readonly connection: ApiConnection;
  readonly nodeName: string;
  readonly handlers: SourceHandlers;
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly backoff?: BackoffOptions;
  readonly watchdogMs?: number;
  readonly watchTimeoutSeconds?: number;
  readonly observer?: WatcherObserver;
  /** Replaces the apiserver-backed list/watch of a resource (tests). */
  readonly overrides?: {
    readonly services?: ListWatchSource<V1Service>;
    readonly endpointSlices?: ListWatchSource<V1EndpointSlice>;
    readonly node?: ListWatchSource<V1Node>;
    readonly serviceCIDRs?: ListWatchSource<V1ServiceCIDR>;
  };
}

export interface Sources {
  /** Resolves once every resource has been listed; rejects if stopped first. */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
  status(): Readonly<Record<SourceName, WatcherStatus>>;
}

export function startSources(options: StartSourcesOptions): Sources {
  if (options.nodeName === '') throw new Error('startSources: nodeName must not be empty');
  const { connection } = options;
  const logger = options.logger.child({ component: 'k8s' });

  const services =
    options.overrides?.services ??
    apiserverSource<V1Service>({
      connection,
      path: '/api/v1/services',
      labelSelector: serviceLabelSelector,
      fieldSelector: serviceFieldSelector,
    });
  const endpointSlices =
    options.overrides?.endpointSlices ??
    apiserverSource<V1EndpointSlice>({
      connection,
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      labelSelector: endpointSliceLabelSelector,
    });
  const node =
    options.overrides?.node ??
    apiserverSource<V1Node>({
      connection,
      path: '/api/v1/nodes',
      fieldSelector: nodeFieldSelector(options.nodeName),
    });

  const common = {
    logger,
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.random !== undefined ? { random: options.random } : {}),
    ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
    ...(options.watchdogMs !== undefined ? { watchdogMs: options.watchdogMs } : {}),
    ...(options.watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds: options.watchTimeoutSeconds } : {}),
    ...(options.observer !== undefined ? { observer: options.observer } : {}),
  };
  const watchers: Record<SourceName, Watcher> = {
    services: createWatcher({ ...common, resource: 'services', source: services, handler: options.handlers.service }),
    endpointSlices: createWatcher({
      ...common,
      resource: 'endpointSlices',
      source: endpointSlices,
      handler: options.handlers.endpointSlice,
    }),
    node: createWatcher({ ...common, resource: 'node', source: node, handler: options.handlers.node }),
  };
  for (const name of sourceNames) watchers[name].start();
  const serviceCIDRHandler = options.handlers.serviceCIDR;
  const serviceCIDRs =
    serviceCIDRHandler === undefined
      ? undefined
      : createWatcher({
          ...common,
          resource: 'serviceCIDRs',
          source: options.overrides?.serviceCIDRs ?? apiserverSource<V1ServiceCIDR>({ connection, path: '/apis/networking.k8s.io/v1/servicecidrs' }),
          handler: serviceCIDRHandler,
        });
  serviceCIDRs?.start();
  serviceCIDRs?.synced.catch(() => undefined);

  const synced = Promise.all(sourceNames.map((name) => watchers[name].synced)).then(() => undefined);
  synced.catch(() => undefined); // see Watcher.synced: stopping early must not be an unhandled rejection

  return {
    synced,
    async stop() {
      await Promise.all([...sourceNames.map((name) => watchers[name].stop()), serviceCIDRs?.stop()]);
    },
    status() {
      return {
        services: watchers.services.status(),
        endpointSlices: watchers.endpointSlices.status(),
        node: watchers.node.status(),
      };
    },
  };
}
