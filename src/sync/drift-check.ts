// The periodic drift check (issue 12): one iptables-save per table, compared with the RuleSet last
// applied (sync/drift.ts). Runs on the periodic sync only, so the tables are read at most once per
// syncPeriod, never per sync; its repair goes into that sync's restore. Its cost is bounded: where
// a check takes long (a 10k-Service node under load: seconds), the next one waits until the checks
// have used at most a quarter of the wall time since; periodic syncs in between check the canaries.

/** The share of wall time drift checks may take (reading the tables and comparing). */
const CHECK_TIME_SHARE = 0.25;

import type { Netfilter } from '../netfilter/netfilter.js';
import type { RuleSet } from '../render/types.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';
import { checkDrift, DriftMemo, type DriftFinding } from './drift.js';
import type { SyncPlan } from './diff.js';

export type DriftOutcome =
  | { readonly kind: 'checked'; readonly findings: readonly DriftFinding[]; readonly repair: SyncPlan | undefined; readonly seconds: number }
  /** A table could not be read: nothing is known, nothing repaired (the next check tries again). */
  | { readonly kind: 'unread'; readonly message: string; readonly seconds: number }
  /** Not this time: the last check was expensive (CHECK_TIME_SHARE); the canaries are checked instead. */
  | { readonly kind: 'deferred'; readonly dueInMs: number; readonly seconds: 0 };

export class DriftChecker {
  private readonly memo = new DriftMemo();
  /** When the next check may run (monotonic ms). */
  private notBefore = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly netfilter: Netfilter,
    private readonly monotonic: () => number = () => performance.now(),
  ) {}

  async check(applied: RuleSet): Promise<DriftOutcome> {
    const started = this.monotonic();
    if (started < this.notBefore) return { kind: 'deferred', dueInMs: Math.ceil(this.notBefore - started), seconds: 0 };
    const outcome = await this.read(applied, started);
    const elapsed = this.monotonic() - started;
    this.notBefore = started + elapsed / CHECK_TIME_SHARE;
    return outcome;
  }

  private async read(applied: RuleSet, started: number): Promise<DriftOutcome> {
    const saved = new Map<TableName, string>();
    for (const table of TABLES) {
      const result = await this.netfilter.save(table);
      if (!result.ok) return { kind: 'unread', message: `iptables-save -t ${table}: ${result.message}`, seconds: (this.monotonic() - started) / 1000 };
      saved.set(table, result.text);
    }
    const result = checkDrift(applied, saved, this.memo);
    return { kind: 'checked', findings: result.findings, repair: result.repair, seconds: (this.monotonic() - started) / 1000 };
  }
}
