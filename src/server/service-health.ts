// healthCheckNodePort servers: for each Service with externalTrafficPolicy Local, an HTTP server
// on its healthCheckNodePort that tells external load balancers whether this node has local
// endpoints for it (200) or not (503), as kube-proxy's service health server does.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { listen, type RunningServer } from './listen.js';
import type { AgentMetrics } from './metrics.js';

export interface ServiceHealthEntry {
  readonly namespace: string;
  readonly name: string;
  readonly healthCheckNodePort: number;
  /** Ready (or serving-terminating) endpoints of the Service on this node. */
  readonly localEndpoints: number;
}

export interface ServiceHealthServersOptions {
  /** The proxier's health (ProxierHealth.isHealthy), without node eligibility, as kube-proxy uses it here. */
  readonly isProxyHealthy: () => boolean;
  /**
   * IPs to listen on, default `0.0.0.0` (a dual-stack node adds `::`; each IPv6 address is bound
   * IPv6-only, so `0.0.0.0` and `::` sit side by side). kube-proxy listens only on the node IPs that match
   * `nodePortAddresses` when that is set; the caller resolves those (and calls setAddresses when
   * the Node's addresses change). Empty: no server listens until an address is set.
   */
  readonly addresses?: readonly string[];
  readonly logger: Logger;
  readonly metrics?: Pick<AgentMetrics, 'setHealthCheckNodePortServers' | 'healthCheckNodePortListenFailed'>;
}

export interface ServiceHealthListenFailure {
  readonly port: number;
  /** `namespace/name` of the Service that wanted the port. */
  readonly service: string;
  /** The listen error's code (EADDRINUSE, EACCES...) or message. */
  readonly error: string;
}

export interface ServiceHealthSyncResult {
  /** Ports with a server after this sync, ascending. */
  readonly listening: readonly number[];
  readonly failed: readonly ServiceHealthListenFailure[];
}

/** One port's server(s); the handler reads these fields, so updates apply to the next request. */
interface Instance {
  readonly port: number;
  namespace: string;
  name: string;
  localEndpoints: number;
  servers: RunningServer[];
}

function errorCode(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code ?? error.message;
  }
  return String(error);
}

export class ServiceHealthServers {
  private readonly instances = new Map<number, Instance>();
  private addresses: readonly string[];
  private readonly logger: Logger;
  /** What the last sync asked for, served again on new addresses. */
  private lastWanted: ReadonlyMap<string, ServiceHealthEntry> = new Map();
  // Syncs and close() run one at a time: each awaits listen/close of the previous one.
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private waitingLogged = false;

  constructor(private readonly options: ServiceHealthServersOptions) {
    this.addresses = options.addresses ?? ['0.0.0.0'];
    this.logger = options.logger;
  }

  /**
   * Makes the set of servers match `services` (keyed by anything stable, e.g. `ns/name`):
   * opens servers for new ports, closes those no longer wanted, and updates endpoint counts of
   * the rest in place. A port that cannot be bound is logged and counted and retried on the
   * next sync; the other servers are unaffected.
   */
  sync(services: ReadonlyMap<string, ServiceHealthEntry>): Promise<ServiceHealthSyncResult> {
    return this.enqueue(() => this.apply(services));
  }

  /**
   * Moves every server to these addresses (the Node's IPs matching nodePortAddresses, known only
   * once the Node is listed, and changing with it). Nothing happens when they are the same.
   */
  setAddresses(addresses: readonly string[]): Promise<ServiceHealthSyncResult> {
    return this.enqueue(async () => {
      const same = addresses.length === this.addresses.length && addresses.every((address, index) => address === this.addresses[index]);
      if (same || this.closed) return { listening: this.ports(), failed: [] };
      this.logger.info({ from: this.addresses, to: addresses }, 'healthcheck servers move to new addresses');
      this.addresses = [...addresses];
      await Promise.all([...this.instances.values()].map((instance) => this.stop(instance)));
      this.instances.clear();
      return this.apply(this.lastWanted);
    });
  }

  /** Closes every server; later syncs do nothing. */
  close(): Promise<void> {
    return this.enqueue(async () => {
      this.closed = true;
      await Promise.all([...this.instances.values()].map((instance) => this.stop(instance)));
      this.instances.clear();
      this.options.metrics?.setHealthCheckNodePortServers(0);
    });
  }

  /** Ports currently served, ascending. */
  ports(): readonly number[] {
    return [...this.instances.keys()].sort((a, b) => a - b);
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(services: ReadonlyMap<string, ServiceHealthEntry>): Promise<ServiceHealthSyncResult> {
    if (this.closed) return { listening: [], failed: [] };
    this.lastWanted = services;
    if (this.addresses.length === 0) {
      if (services.size > 0 && !this.waitingLogged) this.logger.warn({ services: services.size }, 'no node IP matches nodePortAddresses: healthcheck servers wait for one');
      this.waitingLogged = services.size > 0;
      this.options.metrics?.setHealthCheckNodePortServers(0);
      return { listening: [], failed: [] };
    }
    const wanted = new Map<number, ServiceHealthEntry>();
    // Sorted so that, should two Services ever claim one port, the same one wins every time.
    for (const key of [...services.keys()].sort()) {
      const entry = services.get(key);
      if (entry === undefined) continue;
      const port = entry.healthCheckNodePort;
      if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
      const owner = wanted.get(port);
      if (owner !== undefined) {
        this.logger.warn(
          { port, service: `${entry.namespace}/${entry.name}`, owner: `${owner.namespace}/${owner.name}` },
          'two Services share one healthCheckNodePort; serving the first',
        );
        continue;
      }
      wanted.set(port, entry);
    }

    // Close first, so a port a Service gave up is free for one that now wants it.
    const stale = [...this.instances.values()].filter((instance) => !wanted.has(instance.port));
    await Promise.all(
      stale.map(async (instance) => {
        this.instances.delete(instance.port);
        await this.stop(instance);
        this.logger.info({ port: instance.port, service: `${instance.namespace}/${instance.name}` }, 'closed healthcheck server');
      }),
    );

    const failed: ServiceHealthListenFailure[] = [];
    for (const [port, entry] of wanted) {
      const existing = this.instances.get(port);
      if (existing !== undefined) {
        existing.namespace = entry.namespace;
        existing.name = entry.name;
        existing.localEndpoints = entry.localEndpoints;
        continue;
      }
      const instance: Instance = { port, namespace: entry.namespace, name: entry.name, localEndpoints: entry.localEndpoints, servers: [] };
      try {
        for (const host of this.addresses) {
          const server = createServer((request, response) => this.answer(instance, request, response));
          instance.servers.push(await listen(server, { host, port }, { ipv6Only: isIPv6(host) }));
        }
        this.instances.set(port, instance);
        this.logger.info({ port, service: `${entry.namespace}/${entry.name}` }, 'opened healthcheck server');
      } catch (error) {
        // Release what did bind, so a retry (or another owner of the port) can take it.
        await this.stop(instance);
        const code = errorCode(error);
        failed.push({ port, service: `${entry.namespace}/${entry.name}`, error: code });
        this.options.metrics?.healthCheckNodePortListenFailed();
        this.logger.error({ port, service: `${entry.namespace}/${entry.name}`, error: code }, 'failed to start healthcheck server');
      }
    }
    this.options.metrics?.setHealthCheckNodePortServers(this.instances.size);
    return { listening: this.ports(), failed };
  }

  private async stop(instance: Instance): Promise<void> {
    const servers = instance.servers;
    instance.servers = [];
    await Promise.all(servers.map((server) => server.close()));
  }

  // Any path and method: load balancers probe whatever path they were configured with.
  private answer(instance: Instance, _request: IncomingMessage, response: ServerResponse): void {
    const count = instance.localEndpoints;
    const proxyHealthy = this.options.isProxyHealthy();
    response.writeHead(count > 0 && proxyHealthy ? 200 : 503, {
      'Content-Type': 'application/json',
      'X-Content-Type-Options': 'nosniff',
      // Lets weighted load balancers (e.g. GCP's WEIGHTED_MAGLEV) spread traffic by local endpoints.
      'X-Load-Balancing-Endpoint-Weight': String(count),
    });
    // kube-proxy's exact layout: tab-indented JSON.
    const body = {
      service: { namespace: instance.namespace, name: instance.name },
      localEndpoints: count,
      serviceProxyHealthy: proxyHealthy,
    };
    response.end(JSON.stringify(body, null, '\t'));
  }
}
