// The tracer's view of a node's netfilter: tables -> chains -> rules, parsed from `iptables-save`
// text (one or several tables) with the project's restore parser. Every rule keeps its position
// and comment, so a trace can say which rule it followed and why.

import { parseRestorePayload } from '../netfilter/restore-parser.js';
import { joinTokens, ruleComment } from '../netfilter/vocabulary.js';

export type ChainPolicy = 'ACCEPT' | 'DROP';

export interface SavedRule {
  readonly table: string;
  readonly chain: string;
  /** 1-based, as `iptables -L --line-numbers` counts. */
  readonly number: number;
  readonly args: readonly string[];
  /** The rule spec without `-A CHAIN`, minimally quoted. */
  readonly text: string;
  /** The first `-m comment --comment` value, if any. */
  readonly comment: string | undefined;
}

export interface SavedChain {
  readonly name: string;
  /** Built-in chains only. */
  readonly policy: ChainPolicy | undefined;
  readonly rules: readonly SavedRule[];
}

export interface SavedTables {
  /** Table name -> chain name -> chain. */
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, SavedChain>>;
}

export type ParseSavedResult =
  | { readonly ok: true; readonly saved: SavedTables }
  | { readonly ok: false; readonly message: string; readonly line: number };

/** Looks a chain up; undefined when the table or the chain is not in the dump. */
export function savedChain(saved: SavedTables, table: string, chain: string): SavedChain | undefined {
  return saved.tables.get(table)?.get(chain);
}

/**
 * Parses `iptables-save` output (or a full restore payload for a fresh node). Only declarations
 * and appends occur in those; anything else (-I/-D/-X) is refused, since its meaning depends on
 * a prior state.
 */
export function parseSavedTables(text: string): ParseSavedResult {
  const parsed = parseRestorePayload(text);
  if (!parsed.ok) return parsed;
  const tables = new Map<string, Map<string, { policy: ChainPolicy | undefined; rules: SavedRule[] }>>();
  for (const block of parsed.tables) {
    const chains = tables.get(block.table) ?? new Map<string, { policy: ChainPolicy | undefined; rules: SavedRule[] }>();
    tables.set(block.table, chains);
    for (const command of block.commands) {
      if (command.kind === 'declare') {
        const policy = command.policy === 'ACCEPT' || command.policy === 'DROP' ? command.policy : undefined;
        const existing = chains.get(command.chain);
        if (existing) existing.policy = policy;
        else chains.set(command.chain, { policy, rules: [] });
        continue;
      }
      if (command.kind !== 'append') {
        return { ok: false, message: `not iptables-save output: a '${command.kind}' command`, line: command.line };
      }
      // A full restore payload for a fresh node (render's output) appends to built-in chains it
      // never declares; take the chain as declared.
      let chain = chains.get(command.chain);
      if (!chain) {
        chain = { policy: undefined, rules: [] };
        chains.set(command.chain, chain);
      }
      chain.rules.push(new Rule(block.table, command.chain, chain.rules.length + 1, command.args));
    }
  }
  const frozen = new Map<string, ReadonlyMap<string, SavedChain>>();
  for (const [table, chains] of tables) {
    frozen.set(table, new Map([...chains].map(([name, chain]) => [name, { name, policy: chain.policy, rules: chain.rules }])));
  }
  return { ok: true, saved: { tables: frozen } };
}

/** A rule of the dump; its text is joined only when asked for (a trace reads a few of many). */
class Rule implements SavedRule {
  private joined: string | undefined;
  readonly comment: string | undefined;

  constructor(
    readonly table: string,
    readonly chain: string,
    readonly number: number,
    readonly args: readonly string[],
  ) {
    this.comment = ruleComment(args);
  }

  get text(): string {
    const text = this.joined ?? joinTokens(this.args);
    this.joined = text;
    return text;
  }
}
