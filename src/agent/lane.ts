// One address family's half of the agent (upstream's metaproxier keeps one proxier per family):
// its model, its proxier and its own sync schedule, so each family is synced, diffed and repaired
// on its own and a failure in one never holds the other back. The agent fans events out to lanes.

import type { Logger } from 'pino';
import type { ConntrackCleanupSink } from './conntrack-cleaner.js';
import type { IPFamily } from '../ip.js';
import { ModelStore } from '../model/store.js';
import type { DesiredState, NodeInfo, Skipped } from '../model/types.js';
import type { Proxier, ProxierFactory, NodeSettings, SyncReport } from './proxier.js';
import { SyncScheduler, type SyncOutcome, type SyncReason, type SyncTrigger } from './scheduler.js';

export interface LaneOptions<Report extends SyncReport> {
  readonly family: IPFamily;
  readonly node: NodeInfo;
  readonly backend: ProxierFactory<Report>;
  readonly conntrackCleanup: ConntrackCleanupSink | undefined;
  readonly settings: (node: NodeInfo) => Omit<NodeSettings, 'node'>;
  readonly minSyncPeriodMs: number;
  readonly syncPeriodMs: number;
  readonly logger: Logger;
  /** Runs one sync of this lane (the agent observes and reports it). */
  readonly run: (lane: FamilyLane<Report>, reason: SyncReason, sync: number) => Promise<SyncOutcome>;
}

export class FamilyLane<Report extends SyncReport = SyncReport> {
  readonly family: IPFamily;
  readonly store: ModelStore;
  readonly proxier: Proxier<Report>;
  readonly scheduler: SyncScheduler;
  node: NodeInfo;
  syncs = 0;
  /** The first sync of this family was applied. */
  applied = false;
  lastReport: Report | undefined;
  /** The state of the last successful sync (healthCheckNodePorts read it). */
  lastState: DesiredState | undefined;
  lastSkipped: readonly Skipped[] = [];
  localTrafficShown: string | undefined;

  constructor(options: LaneOptions<Report>) {
    this.family = options.family;
    this.node = options.node;
    this.store = new ModelStore(options.node, options.family);
    this.proxier = options.backend({
      family: options.family,
      store: this.store,
      conntrackCleanup: options.conntrackCleanup,
      settings: () => ({ ...options.settings(this.node), node: this.node }),
    });
    this.scheduler = new SyncScheduler({
      minSyncPeriodMs: options.minSyncPeriodMs,
      syncPeriodMs: options.syncPeriodMs,
      logger: options.logger.child({ component: 'scheduler', ipFamily: options.family }),
      run: (reason, sync) => options.run(this, reason, sync),
    });
  }

  /** The node as this family sees it changed; true when it did. */
  setNode(next: NodeInfo): boolean {
    this.node = next;
    return this.store.setNode(next);
  }

  request(reason: SyncReason, trigger?: SyncTrigger): void {
    this.scheduler.request(reason, trigger);
  }
}
