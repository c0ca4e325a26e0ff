// The periodic drift check (issue 12): one iptables-save per table, compared with the RuleSet last
// applied (sync/drift.ts). Runs on the periodic sync only, so the tables are read once per
// syncPeriod, never per sync; its repair goes into that sync's restore.

import type { Netfilter } from '../netfilter/port.js';
import type { RuleSet, TableName } from '../render/types.js';
import { checkDrift, DriftMemo, type DriftFinding } from '../sync/drift.js';
import type { SyncPlan } from '../sync/diff.js';
import { TABLE_ORDER } from '../sync/payload.js';

export type DriftOutcome =
  | { readonly kind: 'checked'; readonly findings: readonly DriftFinding[]; readonly repair: SyncPlan | undefined; readonly seconds: number }
  /** A table could not be read: nothing is known, nothing repaired (the next check tries again). */
  | { readonly kind: 'unread'; readonly message: string; readonly seconds: number };

export class DriftChecker {
  private readonly memo = new DriftMemo();

  constructor(
    private readonly netfilter: Netfilter,
    private readonly monotonic: () => number = () => performance.now(),
  ) {}

  async check(applied: RuleSet): Promise<DriftOutcome> {
    const started = this.monotonic();
    const saved = new Map<TableName, string>();
    for (const table of TABLE_ORDER) {
      const result = await this.netfilter.save(table);
      if (!result.ok) return { kind: 'unread', message: `iptables-save -t ${table}: ${result.message}`, seconds: (this.monotonic() - started) / 1000 };
      saved.set(table, result.text);
    }
    const result = checkDrift(applied, saved, this.memo);
    return { kind: 'checked', findings: result.findings, repair: result.repair, seconds: (this.monotonic() - started) / 1000 };
  }
}
