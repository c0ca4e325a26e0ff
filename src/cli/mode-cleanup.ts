// Removing one mode's rules: the iptables mode's chains and jumps (nat and filter), the nftables
// mode's `kube-proxy` tables (ip and ip6). `cleanup` removes both; `run` removes the other mode's
// at start, as kube-proxy's platformCleanup does, so switching modes leaves nothing behind.

import type { Netfilter } from '../netfilter/netfilter.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';
import type { Nft } from '../nftables/nft.js';
import { nftFamily } from '../nftables/vocabulary.js';
import { IP_FAMILIES, type IPFamily } from '../ip.js';
import { cleanupPayload } from '../sync/cleanup.js';

export type CleanupOutcome =
  | { readonly ok: true; readonly removed: number }
  /** `unreadable`: the tables could not be read (e.g. no working ip6tables), nothing was tried. */
  | { readonly ok: false; readonly message: string; readonly unreadable?: boolean };

/** Deletes our iptables chains and the jumps into them; `removed` counts chains. */
export async function removeIptablesRules(netfilter: Netfilter): Promise<CleanupOutcome> {
  const saved = new Map<TableName, string>();
  for (const table of TABLES) {
    const result = await netfilter.save(table);
    if (!result.ok) return { ok: false, message: `cannot read the ${table} table: ${result.message}`, unreadable: true };
    saved.set(table, result.text);
  }
  const payload = cleanupPayload(saved);
  if (payload === '') return { ok: true, removed: 0 };
  const restored = await netfilter.restore(payload, { noFlush: true });
  if (!restored.ok) return { ok: false, message: `iptables-restore failed: ${restored.message}` };
  return { ok: true, removed: payload.split('\n').filter((line) => line.startsWith('-X ')).length };
}

export interface FamilyCleanup {
  readonly family: IPFamily;
  readonly outcome: CleanupOutcome;
}

/**
 * Both families' iptables rules (iptables, then ip6tables). An IPv6 side that cannot even be read
 * (no working ip6tables) has nothing to remove and counts as done.
 */
export async function removeIptablesRulesOfFamilies(netfilters: Readonly<Record<IPFamily, Netfilter>>): Promise<FamilyCleanup[]> {
  const results: FamilyCleanup[] = [];
  for (const family of IP_FAMILIES) {
    const outcome = await removeIptablesRules(netfilters[family]);
    results.push({ family, outcome: !outcome.ok && outcome.unreadable === true && family === 'IPv6' ? { ok: true, removed: 0 } : outcome });
  }
  return results;
}

/** Deletes the `kube-proxy` table of each family; `removed` counts tables that existed. */
export async function removeNftablesTables(nft: Nft): Promise<CleanupOutcome> {
  let removed = 0;
  for (const family of IP_FAMILIES.map(nftFamily)) {
    // Known absent: nothing to delete (an iptables-mode start asks on every node).
    if ((await nft.tableExists(family)) === false) continue;
    const result = await nft.deleteTable(family);
    if (!result.ok) return { ok: false, message: `nft could not delete table ${family.table} kube-proxy: ${result.message}` };
    removed++;
  }
  return { ok: true, removed };
}
