// What a full sync needs to know about the kernel (sync/diff.ts ObservedTables), read with
// iptables-save: our chains that exist (stale ones get deleted), desired jumps that are missing,
// built-in rules into our chains that no desired jump matches, and which ensured chains exist.

import type { Netfilter } from '../netfilter/netfilter.js';
import type { RuleSet } from '../render/types.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';
import type { ObservedTables } from './diff.js';
import { parseSavedTables } from './saved-tables.js';

export async function readTables(netfilter: Netfilter, ruleSet: RuleSet): Promise<Required<ObservedTables>> {
  const existingChains = new Map<TableName, ReadonlySet<string>>();
  const missingJumps: RuleSet['jumps'][number][] = [];
  const staleJumps: RuleSet['jumps'][number][] = [];
  const presentEnsuredChains = new Map<TableName, ReadonlySet<string>>();
  for (const table of TABLES) {
    const jumps = ruleSet.jumps.filter((jump) => jump.table === table);
    const ensured = new Set(ruleSet.ensuredChains.filter((chain) => chain.table === table).map((chain) => chain.name));
    const saved = await netfilter.save(table);
    if (!saved.ok) {
      // Without the kernel's view we cannot delete stale chains, but we still write ours fully
      // and insert every jump we could not confirm (restore tolerates duplicates; the next
      // full sync cleans up).
      existingChains.set(table, new Set());
      missingJumps.push(...jumps);
      continue;
    }
    const state = parseSavedTables(saved.text, jumps, ensured);
    existingChains.set(table, state.ourChains);
    presentEnsuredChains.set(table, state.presentEnsured);
    missingJumps.push(...state.missingJumps);
    staleJumps.push(...state.staleJumps);
  }
  return { existingChains, missingJumps, staleJumps, presentEnsuredChains };
}
