// Wires the running agent: sources -> ModelStore -> scheduler -> Proxier (the backend), with metrics,
// health and healthCheckNodePort servers reading the outcome. IO lives in the parts it wires.

import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { CONFIGZ_GROUP, kubeProxyConfiguration, type AgentConfig } from '../config/index.js';
import type { ApiConnection } from '../k8s/connection.js';
import { startSources, type Sources } from '../k8s/sources.js';
import type { WatchEvent } from '../k8s/watcher.js';
import { ModelStore } from '../model/store.js';
import { deepEqual } from '../model/equal.js';
import { nodeInfoFromNode } from '../model/node.js';
import type { DesiredState, NodeInfo, Skipped } from '../model/types.js';
import { CT_STATE_INVALID_DROPPED_COUNTER, LOCALHOST_NODEPORTS_ACCEPTED_COUNTER, type NfAcct } from '../netfilter/nfacct.js';
import type { SysctlAccess } from '../netfilter/sysctl.js';
import type { ConntrackDeleter } from '../conntrack/tool.js';
import {
  createMetrics,
  ProxierHealth,
  ServiceHealthServers,
  startHealthServer,
  startMetricsServer,
  type AgentMetrics,
  type RunningServer,
} from '../server/index.js';
import { createConntrackMetrics } from '../server/conntrack-metrics.js';
import { healthCheckAddresses, localTrafficFor } from './context.js';
import { prepareLocalhostNodePorts } from './localhost-node-ports.js';
import { SyncScheduler, type SyncOutcome, type SyncReason, type SyncTrigger } from './scheduler.js';
import { SyncReliability } from './reliability.js';
import type { NodeCapabilities, Proxier, ProxierFactory, SyncReport } from './proxier.js';
import { externalPolicyLocal, internalPolicyLocal } from '../model/endpoints.js';
import { ConntrackCleaner } from './conntrack-cleaner.js';
import { serviceHealthEntries } from './service-health-entries.js';

export interface AgentOptions<Report extends SyncReport = SyncReport> {
  readonly config: AgentConfig;
  readonly connection: ApiConnection;
  /** The data-plane backend (today iptables: sync/iptables-proxier.ts iptablesBackend). */
  readonly backend: ProxierFactory<Report>;
  /** Deletes stale UDP flows after syncs (run beside them by ConntrackCleaner); undefined = never. */
  readonly conntrack: ConntrackDeleter | undefined;
  /** nfacct counters (kube-proxy's `-m nfacct` on the INVALID drop rule); undefined = none. */
  readonly nfacct?: NfAcct;
  /** Reads and sets net.ipv4.conf.all.route_localnet for localhost NodePorts; undefined = sysctls are
   * neither read nor written, and the configuration alone decides. */
  readonly sysctl?: SysctlAccess;
  readonly logger: Logger;
  readonly registry?: Registry;
  /** Watchdog for silent watches (tests shorten it). */
  readonly watchdogMs?: number;
  /** Called with every sync's report, in order (tests keep a history; polling status() can miss one). */
  readonly onSyncReport?: (report: Report) => void;
}

export interface AgentStatus<Report extends SyncReport = SyncReport> {
  readonly ready: boolean;
  readonly syncs: number;
  readonly lastReport: Report | undefined;
}

export class Agent<Report extends SyncReport = SyncReport> {
  readonly registry: Registry;
  readonly metrics: AgentMetrics;
  readonly health: ProxierHealth;
  private readonly store: ModelStore;
  private readonly proxier: Proxier<Report>;
  private readonly scheduler: SyncScheduler;
  private readonly serviceHealth: ServiceHealthServers;
  private readonly reliability: SyncReliability;
  private readonly conntrackCleaner: ConntrackCleaner | undefined;
  private readonly logger: Logger;
  private readonly startedAt = Date.now();
  private node: NodeInfo;
  private sources: Sources | undefined;
  private servers: RunningServer[] = [];
  private started = false;
  private syncCount = 0;
  private firstSyncApplied = false;
  private lastReport: Report | undefined;
  private localTrafficShown: string | undefined;
  private capabilities: NodeCapabilities = {};
  private lastSkipped: readonly Skipped[] = [];
  private readonly loggedSkips = new Set<string>();
  private readyResolve: () => void = () => undefined;
  /** Resolves after the first full list of every resource is in and the first sync applied. */
  readonly ready: Promise<void>;
  metricsPort: number | undefined;
  healthPort: number | undefined;

  constructor(private readonly options: AgentOptions<Report>) {
    const { config } = options;
    this.logger = options.logger;
    this.registry = options.registry ?? new Registry();
    this.metrics = createMetrics(this.registry);
    this.health = new ProxierHealth({ syncPeriodMs: config.syncPeriodMs, clock: () => Date.now() });
    this.node = nodeInfoFromNode(undefined, { name: config.nodeName, ips: config.nodeIP !== undefined ? [config.nodeIP] : [] });
    this.store = new ModelStore(this.node);
    this.reliability = new SyncReliability({
      registry: this.registry,
      logger: this.logger,
      minSyncPeriodMs: config.minSyncPeriodMs,
      syncPeriodMs: config.syncPeriodMs,
      livezSyncFailureTimeoutMs: config.livezSyncFailureTimeoutMs,
    });
    this.conntrackCleaner = options.conntrack === undefined ? undefined : new ConntrackCleaner({
      deleter: options.conntrack,
      logger: this.logger.child({ component: 'conntrack' }),
      metrics: createConntrackMetrics(this.registry),
      maxRetryDelayMs: config.syncPeriodMs,
    });
    this.proxier = options.backend({
      family: 'IPv4',
      store: this.store,
      conntrackCleanup: this.conntrackCleaner,
      settings: () => ({ config, node: this.node, capabilities: this.capabilities }),
    });
    this.scheduler = new SyncScheduler({
      minSyncPeriodMs: config.minSyncPeriodMs,
      syncPeriodMs: config.syncPeriodMs,
      logger: this.logger.child({ component: 'scheduler' }),
      run: (reason, sync) => this.runSync(reason, sync),
    });
    this.serviceHealth = new ServiceHealthServers({
      isProxyHealthy: () => this.health.snapshot().healthy,
      addresses: healthCheckAddresses(config, this.node),
      logger: this.logger.child({ component: 'health-check-node-ports' }),
      metrics: this.metrics,
    });
    this.ready = new Promise((resolve) => {
      this.readyResolve = resolve;
    });
  }

  status(): AgentStatus<Report> {
    return { ready: this.syncCount > 0 && this.lastReport?.result !== 'failed', syncs: this.syncCount, lastReport: this.lastReport };
  }

  /** Starts servers and watches; the first sync runs once every resource has been listed. */
  async start(): Promise<void> {
    const { config } = this.options;
    if (config.metricsBindAddress !== undefined) {
      const server = await startMetricsServer(config.metricsBindAddress, this.registry, {
        proxyMode: config.mode,
        configz: () => ({ [CONFIGZ_GROUP]: kubeProxyConfiguration(config) }),
      });
      this.metricsPort = server.port;
      this.servers.push(server);
    }
    if (config.healthzBindAddress !== undefined) {
      const server = await startHealthServer(config.healthzBindAddress, this.health, {
        onProbe: (probe, statusCode) => this.metrics.healthProbe(probe, statusCode),
        ready: () => this.firstSyncApplied,
        live: () => this.reliability.live(),
      });
      this.healthPort = server.port;
      this.servers.push(server);
    }
    this.sources = startSources({
      connection: this.options.connection,
      nodeName: config.nodeName,
      logger: this.logger.child({ component: 'sources' }),
      ...(this.options.watchdogMs !== undefined ? { watchdogMs: this.options.watchdogMs } : {}),
      observer: {
        restarted: (resource, reason) => this.metrics.watchRestarted(resource, reason),
      },
      handlers: {
        service: (event) =>
          this.onEvent('Service', event, (service) => this.store.upsertService(service), (namespace, name) => this.store.deleteService(namespace, name)),
        endpointSlice: (event) =>
          this.onEvent('EndpointSlice', event, (slice) => this.store.upsertEndpointSlice(slice), (namespace, name) => this.store.deleteEndpointSlice(namespace, name)),
        node: (event) => this.onNodeEvent(event),
      },
    });
    this.logger.info({ nodeName: config.nodeName }, 'waiting for the initial list of Services, EndpointSlices and the Node');
    await Promise.all([this.sources.synced, this.probeKernel()]);
    this.started = true;
    this.scheduler.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.scheduler.stop();
    await this.conntrackCleaner?.stop();
    await this.sources?.stop();
    await this.serviceHealth.close();
    await Promise.all(this.servers.map((server) => server.close()));
    this.servers = [];
  }

  /** Resolves when no sync is running or queued (tests). */
  async idle(): Promise<void> {
    await this.scheduler.idle();
  }

  /** Resolves when no stale-UDP conntrack cleanup round is running (tests). */
  async conntrackIdle(): Promise<void> {
    await this.conntrackCleaner?.idle();
  }

  private onEvent<T extends { metadata?: { namespace?: string; name?: string } }>(
    kind: string,
    event: WatchEvent<T>,
    upsert: (object: T) => boolean,
    remove: (namespace: string, name: string) => boolean,
  ): void {
    if (event.type === 'synced') return;
    const namespace = event.object.metadata?.namespace ?? '';
    const name = event.object.metadata?.name ?? '';
    const changed = event.type === 'delete' ? remove(namespace, name) : upsert(event.object);
    if (changed) this.changed({ kind, event: event.type, key: `${namespace}/${name}` });
  }

  private onNodeEvent(event: WatchEvent<V1Node>): void {
    if (event.type === 'synced') return;
    const node = event.type === 'delete' ? undefined : event.object;
    this.health.syncNode(node);
    const { config } = this.options;
    const next = nodeInfoFromNode(node, { name: config.nodeName, ...(config.nodeIP !== undefined ? { ips: [config.nodeIP] } : {}) });
    if (deepEqual(next, this.node)) return;
    this.node = next;
    this.store.setNode(next);
    // The Node's IPs decide where healthCheckNodePort servers listen when nodePortAddresses is set.
    this.serviceHealth.setAddresses(healthCheckAddresses(config, next)).catch((error: unknown) => {
      this.logger.error({ component: 'health-check-node-ports', error: String(error) }, 'cannot move healthcheck servers');
    });
    this.changed({ kind: 'Node', event: event.type, key: config.nodeName });
  }

  private changed(trigger: SyncTrigger): void {
    this.health.queued();
    this.metrics.syncQueued(Date.now() / 1000);
    const pending = this.store.pendingChanges();
    this.metrics.setPendingChanges({ services: pending.services, endpoints: pending.endpointSlices });
    if (this.started) this.scheduler.request('change', trigger);
  }

  private async runSync(reason: SyncReason, sync: number): Promise<SyncOutcome> {
    this.logLocalTraffic();
    const pending = this.store.pendingChanges();
    this.metrics.countChanges({ services: pending.services, endpoints: pending.endpointSlices });
    const report = await this.proxier.sync(reason);
    this.syncCount += 1;
    this.lastReport = report;
    this.options.onSyncReport?.(report);
    this.observe(report, sync);
    const retryDelay = this.reliability.observe(report);
    if (report.result === 'failed') {
      // A full sync follows after a growing delay; until it runs, the rules are stale: /healthz
      // says so after 2 x syncPeriod, as for a change kube-proxy could not apply.
      this.health.queued();
      this.scheduler.retryAfter(retryDelay ?? this.options.config.syncPeriodMs);
      return 'failed';
    }
    this.health.updated();
    this.metrics.setPendingChanges({ services: 0, endpoints: 0 });
    this.reportSkipped(report.skipped);
    await this.syncServiceHealth(report.state);
    this.firstSyncApplied = true;
    this.readyResolve();
    return report.result === 'applied' ? 'wrote' : 'unchanged';
  }

  /** What kube-proxy probes before its first sync: localhost NodePorts (and their sysctl), and
   * whether nfacct counters work on this node. */
  private async probeKernel(): Promise<void> {
    const localhost = await prepareLocalhostNodePorts(this.options.config, this.options.sysctl);
    this.logger[localhost.level]({ component: 'localhost-nodeports', ...localhost.fields }, localhost.message);
    this.metrics.setLocalhostNodePorts(localhost.enabled, localhost.off ?? 'enabled');
    this.capabilities = { localhostNodePorts: localhost.enabled };

    const { nfacct } = this.options;
    if (nfacct === undefined) return;
    if (!(await nfacct.ensure(CT_STATE_INVALID_DROPPED_COUNTER))) {
      this.logger.info('nfacct is not available (no nfacct tool or kernel support): the conntrack-INVALID drop rule goes uncounted');
      return;
    }
    this.capabilities = { ...this.capabilities, invalidDropCounter: CT_STATE_INVALID_DROPPED_COUNTER };
    this.metrics.countInvalidDrops(() => nfacct.packets(CT_STATE_INVALID_DROPPED_COUNTER));
    // As kube-proxy: the counter and its metric exist whether or not localhost NodePorts are on.
    if (await nfacct.ensure(LOCALHOST_NODEPORTS_ACCEPTED_COUNTER)) {
      this.capabilities = { ...this.capabilities, localhostNodePortsCounter: LOCALHOST_NODEPORTS_ACCEPTED_COUNTER };
      this.metrics.countLocalhostNodePortPackets(() => nfacct.packets(LOCALHOST_NODEPORTS_ACCEPTED_COUNTER));
    }
  }

  /** Says how pod traffic is detected whenever that changes (a NodeCIDR node gets its podCIDR), warning when it cannot be. */
  private logLocalTraffic(): void {
    const { config } = this.options;
    const local = localTrafficFor(config.detectLocal, config.clusterCIDR, this.node);
    const shown = local?.ifLocal ?? 'none';
    if (shown === this.localTrafficShown) return;
    this.localTrafficShown = shown;
    const mode = config.detectLocal.mode;
    if (local !== undefined) {
      this.logger.info({ detectLocalMode: mode, podTraffic: local.ifLocal }, 'local traffic detection');
      return;
    }
    const why = mode === 'NodeCIDR' ? 'the Node has no IPv4 podCIDR (yet)' : 'no clusterCIDR is set';
    this.logger.warn(
      { detectLocalMode: mode },
      `pod traffic cannot be told from other traffic: ${why}; traffic to cluster IPs is not masqueraded unless masqueradeAll`,
    );
  }

  private observe(report: Report, sync: number): void {
    const finishedAtSeconds = Date.now() / 1000;
    const phases = {
      model: report.phases.modelSeconds,
      render: report.phases.renderSeconds,
      diff: report.phases.diffSeconds,
      restore: report.phases.restoreSeconds,
    };
    const writes = report.writes;
    const log = this.logger.child({ component: 'sync' });
    const common = {
      sync,
      kind: report.kind,
      reason: report.reason,
      fullReason: report.fullReason,
      durationMs: Math.round(report.totalSeconds * 1000 * 10) / 10,
      phasesMs: Object.fromEntries(Object.entries(phases).map(([key, value]) => [key, Math.round(value * 10000) / 10])),
      bytes: writes?.bytes ?? 0,
      lines: writes?.lines ?? 0,
      chainsWritten: writes?.chainsWritten ?? 0,
      chainsDeleted: writes?.chainsDeleted ?? 0,
      changedChains: writes?.changedChainNames ?? [],
    };
    if (report.result === 'failed') {
      this.metrics.observeSync({
        kind: report.kind, result: 'failed', durationSeconds: report.totalSeconds, finishedAtSeconds, phases,
        ...(writes !== undefined ? { payload: { bytes: writes.bytes, lines: writes.lines } } : {}),
      });
      log.error({ ...common, error: report.message, failedLine: report.failedLine }, 'iptables-restore failed; the next sync is a full resync');
      return;
    }
    this.metrics.observeSync({
      kind: report.kind,
      result: report.result,
      durationSeconds: report.totalSeconds,
      finishedAtSeconds,
      phases,
      ...(writes !== undefined && report.result === 'applied' ? { payload: { bytes: writes.bytes, lines: writes.lines } } : {}),
      chainsWritten: writes?.chainsWritten ?? 0,
      chainsDeleted: writes?.chainsDeleted ?? 0,
      rulesTotal: report.rulesTotal,
      rulesWritten: writes !== undefined && report.result === 'applied' ? writes.rulesWritten : zeroed(report.rulesTotal),
      noLocalEndpoints: countNoLocalEndpoints(report.state),
    });
    for (const trigger of report.triggerTimes) {
      // Changes made before we started say nothing about our programming latency (as upstream).
      if (trigger.getTime() < this.startedAt) continue;
      this.metrics.observeNetworkProgramming(Math.max(0, Date.now() - trigger.getTime()) / 1000);
    }
    if (report.result === 'applied') log.info({ ...common, servicePorts: report.state.servicePorts.size, conntrackDeletionsQueued: report.conntrackDeletions }, 'sync applied');
    else log.debug(common, 'sync: nothing to change');
  }

  private reportSkipped(skipped: readonly Skipped[]): void {
    if (skipped === this.lastSkipped) return;
    this.lastSkipped = skipped;
    this.metrics.setSkippedObjects(skipped);
    const log = this.logger.child({ component: 'model' });
    const current = new Set<string>();
    for (const entry of skipped) {
      const key = `${entry.kind}/${entry.namespace}/${entry.name}/${entry.reason}/${entry.detail}`;
      current.add(key);
      if (this.loggedSkips.has(key)) continue;
      this.loggedSkips.add(key);
      this.metrics.objectSkipped(entry);
      log.warn({ kind: entry.kind, namespace: entry.namespace, name: entry.name, reason: entry.reason, detail: entry.detail }, 'object skipped');
    }
    for (const key of this.loggedSkips) if (!current.has(key)) this.loggedSkips.delete(key);
  }

  private async syncServiceHealth(state: DesiredState): Promise<void> {
    await this.serviceHealth.sync(serviceHealthEntries(state));
  }
}

/** Every table of `totals` at 0: an unchanged sync wrote no rules. */
function zeroed(totals: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(totals).map((table) => [table, 0]));
}

function countNoLocalEndpoints(state: DesiredState): { internal: number; external: number } {
  let internal = 0;
  let external = 0;
  for (const servicePort of state.servicePorts.values()) {
    if (servicePort.localEndpoints.length > 0) continue;
    if (internalPolicyLocal(servicePort)) internal += 1;
    if (externalPolicyLocal(servicePort)) external += 1;
  }
  return { internal, external };
}
