// A minimal in-memory stand-in for iptables-restore --noflush, strict where the kernel is strict
// (jump to a missing chain, -D of a missing rule, -X of a chain in use), so the sync unit tests can
// run long random sequences quickly. The kernel suite proves the same sequences on real netfilter.

import type { RuleSet } from '../../../src/render/types.js';
import type { TableName } from '../../../src/netfilter/vocabulary.js';
import { ruleWords as tokenize } from '../../../src/netfilter/vocabulary.js';

const BUILTIN_CHAINS: Record<TableName, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
};
const STANDARD_TARGETS = new Set(['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'MARK', 'MASQUERADE', 'DNAT', 'SNAT']);

type Tables = Map<TableName, Map<string, string[]>>;

export type MiniRestoreResult = { ok: true } | { ok: false; line: number; message: string };

export class MiniKernel {
  private tables: Tables = new Map();

  constructor() {
    for (const table of ['filter', 'nat'] as const) {
      this.tables.set(table, new Map(BUILTIN_CHAINS[table].map((chain) => [chain, []])));
    }
  }

  /** Applies a --noflush payload; each table commits atomically, as iptables-restore does. */
  restore(payload: string): MiniRestoreResult {
    const lines = payload.split('\n');
    let working: Map<string, string[]> | undefined;
    let table: TableName | undefined;
    for (let index = 0; index < lines.length; index++) {
      const line = lines[index] ?? '';
      const fail = (message: string): MiniRestoreResult => ({ ok: false, line: index + 1, message });
      if (line === '' || line.startsWith('#')) continue;
      if (line.startsWith('*')) {
        table = line.slice(1) as TableName;
        const current = this.tables.get(table);
        if (current === undefined) return fail(`unknown table ${table}`);
        working = new Map([...current].map(([chain, rules]) => [chain, [...rules]]));
        continue;
      }
      if (working === undefined || table === undefined) return fail('no table');
      if (line === 'COMMIT') {
        this.tables.set(table, working);
        working = undefined;
        continue;
      }
      if (line.startsWith(':')) {
        const chain = line.slice(1).split(' ')[0] ?? '';
        const existing = working.get(chain);
        if (existing !== undefined && BUILTIN_CHAINS[table].includes(chain)) continue;
        working.set(chain, []);
        continue;
      }
      const [op, chain, ...rest] = line.split(' ');
      const rules = working.get(chain ?? '');
      if (rules === undefined) return fail(`no chain ${chain ?? ''}`);
      if (op === '-X') {
        if (rules.length > 0) return fail(`chain ${chain ?? ''} not empty`);
        for (const [other, otherRules] of working) {
          if (otherRules.some((rule) => targetOf(rule) === chain)) return fail(`chain ${chain ?? ''} referenced by ${other}`);
        }
        working.delete(chain ?? '');
        continue;
      }
      let rule = rest.join(' ');
      if (op === '-I') {
        if (rest[0] !== '1') return fail('only -I CHAIN 1 is supported');
        rule = rest.slice(1).join(' ');
      }
      const target = targetOf(rule);
      if (target !== undefined && !STANDARD_TARGETS.has(target) && !working.has(target)) return fail(`no chain ${target}`);
      if (op === '-A') rules.push(rule);
      else if (op === '-I') rules.unshift(rule);
      else if (op === '-D') {
        const at = rules.indexOf(rule);
        if (at < 0) return fail(`no such rule in ${chain ?? ''}`);
        rules.splice(at, 1);
      } else return fail(`unknown op ${op ?? ''}`);
    }
    if (working !== undefined) return { ok: false, line: lines.length, message: 'missing COMMIT' };
    return { ok: true };
  }

  chains(table: TableName): ReadonlyMap<string, readonly string[]> {
    return this.tables.get(table) ?? new Map();
  }

  /**
   * A comparable view: chains sorted by name; shared chains' service rules sorted (in-place inserts
   * reorder them) while their trailer must stay last.
   */
  normalised(ruleSet: RuleSet): string {
    const out: string[] = [];
    const sharedTrailers = new Map(ruleSet.sharedChains.map((chain) => [`${chain.table} ${chain.name}`, chain.trailer.length]));
    for (const table of ['filter', 'nat'] as const) {
      out.push(`*${table}`);
      const chains = this.tables.get(table) ?? new Map<string, string[]>();
      for (const chain of [...chains.keys()].sort()) {
        const rules = chains.get(chain) ?? [];
        const trailerLength = sharedTrailers.get(`${table} ${chain}`);
        const ordered = trailerLength === undefined
          ? rules
          : [...rules.slice(0, rules.length - trailerLength).sort(), ...rules.slice(rules.length - trailerLength)];
        out.push(`:${chain}`, ...ordered.map((rule) => `-A ${chain} ${rule}`));
      }
    }
    return out.join('\n');
  }
}

function targetOf(rule: string): string | undefined {
  const tokens = tokenize(rule);
  const at = tokens.findIndex((token) => token === '-j' || token === '-g');
  return at >= 0 ? tokens[at + 1] : undefined;
}
