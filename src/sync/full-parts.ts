// A full sync split into several iptables-restore calls, for the nft backend. iptables-nft-restore
// 1.8.9 under --noflush spends time per rule in proportion to the chains the same call declares,
// so one payload with 110k chains (10k Services x 10 endpoints) takes ~13 minutes, while the same
// rules in parts of ~1,000 chains take ~15 s in all (bench/compare). Order keeps every step
// consistent: static chains first (service chains jump to KUBE-MARK-MASQ), then each service
// port's own chains written whole in one part, then the usual full payload without those chains
// (shared dispatch chains, jumps, stale chains deleted last). Until the last part, traffic follows
// the dispatch chains the kernel already had. Pure.

import type { OrderedChain, RuleSet } from '../render/types.js';
import { jumpTarget, TABLES, type TableName } from '../netfilter/vocabulary.js';
import { buildFullPayload, PayloadBuilder, sortedServicePortKeys, type BuiltPayload, type FullPayloadOptions, type SyncStats } from './payload.js';

/** Chains per part that keeps iptables-nft-restore near its per-call floor (measured at 10k Services). */
export const DEFAULT_CHAINS_PER_PART = 1000;

/** Whether every KUBE- chain these rules jump to is in `available`. */
function jumpsStayWithin(chains: readonly OrderedChain[], available: ReadonlySet<string>): boolean {
  for (const chain of chains) {
    for (const rule of chain.rules) {
      if (!rule.includes('KUBE-')) continue;
      const target = jumpTarget(rule);
      if (target?.startsWith('KUBE-') === true && !available.has(target)) return false;
    }
  }
  return true;
}

/**
 * The full payload as parts, or undefined when one payload is as good (few chains) or the rule
 * set does not split safely (a static chain or a service port jumping outside what is already written).
 */
export function buildFullPayloadParts(ruleSet: RuleSet, options: FullPayloadOptions, chainsPerPart: number): BuiltPayload[] | undefined {
  let servicePortChains = 0;
  ruleSet.servicePorts.forEach((rules) => (servicePortChains += rules.chains.length));
  if (chainsPerPart <= 0 || servicePortChains <= chainsPerPart) return undefined;

  const staticNames = new Set(ruleSet.staticChains.map((chain) => chain.name));
  if (!jumpsStayWithin(ruleSet.staticChains, staticNames)) return undefined;

  const parts: BuiltPayload[] = [];
  const first = new PayloadBuilder();
  for (const chain of ruleSet.staticChains) first.writeChain(chain.table, chain.name, chain.rules);
  parts.push(first.build());

  let builder = new PayloadBuilder();
  let inPart = 0;
  for (const key of sortedServicePortKeys(ruleSet)) {
    const servicePort = ruleSet.servicePorts.get(key);
    if (servicePort === undefined) continue;
    const available = new Set(staticNames);
    for (const chain of servicePort.chains) available.add(chain.name);
    if (!jumpsStayWithin(servicePort.chains, available)) return undefined;
    for (const chain of servicePort.chains) builder.writeChain(chain.table, chain.name, chain.rules);
    inPart += servicePort.chains.length;
    if (inPart >= chainsPerPart) {
      parts.push(builder.build());
      builder = new PayloadBuilder();
      inPart = 0;
    }
  }
  if (inPart > 0) parts.push(builder.build());
  parts.push(buildFullPayload(ruleSet, { ...options, servicePortChains: false }));
  return parts.filter((part) => part.payload !== '');
}

/** Stats of parts applied one after the other, as one sync. */
export function combineStats(parts: readonly BuiltPayload[]): SyncStats {
  let bytes = 0;
  let lines = 0;
  let chainsWritten = 0;
  let chainsDeleted = 0;
  let sharedRulesAdded = 0;
  let sharedRulesDeleted = 0;
  let changedChainCount = 0;
  const changedChainNames: string[] = [];
  const rulesWritten: Record<TableName, number> = { filter: 0, nat: 0 };
  for (const { stats } of parts) {
    for (const table of TABLES) rulesWritten[table] += stats.rulesWritten[table];
    bytes += stats.bytes;
    lines += stats.lines;
    chainsWritten += stats.chainsWritten;
    chainsDeleted += stats.chainsDeleted;
    sharedRulesAdded += stats.sharedRulesAdded;
    sharedRulesDeleted += stats.sharedRulesDeleted;
    changedChainCount += stats.changedChainCount;
    for (const name of stats.changedChainNames) if (changedChainNames.length < 50) changedChainNames.push(name);
  }
  return { bytes, lines, chainsWritten, chainsDeleted, sharedRulesAdded, sharedRulesDeleted, changedChainNames, changedChainCount, rulesWritten };
}
