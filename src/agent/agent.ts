// Wires the running agent: sources -> one lane per address family (ModelStore -> scheduler ->
// Proxier, lane.ts) -> kernel, with metrics, health and healthCheckNodePort servers reading the
// outcome of every family. IO lives in the parts it wires.

import type { V1Node, V1ServiceCIDR } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { CONFIGZ_GROUP, kubeProxyConfiguration, type AgentConfig } from '../config/index.js';
import type { ApiConnection } from '../k8s/connection.js';
import { startSources, type Sources } from '../k8s/sources.js';
import type { WatchEvent } from '../k8s/watcher.js';
import { deepEqual } from '../model/equal.js';
import { ServiceCIDRIndex } from '../model/service-cidrs.js';
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
  type ServiceHealthEntry,
} from '../server/index.js';
import { createConntrackMetrics } from '../server/conntrack-metrics.js';
import { clusterCIDRFor, healthCheckAddresses, localTrafficFor, nodeInfoFor } from './context.js';
import { FamilyLane } from './lane.js';
import type { IPFamily } from '../ip.js';
import { prepareLocalhostNodePorts } from './localhost-node-ports.js';
import type { SyncOutcome, SyncReason, SyncTrigger } from './scheduler.js';
import { SyncReliability } from './reliability.js';
import type { NodeCapabilities, ProxierFactory, SyncReport } from './proxier.js';
import { externalPolicyLocal, internalPolicyLocal } from '../model/endpoints.js';
import { ConntrackCleaner } from './conntrack-cleaner.js';
import { serviceHealthEntries } from './service-health-entries.js';

export interface AgentOptions<Report extends SyncReport = SyncReport> {
  readonly config: AgentConfig;
  readonly connection: ApiConnection;
  /** The data-plane backend (today iptables: sync/iptables-proxier.ts iptablesBackend). */
  readonly backend: ProxierFactory<Report>;
  /** One proxier per family, the first the primary (default IPv4 only; `run` adds IPv6 where
   * ip6tables works, as kube-proxy runs dual-stack wherever both families can be programmed). */
  readonly families?: readonly IPFamily[];
  /** Deletes stale UDP flows after syncs (run beside them by ConntrackCleaner, for every family:
   * each deletion names its own); undefined = never. */
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
  /** Every family has synced and none's last sync failed. */
  readonly ready: boolean;
  /** Syncs of every family. */
  readonly syncs: number;
  /** The primary family's last report. */
  readonly lastReport: Report | undefined;
  readonly families: Readonly<Partial<Record<IPFamily, { readonly syncs: number; readonly lastReport: Report | undefined }>>>;
}

export class Agent<Report extends SyncReport = SyncReport> {
  readonly registry: Registry;
  readonly metrics: AgentMetrics;
  readonly health: ProxierHealth;
  private readonly lanes: readonly FamilyLane<Report>[];
  private readonly serviceHealth: ServiceHealthServers;
  private readonly reliability: SyncReliability;
  private readonly conntrackCleaner: ConntrackCleaner | undefined;
  private readonly logger: Logger;
  private readonly startedAt = Date.now();
  private sources: Sources | undefined;
  private servers: RunningServer[] = [];
  private started = false;
  private syncCount = 0;
  private firstSyncApplied = false;
  private capabilities: NodeCapabilities = {};
  private readonly serviceCIDRs = new ServiceCIDRIndex();
  private lanesSkipped: readonly (readonly Skipped[])[] = [];
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
    const families = options.families ?? ['IPv4'];
    this.metrics = createMetrics(this.registry, { families });
    this.health = new ProxierHealth({ syncPeriodMs: config.syncPeriodMs, clock: () => Date.now() });
    this.reliability = new SyncReliability({
      registry: this.registry,
      logger: this.logger,
      minSyncPeriodMs: config.minSyncPeriodMs,
      syncPeriodMs: config.syncPeriodMs,
      livezSyncFailureTimeoutMs: config.livezSyncFailureTimeoutMs,
      families,
    });
    this.conntrackCleaner = options.conntrack === undefined ? undefined : new ConntrackCleaner({
      deleter: options.conntrack,
      logger: this.logger.child({ component: 'conntrack' }),
      metrics: createConntrackMetrics(this.registry),
      maxRetryDelayMs: config.syncPeriodMs,
    });
    const conntrackCleanup = this.conntrackCleaner;
    this.lanes = families.map(
      (family) =>
        new FamilyLane<Report>({
          family,
          node: nodeInfoFor(config, undefined, family),
          backend: options.backend,
          conntrackCleanup,
          settings: () => ({ config, capabilities: this.capabilities, serviceCIDRs: this.serviceCIDRs.all() }),
          minSyncPeriodMs: config.minSyncPeriodMs,
          syncPeriodMs: config.syncPeriodMs,
          logger: this.logger,
          run: (lane, reason, sync) => this.runSync(lane, reason, sync),
        }),
    );
    const primary = this.lanes[0];
    if (primary === undefined) throw new Error('Agent: no address family to serve');
    this.serviceHealth = new ServiceHealthServers({
      isProxyHealthy: () => this.health.isHealthy(),
      addresses: this.healthCheckAddresses(),
      logger: this.logger.child({ component: 'health-check-node-ports' }),
      metrics: this.metrics,
    });
    this.ready = new Promise((resolve) => {
      this.readyResolve = resolve;
    });
  }

  status(): AgentStatus<Report> {
    const families: Partial<Record<IPFamily, { syncs: number; lastReport: Report | undefined }>> = {};
    for (const lane of this.lanes) families[lane.family] = { syncs: lane.syncs, lastReport: lane.lastReport };
    return {
      ready: this.lanes.every((lane) => lane.syncs > 0 && lane.lastReport?.result !== 'failed'),
      syncs: this.syncCount,
      lastReport: this.lanes[0]?.lastReport,
      families,
    };
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
        liveness: () => this.reliability.liveness(),
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
          this.onEvent('Service', event, (lane, service) => lane.store.upsertService(service), (lane, namespace, name) => lane.store.deleteService(namespace, name)),
        endpointSlice: (event) =>
          this.onEvent(
            'EndpointSlice',
            event,
            (lane, slice) => lane.store.upsertEndpointSlice(slice),
            (lane, namespace, name) => lane.store.deleteEndpointSlice(namespace, name),
          ),
        node: (event) => this.onNodeEvent(event),
        // Only the nftables mode's rules use them (as upstream's, whose iptables proxier ignores them).
        ...(config.mode === 'nftables' ? { serviceCIDR: (event: WatchEvent<V1ServiceCIDR>) => this.onServiceCIDREvent(event) } : {}),
      },
    });
    this.logger.info({ nodeName: config.nodeName }, 'waiting for the initial list of Services, EndpointSlices and the Node');
    await Promise.all([this.sources.synced, this.probeKernel()]);
    this.started = true;
    for (const lane of this.lanes) lane.scheduler.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all(this.lanes.map((lane) => lane.scheduler.stop()));
    await this.conntrackCleaner?.stop();
    await this.sources?.stop();
    await this.serviceHealth.close();
    await Promise.all(this.servers.map((server) => server.close()));
    this.servers = [];
  }

  /** Resolves when no sync is running or queued (tests). */
  async idle(): Promise<void> {
    await Promise.all(this.lanes.map((lane) => lane.scheduler.idle()));
  }

  /** Resolves when no stale-UDP conntrack cleanup round is running (tests). */
  async conntrackIdle(): Promise<void> {
    await this.conntrackCleaner?.idle();
  }

  private onEvent<T extends { metadata?: { namespace?: string; name?: string } }>(
    kind: string,
    event: WatchEvent<T>,
    upsert: (lane: FamilyLane<Report>, object: T) => boolean,
    remove: (lane: FamilyLane<Report>, namespace: string, name: string) => boolean,
  ): void {
    if (event.type === 'synced') return;
    const namespace = event.object.metadata?.namespace ?? '';
    const name = event.object.metadata?.name ?? '';
    // Every family's model sees every object; only the families it changed sync.
    for (const lane of this.lanes) {
      const changed = event.type === 'delete' ? remove(lane, namespace, name) : upsert(lane, event.object);
      if (changed) this.changed(lane, { kind, event: event.type, key: `${namespace}/${name}` });
    }
  }

  private onServiceCIDREvent(event: WatchEvent<V1ServiceCIDR>): void {
    if (event.type === 'synced') return;
    const changed = event.type === 'delete' ? this.serviceCIDRs.delete(event.object.metadata?.name ?? '') : this.serviceCIDRs.upsert(event.object);
    if (!changed) return;
    for (const lane of this.lanes) this.changed(lane, { kind: 'ServiceCIDR', event: event.type, key: event.object.metadata?.name ?? '' });
  }

  private onNodeEvent(event: WatchEvent<V1Node>): void {
    if (event.type === 'synced') return;
    const node = event.type === 'delete' ? undefined : event.object;
    this.health.syncNode(node);
    const { config } = this.options;
    let moved = false;
    for (const lane of this.lanes) {
      const next = nodeInfoFor(config, node, lane.family);
      if (deepEqual(next, lane.node)) continue;
      lane.setNode(next);
      moved = true;
      this.changed(lane, { kind: 'Node', event: event.type, key: config.nodeName });
    }
    // The Node's IPs decide where healthCheckNodePort servers listen when nodePortAddresses is set.
    if (moved) {
      this.serviceHealth.setAddresses(this.healthCheckAddresses()).catch((error: unknown) => {
        this.logger.error({ component: 'health-check-node-ports', error: String(error) }, 'cannot move healthcheck servers');
      });
    }
  }

  /** Every family's healthCheckNodePort addresses: the servers are shared by the lanes. */
  private healthCheckAddresses(): readonly string[] {
    return [...new Set(this.lanes.flatMap((lane) => healthCheckAddresses(this.options.config, lane.node, lane.family)))];
  }

  private changed(lane: FamilyLane<Report>, trigger: SyncTrigger): void {
    this.health.queued(Date.now(), lane.family);
    this.metrics.syncQueued(Date.now() / 1000, lane.family);
    const pending = lane.store.pendingChanges();
    this.metrics.setPendingChanges({ services: pending.services, endpoints: pending.endpointSlices });
    if (this.started) lane.request('change', trigger);
  }

  private async runSync(lane: FamilyLane<Report>, reason: SyncReason, sync: number): Promise<SyncOutcome> {
    this.logLocalTraffic(lane);
    const pending = lane.store.pendingChanges();
    this.metrics.countChanges({ services: pending.services, endpoints: pending.endpointSlices });
    const report = await lane.proxier.sync(reason);
    this.syncCount += 1;
    lane.syncs += 1;
    lane.lastReport = report;
    this.options.onSyncReport?.(report);
    this.observe(report, sync);
    const retryDelay = this.reliability.observe(report);
    if (report.result === 'failed') {
      // A full sync of this family follows after a growing delay; until it runs, its rules are
      // stale: /healthz says so after 2 x syncPeriod. The other family's lane goes on unaffected.
      this.health.queued(Date.now(), lane.family);
      lane.scheduler.retryAfter(retryDelay ?? this.options.config.syncPeriodMs);
      return 'failed';
    }
    this.health.updated(Date.now(), lane.family);
    this.metrics.setPendingChanges({ services: 0, endpoints: 0 });
    lane.lastState = report.state;
    if (report.skipped !== lane.lastSkipped) {
      lane.lastSkipped = report.skipped;
      this.reportSkipped(this.lanes.map((each) => each.lastSkipped));
    }
    await this.syncServiceHealth();
    lane.applied = true;
    if (this.lanes.every((each) => each.applied)) {
      this.firstSyncApplied = true;
      this.readyResolve();
    }
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
  private logLocalTraffic(lane: FamilyLane<Report>): void {
    const { config } = this.options;
    const local = localTrafficFor(config.detectLocal, clusterCIDRFor(config, lane.family), lane.node);
    const shown = local?.ifLocal ?? 'none';
    if (shown === lane.localTrafficShown) return;
    lane.localTrafficShown = shown;
    const mode = config.detectLocal.mode;
    if (local !== undefined) {
      this.logger.info({ detectLocalMode: mode, ipFamily: lane.family, podTraffic: local.ifLocal }, 'local traffic detection');
      return;
    }
    const why = mode === 'NodeCIDR' ? `the Node has no ${lane.family} podCIDR (yet)` : `no ${lane.family} clusterCIDR is set`;
    this.logger.warn(
      { detectLocalMode: mode, ipFamily: lane.family },
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
    const log = this.logger.child({ component: 'sync', ipFamily: report.family });
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
        family: report.family, kind: report.kind, result: 'failed', durationSeconds: report.totalSeconds, finishedAtSeconds, phases,
        ...(writes !== undefined ? { payload: { bytes: writes.bytes, lines: writes.lines } } : {}),
      });
      log.error({ ...common, error: report.message, failedLine: report.failedLine }, 'iptables-restore failed; the next sync is a full resync');
      return;
    }
    this.metrics.observeSync({
      family: report.family,
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
      this.metrics.observeNetworkProgramming(Math.max(0, Date.now() - trigger.getTime()) / 1000, report.family);
    }
    if (report.result === 'applied') log.info({ ...common, servicePorts: report.state.servicePorts.size, conntrackDeletionsQueued: report.conntrackDeletions }, 'sync applied');
    else log.debug(common, 'sync: nothing to change');
  }

  /** Objects skipped by any family's model, each once (an invalid Service is skipped by both). */
  private reportSkipped(perLane: readonly (readonly Skipped[])[]): void {
    if (perLane.length === this.lanesSkipped.length && perLane.every((skipped, index) => skipped === this.lanesSkipped[index])) return;
    this.lanesSkipped = perLane;
    const seen = new Set<string>();
    const skipped = perLane.flat().filter((entry) => {
      const key = `${entry.kind}/${entry.namespace}/${entry.name}/${entry.reason}/${entry.detail}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
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

  /** One healthCheckNodePort server per Service, whatever its families: its local endpoints are
   * the most any family's port has. */
  private async syncServiceHealth(): Promise<void> {
    const wanted = new Map<string, ServiceHealthEntry>();
    for (const lane of this.lanes) {
      if (lane.lastState === undefined) continue;
      for (const [key, entry] of serviceHealthEntries(lane.lastState)) {
        const previous = wanted.get(key);
        if (previous === undefined || entry.localEndpoints > previous.localEndpoints) wanted.set(key, entry);
      }
    }
    await this.serviceHealth.sync(wanted);
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
