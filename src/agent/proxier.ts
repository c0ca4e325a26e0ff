// The seam between the agent and a data-plane backend. The agent owns the model, the schedule,
// health, metrics and the servers; a Proxier turns a snapshot of the model (one address family)
// into kernel state and reports what it did as plain values. Today's backend is iptables
// (sync/iptables-proxier.ts); an nftables one implements the same interface. Backend-neutral:
// no iptables types here.

import type { AgentConfig } from '../config/index.js';
import type { IPFamily } from '../ip.js';
import type { ModelStore } from '../model/store.js';
import type { DesiredState, NodeInfo, Skipped } from '../model/types.js';
import type { SyncReason } from './scheduler.js';
import type { ConntrackCleanupSink } from './conntrack-cleaner.js';

/** What the agent found the kernel and tools on this node can do (kube-proxy probes the same). */
export interface NodeCapabilities {
  /** The nfacct counter for the conntrack-INVALID drop rule, when nfacct works here. */
  readonly invalidDropCounter?: string;
  /** The nfacct counter for NodePort packets to 127.0.0.0/8, when nfacct works here. */
  readonly localhostNodePortsCounter?: string;
  /** Whether NodePorts answer on 127.0.0.1 (localhost-node-ports.ts: the setting, nodePortAddresses
   * and route_localnet). undefined: not probed yet, the configuration decides. */
  readonly localhostNodePorts?: boolean;
}

/** Everything node-wide a backend's rules depend on, as of now (the Node object and probes change it). */
export interface NodeSettings {
  readonly config: AgentConfig;
  readonly node: NodeInfo;
  readonly capabilities: NodeCapabilities;
  /** The cluster's ServiceCIDRs, both families, sorted (watched in nftables mode only; upstream's
   * iptables mode does not use them). */
  readonly serviceCIDRs?: readonly string[];
}

/** What the agent hands a backend when it creates one. */
export interface ProxierInputs {
  readonly family: IPFamily;
  readonly store: ModelStore;
  readonly settings: () => NodeSettings;
  /** Where a sync hands its stale-UDP conntrack deletions (run beside the syncs); undefined = none. */
  readonly conntrackCleanup: ConntrackCleanupSink | undefined;
}

/** How the kernel differed from what a backend had applied (iptables: sync/drift.ts). */
export type DriftKind =
  | 'table-flushed'
  | 'chain-missing'
  | 'chain-flushed'
  | 'rule-missing'
  | 'rule-extra'
  | 'rule-changed'
  | 'rules-reordered'
  | 'jump-missing';

export const DRIFT_KINDS: readonly DriftKind[] = [
  'table-flushed', 'chain-missing', 'chain-flushed', 'rule-missing', 'rule-extra', 'rule-changed', 'rules-reordered', 'jump-missing',
];

/** One thing found to differ; `chain` is the built-in chain for a missing jump, '*' for a flushed table. */
export interface DriftFinding {
  readonly table: string;
  readonly chain: string;
  readonly kind: DriftKind;
}

/** The periodic check of the kernel against what the backend applied, when a sync ran one. */
export type DriftCheck =
  | { readonly kind: 'checked'; readonly findings: readonly DriftFinding[]; readonly seconds: number }
  /** The tables could not be read: nothing is known, nothing repaired. */
  | { readonly kind: 'unread'; readonly message: string; readonly seconds: number }
  /** Not this time: checks are kept to a share of the wall time (a cheaper check ran instead). */
  | { readonly kind: 'deferred'; readonly dueInMs: number; readonly seconds: 0 };

export type FullSyncReason = 'first' | 'periodic' | 'after-failure' | 'canary-missing' | 'context-changed';

export interface SyncPhases {
  readonly modelSeconds: number;
  readonly renderSeconds: number;
  readonly diffSeconds: number;
  readonly restoreSeconds: number;
}

/** What one sync wrote, in the words metrics and logs use (`table` is the backend's own word). */
export interface SyncWrites {
  readonly bytes: number;
  readonly lines: number;
  readonly chainsWritten: number;
  readonly chainsDeleted: number;
  /** The first chains the sync touched, capped. */
  readonly changedChainNames: readonly string[];
  /** Rules written per table. */
  readonly rulesWritten: Readonly<Record<string, number>>;
}

interface SyncReportBase {
  /** The family whose rules this proxier syncs. */
  readonly family: IPFamily;
  readonly kind: 'full' | 'partial';
  readonly reason: SyncReason;
  readonly fullReason: FullSyncReason | undefined;
  readonly phases: SyncPhases;
  readonly totalSeconds: number;
  /** undefined when nothing was planned (the sync failed before). */
  readonly writes: SyncWrites | undefined;
  /** The periodic drift check this sync ran (its repair went into this sync's restore). */
  readonly drift?: DriftCheck | undefined;
}

export type SyncReport =
  | (SyncReportBase & {
      readonly result: 'applied' | 'unchanged';
      readonly state: DesiredState;
      readonly triggerTimes: readonly Date[];
      /** Objects (or parts) the model could not use; same array identity while unchanged. */
      readonly skipped: readonly Skipped[];
      /** Rules the backend owns per table once the sync succeeded. */
      readonly rulesTotal: Readonly<Record<string, number>>;
      /** Stale-UDP conntrack filters this sync queued. */
      readonly conntrackDeletions: number;
    })
  | (SyncReportBase & {
      readonly result: 'failed';
      readonly message: string;
      /** The payload line the kernel tool named, when it did. */
      readonly failedLine: string | undefined;
    });

/** A data-plane backend for one address family. Never throws from `sync`: failures are reports. */
export interface Proxier<Report extends SyncReport = SyncReport> {
  sync(reason: SyncReason): Promise<Report>;
  /** Forces the next sync to be full (e.g. the settings changed under it). */
  requestFull(reason: FullSyncReason): void;
}

export type ProxierFactory<Report extends SyncReport = SyncReport> = (inputs: ProxierInputs) => Proxier<Report>;
