// The nftables backend behind the agent's Proxier seam. One sync: snapshot the model, render the
// nft ruleset, plan (full: chunked transactions; partial: one transaction of what changed, from
// what we applied, never from a listing), apply, then clean stale UDP flows (shared with the
// iptables mode). Stale service chains are flushed at once and deleted later, in the background:
// each chain at least a second after it went stale, as upstream (a kernel before 6.2 notices late
// that a map no longer points at them), and all together once the oldest has waited ten times as
// long as the last deletion took — nft 1.0.6 dumps every chain of the family before any
// `delete chain` (4.4 s at 10k Services, docs/nftables.md), so at scale deletions are batched.
// Affinity sets nothing names any more wait with them (`delete set` costs the same cache fill).
// The deletion runs beside the syncs, never ahead of a change: a sync waits for it only when it
// re-creates a chain or set being deleted, when it is a full sync, or when the deletion has run longer
// than `staleChainPatienceMs` (nft restarts its dump whenever another transaction commits, so
// under constant churn it would never finish on its own).
// Periodic syncs check every rule of the table against what was applied (drift-check.ts, read
// outside the syncs) and rewrite a chain someone else changed in the next sync's transaction.

import type { SyncReason } from '../agent/scheduler.js';
import type { DriftCheck, DriftFinding, FullSyncReason, Proxier, ProxierFactory, SyncPhases, SyncReport, SyncWrites } from '../agent/proxier.js';
import { planConntrackCleanup } from '../conntrack/plan.js';
import type { ConntrackCleanupSink } from '../agent/conntrack-cleaner.js';
import type { IPFamily } from '../ip.js';
import { deepEqual } from '../model/equal.js';
import type { ModelStore } from '../model/store.js';
import type { DesiredState } from '../model/types.js';
import { interfaceAddresses } from '../agent/interface-addresses.js';
import { nftContextFor } from './context.js';
import { planFullSync, planPartialSync, staticPartEqual, type NftPlan } from './diff.js';
import { NftDriftChecker } from './drift-check.js';
import { ElementIndex } from './elements.js';
import type { Nft, NftResult } from './nft.js';
import { NftRenderCache, renderNftRuleset } from './render.js';
import { NftWriter } from './transaction.js';
import type { NftContext, NftRuleset } from './types.js';
import { KUBE_PROXY_TABLE, nftFamily, type NftFamily } from './vocabulary.js';

export type NftablesSyncReport =
  | (Extract<SyncReport, { readonly result: 'applied' | 'unchanged' }> & { readonly plan: NftPlan | undefined; readonly ruleset: NftRuleset })
  | (Extract<SyncReport, { readonly result: 'failed' }> & { readonly plan: NftPlan | undefined });

export interface NftablesProxierOptions {
  readonly family: IPFamily;
  readonly store: ModelStore;
  readonly nft: Nft;
  /** Receives the stale-UDP conntrack deletions of every applied sync (shared with the iptables mode). */
  readonly conntrackCleanup: ConntrackCleanupSink | undefined;
  readonly context: () => NftContext;
  readonly fullSyncPeriodMs: number;
  /** Service chains per transaction of a full sync. */
  readonly chainsPerTransaction: number;
  /** How long a flushed stale chain waits at least before it is deleted (default 1 s). */
  readonly staleChainDelayMs?: number;
  /** Stale chains are deleted together once the oldest has waited this long (default: 10x the last deletion's duration). */
  readonly staleChainBatchMs?: number;
  /** Containers left with at most this many elements are rewritten rather than deleted from (diff.ts). */
  readonly rewriteMaxElements?: number;
  /** A sync waits for a stale-chain deletion that has run this long (default 15 s). */
  readonly staleChainPatienceMs?: number;
  readonly now?: () => number;
  readonly monotonic?: () => number;
}

export interface NftablesBackendOptions {
  readonly nft: Nft;
  /** Reads the node's interface addresses at each sync (nodePortAddresses CIDRs choose among them). */
  readonly interfaceAddresses?: () => readonly string[];
  readonly fullSyncPeriodMs?: number;
  readonly chainsPerTransaction?: number;
}

export const DEFAULT_CHAINS_PER_TRANSACTION = 2000;
/** The default batch wait is this many times the last stale-chain deletion's duration. */
export const STALE_CHAIN_BATCH_FACTOR = 10;
/** A stale-chain deletion running this long is waited for by the next sync (its dump restarts at every commit). */
export const STALE_CHAIN_PATIENCE_MS = 15_000;

/** A stale-chain deletion under way beside the syncs. */
interface StaleDeletion {
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
  /** When it began, by `now`. */
  readonly since: number;
  readonly done: Promise<void>;
}

export function nftablesBackend(options: NftablesBackendOptions): ProxierFactory<NftablesSyncReport> {
  return ({ family, store, settings, conntrackCleanup }) =>
    new NftablesProxier({
      family,
      store,
      nft: options.nft,
      conntrackCleanup,
      context: () => {
        const { config, node, serviceCIDRs } = settings();
        return nftContextFor(config, node, family, {
          ...(serviceCIDRs !== undefined ? { serviceCIDRs } : {}),
          ...(config.nodePortAddresses.kind === 'cidrs' ? { interfaceAddresses: (options.interfaceAddresses ?? interfaceAddresses)() } : {}),
        });
      },
      fullSyncPeriodMs: options.fullSyncPeriodMs ?? 60 * 60 * 1000,
      chainsPerTransaction: options.chainsPerTransaction ?? DEFAULT_CHAINS_PER_TRANSACTION,
    });
}

export class NftablesProxier implements Proxier<NftablesSyncReport> {
  private applied: NftRuleset | undefined;
  private appliedState: DesiredState | undefined;
  private elements = new ElementIndex();
  /** Flushed service chains and when they went stale. */
  private readonly staleChains = new Map<string, number>();
  /** Affinity sets nothing names any more (left in place, not flushed) and when they went stale. */
  private readonly staleSets = new Map<string, number>();
  /** How long the last stale-chain deletion took (ms, by `now`). */
  private lastStaleDeletionMs = 0;
  private deletion: StaleDeletion | undefined;
  private forceFull: FullSyncReason | undefined = 'first';
  private baseChainsRecreated = false;
  private lastFullSyncAt = Number.NEGATIVE_INFINITY;
  private lastContext: NftContext | undefined;
  private cache = new NftRenderCache();
  private readonly now: () => number;
  private readonly monotonic: () => number;
  private readonly drift: NftDriftChecker;
  /** Goes up whenever a transaction was applied: a drift read older than that is discarded. */
  private generation = 0;

  constructor(private readonly options: NftablesProxierOptions) {
    this.now = options.now ?? Date.now;
    this.monotonic = options.monotonic ?? (() => performance.now());
    this.drift = new NftDriftChecker(options.nft, nftFamily(options.family), this.monotonic);
  }

  /** Resolves once the drift check's read under way (if any) has finished. */
  driftReadSettled(): Promise<void> {
    return this.drift.readSettled();
  }

  /** Chains flushed and waiting to be deleted (or being deleted). */
  get pendingStaleChains(): readonly string[] {
    return [...this.staleChains.keys()];
  }

  /** Affinity sets waiting to be deleted (or being deleted). */
  get pendingStaleSets(): readonly string[] {
    return [...this.staleSets.keys()];
  }

  /** Resolves once the stale-chain deletion under way (if any) has finished; for tests and shutdown. */
  async staleDeletionSettled(): Promise<void> {
    await this.deletion?.done;
  }

  requestFull(reason: FullSyncReason): void {
    this.forceFull ??= reason;
  }

  async sync(reason: SyncReason): Promise<NftablesSyncReport> {
    const started = this.monotonic();
    const family = nftFamily(this.options.family);
    const context = this.options.context();
    if (this.lastContext !== undefined && !deepEqual(this.lastContext, context)) {
      this.cache = new NftRenderCache();
      this.requestFull('context-changed');
    }
    this.lastContext = context;
    let drift: DriftCheck | undefined;
    if (reason === 'periodic' && this.now() - this.lastFullSyncAt >= this.options.fullSyncPeriodMs) this.requestFull('periodic');
    if (this.forceFull === undefined && this.applied !== undefined) {
      // A finished read of the table (begun after a periodic sync): every rule against what was
      // applied. A periodic sync that compared none checks the (cheap) canary, so a deleted table
      // is rebuilt at once.
      drift = this.drift.take(this.generation);
      if (reason === 'periodic' && drift?.kind !== 'checked' && (await this.options.nft.tablePresent(family)) !== true) this.requestFull('canary-missing');
      // A whole table or chain gone: maps and jumps point at it, only a full sync rebuilds that.
      if (drift?.kind === 'checked' && drift.findings.some((finding) => finding.kind === 'table-flushed' || finding.kind === 'chain-missing')) {
        this.requestFull('canary-missing');
      }
    }

    const modelStart = this.monotonic();
    const snapshot = this.options.store.snapshot();
    const renderStart = this.monotonic();
    const ruleset = renderNftRuleset(snapshot.state, context, this.cache);
    const diffStart = this.monotonic();
    if (this.applied !== undefined && this.forceFull === undefined && !staticPartEqual(this.applied, ruleset)) this.requestFull('context-changed');
    const fullReason = this.applied === undefined ? (this.forceFull ?? 'after-failure') : this.forceFull;
    const kind: 'full' | 'partial' = fullReason !== undefined ? 'full' : 'partial';

    let failed: { message: string; failedLine: string | undefined } | undefined;
    let plan: NftPlan;
    if (kind === 'full' || this.applied === undefined) {
      // A full sync lists and flushes what is stale itself: no deletion may run beside it.
      await this.staleDeletionSettled();
      const observed = await this.options.nft.observe(family);
      plan = planFullSync(ruleset, observed, { recreateBaseChains: !this.baseChainsRecreated, chainsPerTransaction: this.options.chainsPerTransaction });
    } else {
      const applied = this.applied;
      const planPartial = (): NftPlan =>
        planPartialSync(applied, ruleset, this.elements, {
          pendingStaleSets: this.staleSets,
          ...(this.options.rewriteMaxElements !== undefined ? { rewriteMaxElements: this.options.rewriteMaxElements } : {}),
        });
      plan = planPartial();
      if (this.mustWaitForDeletion(plan)) {
        await this.staleDeletionSettled();
        // The deletion may have removed a set the plan thought was still there.
        plan = planPartial();
      }
    }
    // The repair of drifted chains goes first in this sync's (first) transaction: each chain as applied.
    const repair = kind === 'partial' && drift?.kind === 'checked' && this.applied !== undefined ? repairLines(this.applied, drift.findings) : [];
    const transactions = withRepair(plan, repair);
    const applyStart = this.monotonic();
    const phasesUntil = (end: number): SyncPhases => ({
      modelSeconds: (renderStart - modelStart) / 1000,
      renderSeconds: (diffStart - renderStart) / 1000,
      diffSeconds: (applyStart - diffStart) / 1000,
      restoreSeconds: (end - applyStart) / 1000,
    });

    // A full plan writes each transaction's text here, as it is reached (counted as restore time).
    let applied = 0;
    for (const transaction of transactions) {
      applied++;
      this.generation++;
      const result: NftResult = await this.options.nft.apply(transaction);
      if (!result.ok) {
        failed = { message: result.message, failedLine: result.line !== undefined ? transaction[result.line - 1] : undefined };
        break;
      }
    }
    const applyEnd = this.monotonic();
    if (failed !== undefined) {
      // Forget what was applied: the next sync is full and starts from the kernel's names.
      this.applied = undefined;
      this.forceFull = 'after-failure';
      this.staleChains.clear();
      this.staleSets.clear();
      return {
        result: 'failed', family: this.options.family, kind, reason, fullReason, phases: phasesUntil(applyEnd), totalSeconds: (applyEnd - started) / 1000,
        message: failed.message, failedLine: failed.failedLine, plan, writes: writesOf(plan), drift,
      };
    }

    if (plan.kind === 'full') {
      this.elements = plan.elements;
      this.baseChainsRecreated = true;
      this.lastFullSyncAt = this.now();
    } else {
      plan.elementChanges?.commit();
    }
    for (const name of plan.writtenChains) this.staleChains.delete(name);
    for (const name of plan.writtenSets) this.staleSets.delete(name);
    // A full sync deleted every affinity set it found unwanted.
    if (plan.kind === 'full') this.staleSets.clear();
    const at = this.now();
    for (const name of plan.staleChains) if (!this.staleChains.has(name)) this.staleChains.set(name, at);
    for (const name of plan.staleSets) if (!this.staleSets.has(name)) this.staleSets.set(name, at);
    const previousState = this.appliedState;
    this.applied = ruleset;
    this.appliedState = snapshot.state;
    this.forceFull = undefined;

    // After this sync's own transaction and beside the next ones, so no change waits for nft's cache fill.
    this.startStaleChainDeletion(family);
    // The drift read begins once this sync has written everything it will (a later write discards it).
    if (reason === 'periodic' && kind === 'partial') {
      const deferred = this.drift.start(ruleset, this.generation);
      drift ??= deferred;
    }

    let conntrackDeletions = 0;
    if (plan.transactionCount > 0 && this.options.conntrackCleanup !== undefined) {
      const deletions = planConntrackCleanup(previousState, snapshot.state);
      conntrackDeletions = deletions.length;
      this.options.conntrackCleanup.enqueue(deletions);
    }
    const end = this.monotonic();
    return {
      result: applied === 0 ? 'unchanged' : 'applied', family: this.options.family, kind, reason, fullReason, phases: phasesUntil(applyEnd),
      totalSeconds: (end - started) / 1000, plan, writes: writesOf(plan), state: snapshot.state, ruleset, rulesTotal: { [KUBE_PROXY_TABLE]: countRules(ruleset) },
      triggerTimes: snapshot.triggerTimes, skipped: snapshot.skipped, conntrackDeletions, drift,
    };
  }

  /**
   * Whether a sync must let the deletion under way finish before it applies: when it re-creates a
   * chain being deleted (whichever commits first, the other would undo it or fail), or when the
   * deletion has run past its patience (each commit of ours restarts nft's dump).
   */
  private mustWaitForDeletion(plan: NftPlan): boolean {
    const deletion = this.deletion;
    if (deletion === undefined) return false;
    if (this.now() - deletion.since >= (this.options.staleChainPatienceMs ?? STALE_CHAIN_PATIENCE_MS)) return true;
    return plan.writtenChains.some((name) => deletion.chains.has(name)) || plan.writtenSets.some((name) => deletion.sets.has(name));
  }

  /**
   * Once the oldest stale chain has waited the batch time, begins deleting every chain that went
   * stale at least `staleChainDelayMs` ago, in a transaction of its own (upstream), unless a
   * deletion is under way. Not awaited: the syncs go on beside it. A failed deletion (a chain
   * someone removed or still points at) is not worth a failed sync: the next sync is full and
   * lists and flushes what is stale again.
   */
  private startStaleChainDeletion(family: NftFamily): void {
    if (this.deletion !== undefined) return;
    const now = this.now();
    const delay = this.options.staleChainDelayMs ?? 1000;
    const batch = this.options.staleChainBatchMs ?? Math.max(delay, STALE_CHAIN_BATCH_FACTOR * this.lastStaleDeletionMs);
    const oldest = Math.min(oldestSince(this.staleChains), oldestSince(this.staleSets));
    if (!(oldest <= now - batch)) return;
    const cutoff = now - delay;
    const dueOf = (stale: ReadonlyMap<string, number>): string[] => [...stale].filter(([, since]) => since <= cutoff).map(([name]) => name);
    const due = dueOf(this.staleChains);
    const dueSets = dueOf(this.staleSets);
    if (due.length === 0 && dueSets.length === 0) return;
    // Chains first: a flushed chain no longer names a set, and nothing else did.
    const writer = new NftWriter(family);
    for (const name of due) writer.deleteChain(name);
    for (const name of dueSets) writer.deleteContainer({ kind: 'set', name });
    const run = async (): Promise<void> => {
      const result = await this.options.nft.apply(writer.lines).catch((error: unknown): NftResult => ({ ok: false, message: String(error), line: undefined }));
      this.lastStaleDeletionMs = Math.max(0, this.now() - now);
      if (result.ok) {
        for (const name of due) this.staleChains.delete(name);
        for (const name of dueSets) this.staleSets.delete(name);
      } else {
        this.staleChains.clear();
        this.staleSets.clear();
        this.requestFull('after-failure');
      }
      this.deletion = undefined;
    };
    this.deletion = { chains: new Set(due), sets: new Set(dueSets), since: now, done: run() };
  }
}

/** The plan's transactions, the repair lines (if any) at the head of the first. */
function* withRepair(plan: NftPlan, repair: readonly string[]): Generator<readonly string[]> {
  let first = true;
  for (const transaction of plan.transactions()) {
    yield first && repair.length > 0 ? [...repair, ...transaction] : transaction;
    first = false;
  }
  if (first && repair.length > 0) yield repair;
}

/** Flush and rewrite, as applied, each chain a drift finding names. */
function repairLines(applied: NftRuleset, findings: readonly DriftFinding[]): string[] {
  if (findings.length === 0) return [];
  const drifted = new Set(findings.map((finding) => finding.chain));
  const writer = new NftWriter(applied.family);
  const chains = [...applied.staticChains, ...[...applied.servicePorts.values()].flatMap((part) => part.chains)];
  for (const chain of chains) {
    if (!drifted.has(chain.name)) continue;
    writer.flushChain(chain.name);
    writer.addRules(chain);
  }
  return writer.lines;
}

function writesOf(plan: NftPlan): SyncWrites {
  const { bytes, lines, chainsWritten, chainsFlushed, changedChainNames, rulesWritten } = plan.stats;
  return { bytes, lines, chainsWritten, chainsDeleted: chainsFlushed, changedChainNames, rulesWritten: { [KUBE_PROXY_TABLE]: rulesWritten } };
}

function countRules(ruleset: NftRuleset): number {
  let total = 0;
  for (const chain of ruleset.staticChains) total += chain.rules.length;
  for (const part of ruleset.servicePorts.values()) for (const chain of part.chains) total += chain.rules.length;
  return total;
}

/**
 * When the longest-waiting stale chain went stale (Infinity when none). A loop, not
 * `Math.min(...values)`: deleting most of 10k Services leaves ~10^5 stale chains, more arguments
 * than a call can spread.
 */
export function oldestSince(staleChains: ReadonlyMap<string, number>): number {
  let oldest = Infinity;
  for (const since of staleChains.values()) if (since < oldest) oldest = since;
  return oldest;
}
