// Helpers for the nftables unit tests: upstream's test context and a normal form of a transaction
// (one command per element, no flush/delete bookkeeping, each line once) to compare rulesets by.

import type { NftPlan } from '../../../src/nftables/diff.js';
import type { NftContext } from '../../../src/nftables/types.js';

/** The conventions of upstream's nftables proxier_test.go: pod CIDR 10.0.0.0/8, node IP 192.168.0.2. */
export const upstreamContext: NftContext = {
  masqueradeMark: '0x4000',
  masqueradeAll: false,
  localTraffic: { ifLocal: 'ip saddr 10.0.0.0/8', ifNotLocal: 'ip saddr != 10.0.0.0/8' },
  nodePortIPs: ['192.168.0.2'],
  primaryNodeIP: '192.168.0.2',
  serviceCIDRs: ['172.30.0.0/16'],
};

/** Every transaction of a plan, built (a full plan builds each only when walked). */
export function transactionsOf(plan: NftPlan): (readonly string[])[] {
  return [...plan.transactions()];
}

/**
 * The objects a sequence of transactions leaves: `add` lines, one element or rule each, sorted and
 * deduplicated. The writer's cache-light block forms count as what they stand for: `add chain T X
 * { r1 ; r2 ; }` as `add rule T X r1` and `add rule T X r2`; `add map T X { decl elements = { a, b }
 * ; }` as `add map T X { decl }` and one `add element` per element.
 */
export function normalise(lines: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('flush ') || trimmed.startsWith('delete ')) continue;
    const rules = /^add chain (\S+ \S+ \S+) \{ (?!type |comment )(.*) ; \}$/.exec(trimmed);
    if (rules !== null) {
      for (const rule of (rules[2] ?? '').split(' ; ')) out.add(`add rule ${rules[1]} ${rule}`);
      continue;
    }
    const declared = /^add (set|map) (\S+ \S+ \S+) \{ (.*) elements = \{ (.*) \} ; \}$/.exec(trimmed);
    if (declared !== null) {
      out.add(`add ${declared[1]} ${declared[2]} { ${(declared[3] ?? '').trimEnd()} }`);
      for (const item of splitElements(declared[4] ?? '')) out.add(`add element ${declared[2]} { ${item} }`);
      continue;
    }
    const element = /^add element (\S+ \S+ \S+) \{ (.*) \}$/.exec(trimmed);
    if (element !== null) {
      for (const item of splitElements(element[2] ?? '')) out.add(`add element ${element[1]} { ${item} }`);
      continue;
    }
    out.add(trimmed);
  }
  return [...out].sort();
}

/** Splits `a, b : goto x, c` at the commas between elements (a comment never holds a comma here). */
function splitElements(text: string): string[] {
  return text.split(', ').map((item) => item.trim());
}
