// The one comparable view of a node's tables for convergence tests: "this node after a sequence of
// partial syncs holds what a fresh node given one full restore holds".

import type { RuleSet } from '../../src/render/types.js';
import type { FakeNetfilter } from './fake-netfilter.js';

/**
 * The fake's filter and nat tables as text, chains in iptables-save order. In the rule set's shared
 * chains the service rules are sorted (partial syncs insert them in place, so their order depends
 * on history) while the chain's trailer (nat KUBE-SERVICES' jump to KUBE-NODEPORTS) must stay last.
 */
export function normalisedTables(fake: FakeNetfilter, ruleSet: RuleSet): string {
  const trailers = new Map(ruleSet.sharedChains.map((chain) => [`${chain.table} ${chain.name}`, chain.trailer.length]));
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    out.push(`*${table}`);
    for (const chain of fake.chains(table)) {
      const rules = fake.rules(table, chain) ?? [];
      const trailer = trailers.get(`${table} ${chain}`);
      const ordered = trailer === undefined ? rules : [...rules.slice(0, rules.length - trailer).sort(), ...rules.slice(rules.length - trailer)];
      out.push(`:${chain}`, ...ordered.map((rule) => `-A ${chain} ${rule}`));
    }
  }
  return out.join('\n');
}
