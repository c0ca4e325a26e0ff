// The periodic drift check (issue 12): one iptables-save per table, compared with the RuleSet last
// applied (sync/drift.ts). The tables are read OUTSIDE the sync: a periodic sync that finds a check
// due only starts the read (start) and goes on; at 10k Services iptables-nft-save takes tens of
// seconds, and a Service change must not wait for it. The next sync (periodic or change) takes the
// finished read (take) and compares it with what was applied, but only if nothing was applied since
// the read began (the generation it was started with); otherwise the kernel picture is older than
// what we applied and it is discarded (the next check reads again). The repair goes into that
// sync's restore. So a drift is repaired within two syncPeriods (plus the read). At most one read
// at a time and one per syncPeriod; its cost is bounded: where a check takes long, the next one
// waits until the checks have used at most a quarter of the wall time since (the schedule is
// agent/drift-reads.ts, shared with the nftables mode); periodic syncs without a finished check
// check the canaries.

import type { Netfilter } from '../netfilter/netfilter.js';
import type { RuleSet } from '../render/types.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';
import { DriftReads } from '../agent/drift-reads.js';
import { checkDrift, DriftMemo, type DriftFinding } from './drift.js';
import type { SyncPlan } from './diff.js';

export type DriftOutcome =
  | { readonly kind: 'checked'; readonly findings: readonly DriftFinding[]; readonly repair: SyncPlan | undefined; readonly seconds: number }
  /** A table could not be read: nothing is known, nothing repaired (the next check tries again). */
  | { readonly kind: 'unread'; readonly message: string; readonly seconds: number }
  /** Not this time: the last check was expensive (agent/drift-reads.ts); the canaries are checked instead. */
  | { readonly kind: 'deferred'; readonly dueInMs: number; readonly seconds: 0 };

type ReadResult = { readonly ok: true; readonly saved: ReadonlyMap<TableName, string> } | { readonly ok: false; readonly message: string };

export class DriftChecker {
  private readonly memo = new DriftMemo();
  private readonly reads: DriftReads<RuleSet, ReadResult>;

  constructor(
    private readonly netfilter: Netfilter,
    monotonic: () => number = () => performance.now(),
  ) {
    this.reads = new DriftReads(() => this.saveAll(), monotonic);
  }

  /** The last finished read was older than a restore and thrown away: nothing was compared. */
  get lastReadDiscarded(): boolean {
    return this.reads.lastReadDiscarded;
  }

  /**
   * Starts reading the tables in the background when a check is due and none is under way;
   * `generation` names the applied RuleSet (it changes whenever the kernel was written).
   * Returns 'deferred' when the budget holds the check back, undefined otherwise.
   */
  start(applied: RuleSet, generation: number): Extract<DriftOutcome, { kind: 'deferred' }> | undefined {
    return this.reads.start(applied, generation);
  }

  /**
   * The finished read, compared with what it was started against, if nothing was applied since
   * (`generation` is still the one it began with); undefined when no read has finished or the
   * finished one was discarded.
   */
  take(generation: number): Exclude<DriftOutcome, { kind: 'deferred' }> | undefined {
    const taken = this.reads.take(generation, (applied, result) => (result.ok ? checkDrift(applied, result.saved, this.memo) : result));
    if (taken === undefined) return undefined;
    const { outcome, seconds } = taken;
    return 'ok' in outcome ? { kind: 'unread', message: outcome.message, seconds } : { kind: 'checked', findings: outcome.findings, repair: outcome.repair, seconds };
  }

  /** Whether start() would begin a read now (none under way, the budget allows one). */
  due(): boolean {
    return this.reads.due();
  }

  /** Resolves once the read under way (if any) has finished; for tests and shutdown. */
  async readSettled(): Promise<void> {
    await this.reads.readSettled();
  }

  private async saveAll(): Promise<ReadResult> {
    const saved = new Map<TableName, string>();
    try {
      for (const table of TABLES) {
        const result = await this.netfilter.save(table);
        if (!result.ok) return { ok: false, message: `iptables-save -t ${table}: ${result.message}` };
        saved.set(table, result.text);
      }
    } catch (error) {
      return { ok: false, message: `iptables-save: ${error instanceof Error ? error.message : String(error)}` };
    }
    return { ok: true, saved };
  }
}
