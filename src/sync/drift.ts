// Drift: what the kernel holds in the chains we own, compared with the RuleSet we last applied,
// and the smallest repair payload that brings the kernel back to it (not a full sync). Read from
// one `iptables-save` per table. Ordered chains (static and per-service-port) must match rule for
// rule and in order; shared dispatch chains (KUBE-SERVICES, KUBE-NODEPORTS...) must hold the same
// service rules in any order (in-place edits put new ones on top) with their trailer last; built-in
// chains must hold our jumps; ensured chains (kubelet's KUBE-FIREWALL) must exist. Rules are
// compared by rule-canon.ts's identity, so iptables-save's rewriting is not drift. Pure.

import type { DriftFinding as ProxierDriftFinding, DriftKind } from '../agent/proxier.js';
import type { BuiltinJump, OrderedChain, RuleSet } from '../render/types.js';
import { BUILTIN_CHAINS, isOwnedChain, type TableName } from '../netfilter/vocabulary.js';
import type { SyncPlan } from './diff.js';
import { jumpKey } from './saved-tables.js';
import { canonicalRule } from './rule-canon.js';
import { chainKey, PayloadBuilder, sharedServiceRules, sortedServicePortKeys } from './payload.js';
import { combineStats } from './full-parts.js';


/** One thing found to differ, in an iptables table. */
export interface DriftFinding extends ProxierDriftFinding {
  readonly table: TableName;
}

export interface DriftResult {
  readonly findings: readonly DriftFinding[];
  /** The repair payload; undefined when nothing differs. */
  readonly repair: SyncPlan | undefined;
  /** Chains compared, and how many of them the memo settled without reading their rules. */
  readonly chainsChecked: number;
  readonly chainsFromMemo: number;
}


/** One table as iptables-save printed it: every chain, and the rule specs of ours and of built-in chains. */
interface KernelTable {
  readonly chains: Set<string>;
  readonly rules: Map<string, string[]>;
  ownedChains: number;
}

/**
 * What earlier checks proved, so that a check of an unchanged node canonicalises (almost) nothing:
 * per ordered chain, the applied rules (by identity) and a hash of the kernel's text that matched
 * them; and the canonical form of recently seen rule texts (shared chains, jumps).
 */
export class DriftMemo {
  private verified = new Map<string, { readonly rules: readonly string[]; readonly hash: string }>();
  private nextVerified = new Map<string, { readonly rules: readonly string[]; readonly hash: string }>();
  private canon = new Map<string, string>();
  private nextCanon = new Map<string, string>();

  canonical(rule: string): string {
    let value = this.nextCanon.get(rule) ?? this.canon.get(rule);
    if (value === undefined) value = canonicalRule(rule);
    this.nextCanon.set(rule, value);
    return value;
  }

  matches(key: string, rules: readonly string[], hash: string): boolean {
    const entry = this.verified.get(key);
    if (entry === undefined || entry.rules !== rules || entry.hash !== hash) return false;
    this.nextVerified.set(key, entry);
    return true;
  }

  remember(key: string, rules: readonly string[], hash: string): void {
    this.nextVerified.set(key, { rules, hash });
  }

  /** Ends a check: what was not used in it is forgotten. */
  rotate(): void {
    this.verified = this.nextVerified;
    this.nextVerified = new Map();
    this.canon = this.nextCanon;
    this.nextCanon = new Map();
  }
}

/** Compares the kernel (iptables-save text per table) with `applied` and plans the repair. */
export function checkDrift(applied: RuleSet, saved: ReadonlyMap<TableName, string>, memo: DriftMemo = new DriftMemo()): DriftResult {
  const kernel = new Map<TableName, KernelTable>();
  for (const [table, text] of saved) kernel.set(table, parseTable(text));
  const builder = new PayloadBuilder();
  const findings: DriftFinding[] = [];
  const counts = { checked: 0, memo: 0 };

  const ordered: OrderedChain[] = [...applied.staticChains];
  for (const servicePort of applied.servicePorts.values()) ordered.push(...servicePort.chains);
  for (const chain of ordered) {
    const table = kernel.get(chain.table);
    if (table === undefined) continue;
    counts.checked++;
    const kind = orderedChainDrift(chain, table, memo, counts);
    if (kind === undefined) continue;
    findings.push({ table: chain.table, chain: chain.name, kind });
    builder.writeChain(chain.table, chain.name, chain.rules);
  }

  const serviceRules = sharedServiceRules(applied, sortedServicePortKeys(applied));
  for (const shared of applied.sharedChains) {
    const table = kernel.get(shared.table);
    if (table === undefined) continue;
    counts.checked++;
    const rules = serviceRules.get(chainKey(shared.table, shared.name)) ?? [];
    const kind = repairSharedChain(builder, shared.table, shared.name, rules, shared.trailer, table, memo);
    if (kind !== undefined) findings.push({ table: shared.table, chain: shared.name, kind });
  }

  for (const ensured of applied.ensuredChains) {
    const table = kernel.get(ensured.table);
    if (table === undefined || table.chains.has(ensured.name)) continue;
    findings.push({ table: ensured.table, chain: ensured.name, kind: 'chain-missing' });
    builder.writeChain(ensured.table, ensured.name, []);
  }

  const missingJumps = findMissingJumps(applied.jumps, kernel);
  // Each `-I <chain> 1` lands above the one before: inserted in reverse, they keep the RuleSet's order.
  for (let index = missingJumps.length - 1; index >= 0; index--) {
    const jump = missingJumps[index];
    if (jump !== undefined) builder.insertJump(jump);
  }
  for (const jump of missingJumps) findings.push({ table: jump.table, chain: jump.chain, kind: 'jump-missing' });
  memo.rotate();

  const repair = findings.length === 0 ? undefined : planOf(builder);
  return { findings: summariseFlushedTables(findings, kernel, ordered), repair, chainsChecked: counts.checked, chainsFromMemo: counts.memo };
}

/** A repair and a sync plan as one restore input (two table blocks each; iptables-restore applies
 * them in order), so the xtables lock is taken once. */
export function prependRepair(repair: SyncPlan | undefined, plan: SyncPlan): SyncPlan {
  if (repair === undefined) return plan;
  if (plan.stats.bytes === 0) return repair;
  const parts = [repair, plan];
  return {
    kind: plan.kind,
    get payload() {
      return repair.payload + plan.payload;
    },
    chunks: { [Symbol.iterator]: function* () { for (const part of parts) yield* part.chunks; } },
    stats: combineStats(parts),
    ...(plan.parts !== undefined ? { parts: [repair.payload, ...plan.parts] } : {}),
  };
}

function planOf(builder: PayloadBuilder): SyncPlan {
  const built = builder.build();
  return {
    kind: 'partial',
    get payload() {
      return built.payload;
    },
    chunks: built.chunks,
    stats: built.stats,
  };
}

function parseTable(text: string): KernelTable {
  const table: KernelTable = { chains: new Set(), rules: new Map(), ownedChains: 0 };
  // Line by line without split(): the save of a 10k-Service node is 500k lines.
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const first = text.charCodeAt(start);
    if (first === 58 /* : */) {
      const space = text.indexOf(' ', start);
      const name = text.slice(start + 1, space < 0 || space > end ? end : space);
      table.chains.add(name);
      if (isOwnedChain(name)) table.ownedChains++;
    } else if (first === 45 /* - */ && text.startsWith('-A ', start)) {
      const space = text.indexOf(' ', start + 3);
      if (space > 0 && space < end) {
        const chain = text.slice(start + 3, space);
        {
          let rules = table.rules.get(chain);
          if (rules === undefined) {
            rules = [];
            table.rules.set(chain, rules);
          }
          rules.push(text.slice(space + 1, end));
        }
      }
    }
    start = end + 1;
  }
  return table;
}

function orderedChainDrift(chain: OrderedChain, table: KernelTable, memo: DriftMemo, counts: { memo: number }): DriftKind | undefined {
  if (!table.chains.has(chain.name)) return 'chain-missing';
  const kernelRules = table.rules.get(chain.name) ?? [];
  if (kernelRules.length === 0) return chain.rules.length === 0 ? undefined : 'chain-flushed';
  const key = chainKey(chain.table, chain.name);
  const hash = hashLines(kernelRules);
  if (memo.matches(key, chain.rules, hash)) {
    counts.memo++;
    return undefined;
  }
  const kind = compareSequences(chain.rules.map(canonicalRule), kernelRules.map(canonicalRule));
  if (kind === undefined) memo.remember(key, chain.rules, hash);
  return kind;
}

/** How a kernel sequence of canonical rules differs from the wanted one, if it does. */
function compareSequences(wanted: readonly string[], found: readonly string[]): DriftKind | undefined {
  if (wanted.length === found.length && wanted.every((rule, index) => rule === found[index])) return undefined;
  const { missing, extra } = multisetDifference(wanted, found);
  if (missing.length === 0 && extra.length === 0) return 'rules-reordered';
  if (extra.length === 0) return 'rule-missing';
  if (missing.length === 0) return 'rule-extra';
  return 'rule-changed';
}

/** Wanted items the kernel lacks, and kernel items nothing wants (by index into `found`). */
function multisetDifference(wanted: readonly string[], found: readonly string[]): { missing: number[]; extra: number[] } {
  const pending = new Map<string, number[]>();
  wanted.forEach((rule, index) => {
    const list = pending.get(rule);
    if (list === undefined) pending.set(rule, [index]);
    else list.push(index);
  });
  const extra: number[] = [];
  found.forEach((rule, index) => {
    const list = pending.get(rule);
    if (list === undefined || list.length === 0) extra.push(index);
    else list.pop();
  });
  const missing: number[] = [];
  for (const list of pending.values()) missing.push(...list);
  return { missing: missing.sort((a, b) => a - b), extra };
}

/**
 * A shared chain: service rules in any order, then the trailer. Missing and foreign service rules
 * are edited in place (`-I` / `-D`); a chain that is gone, flushed or whose trailer moved or
 * changed is rewritten whole.
 */
function repairSharedChain(
  builder: PayloadBuilder,
  tableName: TableName,
  chain: string,
  serviceRules: readonly string[],
  trailer: readonly string[],
  table: KernelTable,
  memo: DriftMemo,
): DriftKind | undefined {
  const rewrite = (kind: DriftKind): DriftKind => {
    builder.writeChain(tableName, chain, [...serviceRules, ...trailer]);
    builder.countSharedRulesWritten(serviceRules.length);
    return kind;
  };
  if (!table.chains.has(chain)) return rewrite('chain-missing');
  const kernelRules = table.rules.get(chain) ?? [];
  if (kernelRules.length === 0) return serviceRules.length + trailer.length === 0 ? undefined : rewrite('chain-flushed');
  const found = kernelRules.map((rule) => memo.canonical(rule));
  const wantedTrailer = trailer.map((rule) => memo.canonical(rule));
  const trailerAt = found.length - wantedTrailer.length;
  const trailerIntact = trailerAt >= 0 && wantedTrailer.every((rule, index) => found[trailerAt + index] === rule);
  const wanted = serviceRules.map((rule) => memo.canonical(rule));
  if (!trailerIntact) {
    const all = multisetDifference([...wanted, ...wantedTrailer], found);
    return rewrite(all.missing.length === 0 && all.extra.length === 0 ? 'rules-reordered' : 'rule-changed');
  }
  const { missing, extra } = multisetDifference(wanted, found.slice(0, trailerAt));
  if (missing.length === 0 && extra.length === 0) return undefined;
  // iptables-save prints a rule in a form `-D` accepts as is.
  for (const index of extra) builder.deleteSharedRule(tableName, chain, kernelRules[index] ?? '');
  for (const index of missing) builder.insertSharedRule(tableName, chain, serviceRules[index] ?? '');
  return extra.length === 0 ? 'rule-missing' : missing.length === 0 ? 'rule-extra' : 'rule-changed';
}

function findMissingJumps(jumps: readonly BuiltinJump[], kernel: ReadonlyMap<TableName, KernelTable>): BuiltinJump[] {
  const present = new Map<TableName, Set<string>>();
  const missing: BuiltinJump[] = [];
  for (const jump of jumps) {
    const table = kernel.get(jump.table);
    if (table === undefined) continue;
    let keys = present.get(jump.table);
    if (keys === undefined) {
      keys = new Set();
      for (const builtin of BUILTIN_CHAINS) for (const rule of table.rules.get(builtin) ?? []) keys.add(jumpKey(jump.table, builtin, rule));
      present.set(jump.table, keys);
    }
    if (!keys.has(jumpKey(jump.table, jump.chain, jump.rule))) missing.push(jump);
  }
  return missing;
}

/** A table without any of our chains left was flushed: one finding instead of one per chain. */
function summariseFlushedTables(findings: DriftFinding[], kernel: ReadonlyMap<TableName, KernelTable>, ordered: readonly OrderedChain[]): DriftFinding[] {
  const flushed = new Set<TableName>();
  for (const [name, table] of kernel) {
    if (table.ownedChains === 0 && ordered.some((chain) => chain.table === name)) flushed.add(name);
  }
  if (flushed.size === 0) return findings;
  const kept = findings.filter((finding) => !flushed.has(finding.table));
  for (const table of flushed) kept.push({ table, chain: '*', kind: 'table-flushed' });
  return kept;
}

/** Two 32-bit FNV-1a hashes of the lines (different offsets), as one key: equal text, equal key. */
function hashLines(lines: readonly string[]): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ lines.length;
  for (const line of lines) {
    for (let index = 0; index < line.length; index++) {
      const code = line.charCodeAt(index);
      a = Math.imul(a ^ code, 0x01000193);
      b = Math.imul(b ^ code, 0x5bd1e995);
    }
    a = Math.imul(a ^ 10, 0x01000193);
    b = Math.imul(b ^ 10, 0x5bd1e995);
  }
  return `${(a >>> 0).toString(36)}.${(b >>> 0).toString(36)}`;
}

