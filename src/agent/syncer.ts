// One sync: snapshot the model, render, plan (full or partial), restore, then clean stale UDP
// flows. Every outcome is a value (SyncReport) that the caller logs and counts; nothing throws.

import type { ModelStore } from '../model/store.js';
import type { DesiredState, Skipped } from '../model/types.js';
import { RenderCache, renderRuleSet } from '../render/index.js';
import type { RenderContext, RuleSet, TableName } from '../render/types.js';
import { planSync, type SyncPlan } from '../sync/diff.js';
import { planConntrackCleanup } from '../sync/conntrack-plan.js';
import type { Netfilter, RestoreResult } from '../netfilter/port.js';
import type { Conntrack } from '../netfilter/conntrack.js';
import { readKernelFacts } from './kernel-facts.js';
import { DriftChecker, type DriftOutcome } from './drift-check.js';
import { prependRepair } from '../sync/drift.js';
import type { SyncReason } from './scheduler.js';

const TABLES: readonly TableName[] = ['filter', 'nat'];
const CANARY = 'KUBE-PROXY-CANARY';

export interface SyncPhases {
  readonly modelSeconds: number;
  readonly renderSeconds: number;
  readonly diffSeconds: number;
  readonly restoreSeconds: number;
}

export type SyncReport =
  | {
      readonly result: 'applied' | 'unchanged';
      readonly kind: 'full' | 'partial';
      readonly reason: SyncReason;
      readonly fullReason: FullSyncReason | undefined;
      readonly phases: SyncPhases;
      readonly totalSeconds: number;
      readonly plan: SyncPlan | undefined;
      readonly state: DesiredState;
      readonly ruleSet: RuleSet;
      readonly triggerTimes: readonly Date[];
      /** Objects (or parts) the model could not use; same array identity while unchanged. */
      readonly skipped: readonly Skipped[];
      readonly conntrackFailures: number;
      /** The periodic drift check this sync ran (its repair went into this sync's restore). */
      readonly drift: DriftOutcome | undefined;
    }
  | {
      readonly result: 'failed';
      readonly kind: 'full' | 'partial';
      readonly reason: SyncReason;
      readonly fullReason: FullSyncReason | undefined;
      readonly phases: SyncPhases;
      readonly totalSeconds: number;
      readonly message: string;
      /** The payload line iptables-restore named, when it did. */
      readonly failedLine: string | undefined;
      readonly plan: SyncPlan | undefined;
      readonly drift: DriftOutcome | undefined;
    };

export type FullSyncReason = 'first' | 'periodic' | 'after-failure' | 'canary-missing' | 'context-changed';

export interface SyncerOptions {
  readonly store: ModelStore;
  readonly netfilter: Netfilter;
  readonly conntrack: Conntrack | undefined;
  readonly renderContext: () => RenderContext;
  /** Full syncs at most this often when nothing else forces one (kube-proxy: 1h since 1.28). */
  readonly fullSyncPeriodMs: number;
  /** > 0: split large full syncs into restores of about this many chains (nft backend; sync/full-parts.ts). */
  readonly fullSyncChainsPerPart?: number;
  readonly now?: () => number;
  readonly monotonic?: () => number;
}

export class Syncer {
  private applied: RuleSet | undefined;
  private appliedState: DesiredState | undefined;
  private forceFull: FullSyncReason | undefined = 'first';
  private lastFullSyncAt = Number.NEGATIVE_INFINITY;
  private lastContext: RenderContext | undefined;
  private cache = new RenderCache();
  private readonly drift: DriftChecker;
  private readonly now: () => number;
  private readonly monotonic: () => number;

  constructor(private readonly options: SyncerOptions) {
    this.now = options.now ?? Date.now;
    this.monotonic = options.monotonic ?? (() => performance.now());
    this.drift = new DriftChecker(options.netfilter, this.monotonic);
  }

  /** The rule set the kernel holds as far as we know (undefined after a failure). */
  get appliedRuleSet(): RuleSet | undefined {
    return this.applied;
  }

  /** Forces the next sync to be full (e.g. a table was flushed behind our back). */
  requestFull(reason: FullSyncReason): void {
    this.forceFull ??= reason;
  }

  async sync(reason: SyncReason): Promise<SyncReport> {
    const started = this.monotonic();
    const context = this.options.renderContext();
    if (this.lastContext !== undefined && !sameContext(this.lastContext, context)) {
      this.cache = new RenderCache();
      this.requestFull('context-changed');
    }
    this.lastContext = context;

    let drift: DriftOutcome | undefined;
    if (reason === 'periodic') {
      if (this.now() - this.lastFullSyncAt >= this.options.fullSyncPeriodMs) this.requestFull('periodic');
      else if (this.forceFull === undefined && this.applied !== undefined) {
        // Every owned chain against what was applied; its repair joins this sync's restore.
        drift = await this.drift.check(this.applied);
        if (drift.kind !== 'checked' && !(await this.canariesPresent())) this.requestFull('canary-missing');
      }
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
      const kernel = await readKernelFacts(this.options.netfilter, ruleSet);
      plan = planSync(undefined, ruleSet, { ...kernel, forceFull: true, fullSyncChainsPerPart: this.options.fullSyncChainsPerPart ?? 0 });
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
      const end = this.monotonic();
      return {
        result: 'unchanged', kind, reason, fullReason, phases: phasesUntil(end), totalSeconds: (end - started) / 1000,
        plan, state: snapshot.state, ruleSet, triggerTimes: snapshot.triggerTimes, skipped: snapshot.skipped, conntrackFailures: 0, drift,
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
    if (!restored.ok) {
      // Forget what was applied: the next sync is full and rebuilt from the kernel's real state.
      this.applied = undefined;
      this.forceFull = 'after-failure';
      const failedLine = restored.line !== undefined ? (failedPart ?? plan.payload).split('\n')[restored.line - 1] : undefined;
      return {
        result: 'failed', kind, reason, fullReason, phases: phasesUntil(restoreEnd), totalSeconds: (restoreEnd - started) / 1000,
        message: restored.message, failedLine, plan, drift,
      };
    }
    const previousState = this.appliedState;
    this.applied = ruleSet;
    this.appliedState = snapshot.state;
    this.forceFull = undefined;
    if (kind === 'full') this.lastFullSyncAt = this.now();

    let conntrackFailures = 0;
    if (this.options.conntrack !== undefined) {
      const deletions = planConntrackCleanup(previousState, snapshot.state);
      if (deletions.length > 0) conntrackFailures = (await this.options.conntrack.delete(deletions)).failed.length;
    }
    const end = this.monotonic();
    return {
      result: 'applied', kind, reason, fullReason, phases: phasesUntil(restoreEnd), totalSeconds: (end - started) / 1000,
      plan, state: snapshot.state, ruleSet, triggerTimes: snapshot.triggerTimes, skipped: snapshot.skipped, conntrackFailures, drift,
    };
  }

  /** Cheap tamper check: the canary chain must exist in every table we own. */
  async canariesPresent(): Promise<boolean> {
    for (const table of TABLES) {
      const exists = await this.options.netfilter.chainExists(table, CANARY);
      if (exists !== true) return false;
    }
    return true;
  }
}

function sameContext(a: RenderContext, b: RenderContext): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
