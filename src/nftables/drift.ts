// Rule drift in nftables mode: the chains of our table as nft lists them, against the rule set we
// applied, rule by rule. nft prints some rules differently from how they were written (`mark or
// 0x4000` comes back as `meta mark | 0x00004000`, an anonymous set sorted, a one-element one
// without braces, adjacent CIDRs merged into one range), so both sides are brought to one canonical
// spelling first: addresses and CIDRs of an anonymous set become their merged intervals. Set and
// map elements are not compared.
// Pure.

import type { DriftFinding, DriftKind } from '../agent/proxier.js';
import { parseCidr, type Cidr } from '../ip.js';
import type { NftChain, NftRuleset } from './types.js';
import { KUBE_PROXY_TABLE } from './vocabulary.js';

/** `nft -t list table` -> chain name -> its rules (hook line and chain comment left out). */
export function listedChains(listing: string): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  let current: string[] | undefined;
  let depth = 0;
  for (const line of listing.split('\n')) {
    const text = line.trim();
    if (text === '') continue;
    const opened = /^chain (\S+) \{$/.exec(text);
    if (opened?.[1] !== undefined && depth === 1) {
      current = [];
      chains.set(opened[1], current);
      depth++;
      continue;
    }
    if (text.endsWith('{')) {
      depth++;
      continue;
    }
    if (text === '}') {
      depth--;
      if (depth <= 1) current = undefined;
      continue;
    }
    if (current === undefined) continue;
    if (/^type \S+ hook /.test(text) || /^comment "/.test(text)) continue;
    current.push(text);
  }
  return chains;
}

/** One spelling for what nft reads back and what we wrote. */
export function canonicalRule(rule: string): string {
  return rule
    .replace(/\bmeta mark\b/g, 'mark')
    .replace(/ & /g, ' and ')
    .replace(/ \| /g, ' or ')
    .replace(/ \^ /g, ' xor ')
    .replace(/\b0x[0-9a-f]+\b/gi, (hex) => String(Number.parseInt(hex, 16)))
    .replace(/\s+,/g, ',')
    // nft lists an anonymous set's elements sorted, and a one-element set as its element (maps stay).
    .replace(/\{ ([^{}]+) \}/g, (whole, inside: string) => {
      if (/ : /.test(inside)) return whole;
      const elements = inside.split(',').map((element) => element.trim());
      if (elements.length === 1 && !(elements[0] ?? '').includes('-')) return elements[0] ?? '';
      const intervals = mergedIntervals(elements);
      if (intervals !== undefined) return intervals;
      elements.sort();
      return elements.length === 1 ? (elements[0] ?? '') : `{ ${elements.join(', ')} }`;
    })
    .replace(/\s+/g, ' ')
    .trim();
}

/** Addresses, CIDRs and `a-b` ranges as merged intervals (`<start>-<end>`, hex); undefined if any element is something else. */
function mergedIntervals(elements: readonly string[]): string | undefined {
  const intervals: [bigint, bigint][] = [];
  for (const element of elements) {
    const [from, to] = element.includes('-') ? element.split('-') : [element, undefined];
    const start = parseCidr(from ?? '', { bareAddress: true });
    if (start === undefined) return undefined;
    const bits = start.family === 'IPv4' ? 32n : 128n;
    const endOf = (cidr: Cidr): bigint => cidr.network + (1n << (bits - BigInt(cidr.prefixLength))) - 1n;
    const end = to === undefined ? start : parseCidr(to, { bareAddress: true });
    if (end === undefined) return undefined;
    intervals.push([start.network, endOf(end)]);
  }
  intervals.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const interval of intervals) {
    const last = merged[merged.length - 1];
    if (last !== undefined && interval[0] <= last[1] + 1n) last[1] = interval[1] > last[1] ? interval[1] : last[1];
    else merged.push([interval[0], interval[1]]);
  }
  return `{ ${merged.map(([start, end]) => `${start.toString(16)}-${end.toString(16)}`).join(', ')} }`;
}

/** What differs in each chain we applied; an absent table is one `table-flushed` finding. */
export function findRuleDrift(applied: NftRuleset, listed: ReadonlyMap<string, readonly string[]> | 'absent'): DriftFinding[] {
  if (listed === 'absent') return [{ table: KUBE_PROXY_TABLE, chain: '*', kind: 'table-flushed' }];
  const findings: DriftFinding[] = [];
  for (const chain of appliedChains(applied)) {
    const kind = chainDrift(chain, listed.get(chain.name));
    if (kind !== undefined) findings.push({ table: KUBE_PROXY_TABLE, chain: chain.name, kind });
  }
  return findings;
}

function* appliedChains(ruleset: NftRuleset): Generator<NftChain> {
  yield* ruleset.staticChains;
  for (const part of ruleset.servicePorts.values()) yield* part.chains;
}

function chainDrift(chain: NftChain, listed: readonly string[] | undefined): DriftKind | undefined {
  if (listed === undefined) return 'chain-missing';
  if (listed.length === 0 && chain.rules.length > 0) return 'chain-flushed';
  // Most rules come back as written: the canonical spelling only for the others (cost at 10k Services).
  const same = (rule: string, index: number): boolean => {
    const read = listed[index];
    return read !== undefined && (read === rule || canonicalRule(read) === canonicalRule(rule));
  };
  if (listed.length === chain.rules.length && chain.rules.every(same)) return undefined;
  const wanted = chain.rules.map(canonicalRule);
  const found = listed.map(canonicalRule);
  if (found.length > wanted.length) return 'rule-extra';
  if (found.length < wanted.length) return 'rule-missing';
  const sorted = (rules: string[]): string => [...rules].sort().join('\n');
  return sorted(wanted) === sorted(found) ? 'rules-reordered' : 'rule-changed';
}
