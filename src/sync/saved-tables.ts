// Reads what a full sync needs from `iptables-save` output: which of our chains exist (to delete
// the stale ones), whether the canary is there, and which built-in jumps are present, missing or
// stale. Pure.

import type { BuiltinJump } from '../render/types.js';
import { isBuiltinChain, isOwnedChain, kubeProxyCanaryChain, ruleComment, ruleTarget, ruleWords, TABLES, type TableName } from '../netfilter/vocabulary.js';

export interface SavedTables {
  /** Chains in the saved table(s) that kube-proxy-ts owns (the vocabulary's isOwnedChain: deleting
   * kubelet's or kube-router's KUBE- chains would break them or fail the restore). */
  readonly ourChains: ReadonlySet<string>;
  readonly canaryPresent: boolean;
  /** Desired jumps found in the kernel. */
  readonly presentJumps: readonly BuiltinJump[];
  /** Desired jumps the kernel lacks. */
  readonly missingJumps: readonly BuiltinJump[];
  /**
   * Built-in rules that jump into one of our chains but match no desired jump (an older kube-proxy's,
   * or ours from before a setting changed). `rule` is as iptables-save prints it, which `-D` accepts.
   */
  readonly staleJumps: readonly BuiltinJump[];
  /** Which of the chains asked about (`ensured`, e.g. kubelet's KUBE-FIREWALL) exist. */
  readonly presentEnsured: ReadonlySet<string>;
}

/**
 * Parses `iptables-save [-t table]` output. `jumps` are the desired jumps; only those of the
 * tables present in the text are reported as present or missing.
 */
export function parseSavedTables(saveText: string, jumps: readonly BuiltinJump[], ensured: ReadonlySet<string> = new Set()): SavedTables {
  const ourChains = new Set<string>();
  const presentEnsured = new Set<string>();
  const tables = new Set<TableName>();
  let canaryPresent = false;
  let table: TableName | undefined;
  const desiredKeys = new Set(jumps.map((jump) => jumpKey(jump.table, jump.chain, jump.rule)));
  const foundKeys = new Set<string>();
  const staleJumps: BuiltinJump[] = [];

  // Line by line without split(): the save of a 10k-Service node is 500k lines.
  for (let start = 0; start < saveText.length; ) {
    let end = saveText.indexOf('\n', start);
    if (end < 0) end = saveText.length;
    const first = saveText.charCodeAt(start);
    // Only table headers, chain declarations and rules matter; counters and comments are skipped unread.
    const line = first === 42 || first === 58 || first === 45 ? saveText.slice(start, end) : '';
    start = end + 1;
    if (line.startsWith('*')) {
      const name = line.slice(1).trim();
      table = TABLES.find((owned) => owned === name);
      if (table !== undefined) tables.add(table);
    } else if (table === undefined) {
      continue;
    } else if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ', 1)[0] ?? '';
      if (chain === kubeProxyCanaryChain) canaryPresent = true;
      if (isOwnedChain(chain)) ourChains.add(chain);
      else if (ensured.has(chain)) presentEnsured.add(chain);
    } else if (line.startsWith('-A ')) {
      const space = line.indexOf(' ', 3);
      if (space < 0) continue;
      const chain = line.slice(3, space);
      if (!isBuiltinChain(chain)) continue;
      const rule = line.slice(space + 1);
      const key = jumpKey(table, chain, rule);
      if (desiredKeys.has(key)) {
        foundKeys.add(key);
        continue;
      }
      const target = ruleTarget(ruleWords(rule))?.name;
      if (target !== undefined && isOwnedChain(target)) {
        staleJumps.push({ table, chain, rule });
      }
    }
  }

  const presentJumps: BuiltinJump[] = [];
  const missingJumps: BuiltinJump[] = [];
  for (const jump of jumps) {
    if (!tables.has(jump.table)) continue;
    (foundKeys.has(jumpKey(jump.table, jump.chain, jump.rule)) ? presentJumps : missingJumps).push(jump);
  }
  return { ourChains, canaryPresent, presentJumps, missingJumps, staleJumps, presentEnsured };
}

/**
 * A tolerant identity for a built-in jump, equal for the rule as we write it and as iptables-save
 * prints it back (which reorders matches, appends /32 to addresses and adds implied modules): the
 * chain, the target and the comment; without a comment, the other tokens as a sorted set.
 */
export function jumpKey(table: TableName, chain: string, rule: string): string {
  const tokens = ruleWords(rule);
  const target = ruleTarget(tokens)?.name ?? '';
  const comment = ruleComment(tokens);
  if (comment !== undefined) return `${table} ${chain} ${target} #${comment}`;
  const rest: string[] = [];
  for (let index = 0; index < tokens.length; index++) {
    const token = tokens[index] ?? '';
    // The target is keyed apart; `-m <module>` is dropped because iptables-save adds implied
    // modules (`-p tcp --dport` comes back as `-p tcp -m tcp --dport`).
    if (token === '-j' || token === '-g' || token === '-m') {
      index++;
      continue;
    }
    rest.push(token.endsWith('/32') ? token.slice(0, -3) : token);
  }
  return `${table} ${chain} ${target} ${rest.sort().join(' ')}`;
}
