// The iptables backend behind the agent's Proxier seam. One sync: snapshot the model, render,
// plan (full or partial), restore, then queue the stale UDP flows' deletion (run beside the syncs
// by agent/conntrack-cleaner.ts). Every outcome is a value
// (IptablesSyncReport) that the caller logs and counts; nothing throws.

import type { ModelStore } from '../model/store.js';
import { deepEqual } from '../model/equal.js';
import type { DesiredState } from '../model/types.js';
import { RenderCache, renderRuleSet } from '../render/index.js';
import type { RenderContext, RuleSet } from '../render/types.js';
import { planSync, type SyncPlan } from './diff.js';
import { planConntrackCleanup } from '../conntrack/plan.js';
import type { Netfilter, RestoreResult } from '../netfilter/netfilter.js';
import { kubeProxyCanaryChain, TABLES, type TableName } from '../netfilter/vocabulary.js';
import type { ConntrackCleanupSink } from '../agent/conntrack-cleaner.js';
import { readTables } from './read-tables.js';
import { DriftChecker, type DriftOutcome } from './drift-check.js';
import { prependRepair } from './drift.js';
import type { SyncReason } from '../agent/scheduler.js';
import type { FullSyncReason, Proxier, ProxierFactory, SyncPhases, SyncReport, SyncWrites } from '../agent/proxier.js';
import { renderContextFor } from '../agent/context.js';
import type { IPFamily } from '../ip.js';

/** The neutral report plus what the iptables backend planned (tests and the harness read it). */
export type IptablesSyncReport =
  | (Extract<SyncReport, { readonly result: 'applied' | 'unchanged' }> & { readonly plan: SyncPlan | undefined; readonly ruleSet: RuleSet; readonly drift: DriftOutcome | undefined })
  | (Extract<SyncReport, { readonly result: 'failed' }> & { readonly plan: SyncPlan | undefined; readonly drift: DriftOutcome | undefined });

export interface IptablesProxierOptions {
  /** The family of `store` and of `netfilter`'s binaries (iptables or ip6tables); default IPv4. */
  readonly family?: IPFamily;
  readonly store: ModelStore;
  readonly netfilter: Netfilter;
  /** Receives the stale-UDP conntrack deletions of every applied sync; the sync does not wait for them. */
  readonly conntrackCleanup: ConntrackCleanupSink | undefined;
  readonly renderContext: () => RenderContext;
  /** Full syncs at most this often when nothing else forces one (kube-proxy: 1h since 1.28). */
  readonly fullSyncPeriodMs: number;
  /** > 0: split large full syncs into restores of about this many chains (nft variant; sync/full-parts.ts). */
  readonly fullSyncChainsPerPart?: number;
  readonly now?: () => number;
  readonly monotonic?: () => number;
}

/** What the agent needs to build an iptables proxier; the rest comes from the agent (ProxierInputs). */
export interface IptablesBackendOptions {
  /** The IPv4 rules' door (iptables binaries). */
  readonly netfilter: Netfilter;
  /** The IPv6 rules' door (ip6tables binaries); required for an IPv6 proxier. */
  readonly ipv6Netfilter?: Netfilter;
  /** kube-proxy does a full resync at most hourly since 1.28; every periodic sync checks the canaries. */
  readonly fullSyncPeriodMs?: number;
  readonly fullSyncChainsPerPart?: number;
}

/** The iptables backend as the agent takes it. */
export function iptablesBackend(options: IptablesBackendOptions): ProxierFactory<IptablesSyncReport> {
  return ({ family, store, settings, conntrackCleanup }) => {
    const netfilter = family === 'IPv4' ? options.netfilter : options.ipv6Netfilter;
    if (netfilter === undefined) throw new Error(`iptablesBackend: no ip6tables Netfilter for the ${family} proxier`);
    return new IptablesProxier({
      family,
      store,
      netfilter,
      conntrackCleanup,
      renderContext: () => {
        const { config, node, capabilities } = settings();
        return renderContextFor(config, node, capabilities, family);
      },
      fullSyncPeriodMs: options.fullSyncPeriodMs ?? 60 * 60 * 1000,
      ...(options.fullSyncChainsPerPart !== undefined ? { fullSyncChainsPerPart: options.fullSyncChainsPerPart } : {}),
    });
  };
}

export class IptablesProxier implements Proxier<IptablesSyncReport> {
  private applied: RuleSet | undefined;
  private appliedState: DesiredState | undefined;
  private forceFull: FullSyncReason | undefined = 'first';
  private lastFullSyncAt = Number.NEGATIVE_INFINITY;
  private lastContext: RenderContext | undefined;
  private cache = new RenderCache();
  private readonly now: () => number;
  private readonly monotonic: () => number;
  readonly family: IPFamily;
  private readonly drift: DriftChecker;
  /** Changes whenever a restore ran: a read of the tables begun before it shows an older kernel. */
  private generation = 0;

  constructor(private readonly options: IptablesProxierOptions) {
    this.family = options.family ?? 'IPv4';
    this.now = options.now ?? Date.now;
    this.monotonic = options.monotonic ?? (() => performance.now());
    this.drift = new DriftChecker(options.netfilter, this.monotonic);
  }

  /** Resolves once the drift check's read of the tables under way (if any) has finished. */
  driftReadSettled(): Promise<void> {
    return this.drift.readSettled();
  }

  /** Forces the next sync to be full (e.g. a table was flushed behind our back). */
  requestFull(reason: FullSyncReason): void {
    this.forceFull ??= reason;
  }

  async sync(reason: SyncReason): Promise<IptablesSyncReport> {
    const started = this.monotonic();
    const context = this.options.renderContext();
    if (this.lastContext !== undefined && !deepEqual(this.lastContext, context)) {
      this.cache = new RenderCache();
      this.requestFull('context-changed');
    }
    this.lastContext = context;

    let drift: DriftOutcome | undefined;
    if (reason === 'periodic' && this.now() - this.lastFullSyncAt >= this.options.fullSyncPeriodMs) this.requestFull('periodic');
    if (this.forceFull === undefined && this.applied !== undefined) {
      // A drift check's read of the tables that finished since (begun after a periodic sync, run
      // outside the syncs): every owned chain against what was applied; its repair joins this
      // sync's restore. Discarded when a restore ran since the read began.
      drift = this.drift.take(this.generation);
      // Without a full check this period (none compared now, none to begin after this sync: the
      // budget defers it, the last read failed, was discarded by a restore since, or one is still
      // under way), the canaries. On a node with a change every period every read is discarded, so
      // the canaries are all that catches a flushed table there.
      const fullCheck = drift?.kind === 'checked' || (drift === undefined && !this.drift.lastReadDiscarded && this.drift.due());
      if (reason === 'periodic' && !fullCheck && !(await this.canariesPresent())) this.requestFull('canary-missing');
    }

    const modelStart = this.monotonic();
    const snapshot = this.options.store.snapshot();
    const renderStart = this.monotonic();
    const ruleSet = renderRuleSet(snapshot.state, context, this.cache);
    const diffStart = this.monotonic();

    const fullReason = this.applied === undefined ? (this.forceFull ?? 'after-failure') : this.forceFull;
    const kind: 'full' | 'partial' = fullReason !== undefined ? 'full' : 'partial';
    let plan: SyncPlan;
    if (kind === 'full') {
      const tables = await readTables(this.options.netfilter, ruleSet);
      plan = planSync(undefined, ruleSet, { ...tables, forceFull: true, fullSyncChainsPerPart: this.options.fullSyncChainsPerPart ?? 0 });
    } else {
      plan = planSync(this.applied, ruleSet, { forceFull: false, existingChains: new Map(), missingJumps: [] });
      if (drift?.kind === 'checked') plan = prependRepair(drift.repair, plan);
    }
    const restoreStart = this.monotonic();
    const phasesUntil = (end: number): SyncPhases => ({
      modelSeconds: (renderStart - modelStart) / 1000,
      renderSeconds: (diffStart - renderStart) / 1000,
      diffSeconds: (restoreStart - diffStart) / 1000,
      restoreSeconds: (end - restoreStart) / 1000,
    });

    if (plan.stats.bytes === 0) {
      this.applied = ruleSet;
      this.appliedState = snapshot.state;
      if (reason === 'periodic' && kind === 'partial') drift = this.startDriftRead(drift, ruleSet);
      const end = this.monotonic();
      return {
        result: 'unchanged', family: this.family, kind, reason, fullReason, phases: phasesUntil(end), totalSeconds: (end - started) / 1000,
        plan, writes: writesOf(plan), state: snapshot.state, ruleSet, rulesTotal: countRules(ruleSet),
        triggerTimes: snapshot.triggerTimes, skipped: snapshot.skipped, conntrackDeletions: 0, drift,
      };
    }

    let restored: RestoreResult = { ok: true };
    let failedPart: string | undefined;
    if (plan.parts !== undefined) {
      for (const part of plan.parts) {
        restored = await this.options.netfilter.restore(part, { noFlush: true });
        failedPart = part;
        if (!restored.ok) break;
      }
    } else {
      restored = await this.options.netfilter.restore(plan.chunks, { noFlush: true });
    }
    const restoreEnd = this.monotonic();
    this.generation += 1;
    if (!restored.ok) {
      // Forget what was applied: the next sync is full and rebuilt from the kernel's real state.
      this.applied = undefined;
      this.forceFull = 'after-failure';
      const failedLine = restored.line !== undefined ? (failedPart ?? plan.payload).split('\n')[restored.line - 1] : undefined;
      return {
        result: 'failed', family: this.family, kind, reason, fullReason, phases: phasesUntil(restoreEnd), totalSeconds: (restoreEnd - started) / 1000,
        message: restored.message, failedLine, plan, writes: writesOf(plan), drift,
      };
    }
    const previousState = this.appliedState;
    this.applied = ruleSet;
    this.appliedState = snapshot.state;
    this.forceFull = undefined;
    if (kind === 'full') this.lastFullSyncAt = this.now();
    // The next drift check reads the tables in the background, after this restore.
    if (reason === 'periodic' && kind === 'partial') drift = this.startDriftRead(drift, ruleSet);

    let conntrackDeletions = 0;
    if (this.options.conntrackCleanup !== undefined) {
      const deletions = planConntrackCleanup(previousState, snapshot.state);
      conntrackDeletions = deletions.length;
      this.options.conntrackCleanup.enqueue(deletions);
    }
    const end = this.monotonic();
    return {
      result: 'applied', family: this.family, kind, reason, fullReason, phases: phasesUntil(restoreEnd), totalSeconds: (end - started) / 1000,
      plan, writes: writesOf(plan), state: snapshot.state, ruleSet, rulesTotal: countRules(ruleSet),
      triggerTimes: snapshot.triggerTimes, skipped: snapshot.skipped, conntrackDeletions, drift,
    };
  }

  /** Begins the next drift check's read when one is due; the sync does not wait for it. */
  private startDriftRead(taken: DriftOutcome | undefined, applied: RuleSet): DriftOutcome | undefined {
    const deferred = this.drift.start(applied, this.generation);
    return taken ?? deferred;
  }

  /** Cheap tamper check: the canary chain must exist in every table we own. */
  async canariesPresent(): Promise<boolean> {
    for (const table of TABLES) {
      const exists = await this.options.netfilter.chainExists(table, kubeProxyCanaryChain);
      if (exists !== true) return false;
    }
    return true;
  }
}

function writesOf(plan: SyncPlan): SyncWrites {
  const { bytes, lines, chainsWritten, chainsDeleted, changedChainNames, rulesWritten } = plan.stats;
  return { bytes, lines, chainsWritten, chainsDeleted, changedChainNames, rulesWritten };
}

/** Rules we own per table (kubeproxy_sync_proxy_rules_iptables_total). */
function countRules(ruleSet: RuleSet): Record<TableName, number> {
  const totals: Record<TableName, number> = { filter: 0, nat: 0 };
  for (const chain of ruleSet.staticChains) totals[chain.table] += chain.rules.length;
  for (const chain of ruleSet.sharedChains) totals[chain.table] += chain.trailer.length;
  for (const rules of ruleSet.servicePorts.values()) {
    for (const chain of rules.chains) totals[chain.table] += chain.rules.length;
    for (const shared of rules.sharedRules) totals[shared.table] += 1;
  }
  return totals;
}
