// A stateful, in-memory stand-in for iptables-restore / iptables-save, strict enough that a
// payload it accepts has a good chance of being accepted by the kernel: it honours --noflush,
// rejects jumps to missing chains, deletions of missing rules and of referenced chains, and
// applies a payload all-or-nothing. Sequences of syncs become unit-testable. Test support only:
// the packet tracer (src/trace) reads its `saveText`, as it reads a node's iptables-save.

import type { Netfilter, RestoreResult, SaveResult } from '../../src/netfilter/netfilter.js';
import { parseRestorePayload, type RestoreCommand } from '../../src/netfilter/restore-parser.js';
import { joinTokens, ruleTarget, type RuleTarget, type TableName } from '../../src/netfilter/vocabulary.js';
import { parseSavedTables, type SavedTables } from '../../src/trace/tables.js';

/** Tables the fake knows; `mangle` and `raw` exist so payloads that touch them (canaries) apply. */
export type FakeTableName = TableName | 'mangle' | 'raw';
export type ChainPolicy = 'ACCEPT' | 'DROP';

/** One stored rule: its canonical text (tokens re-joined) and the tokens. */
export interface FakeRule {
  readonly text: string;
  readonly args: readonly string[];
  readonly target: RuleTarget | undefined;
}

const builtinChains: Readonly<Record<FakeTableName, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

/** Targets that are not chains; any other target must name an existing user chain. */
const standardTargets = new Set(['ACCEPT', 'DROP', 'RETURN']);
const extensionTargets: Readonly<Record<string, readonly FakeTableName[]>> = {
  REJECT: ['filter', 'mangle', 'raw'],
  DNAT: ['nat'],
  SNAT: ['nat'],
  MASQUERADE: ['nat'],
  MARK: ['filter', 'nat', 'mangle', 'raw'],
  LOG: ['filter', 'nat', 'mangle', 'raw'],
};

/** iptables' limit: XT_EXTENSION_MAXNAMELEN (29) including the terminating NUL. */
const maxChainNameLength = 28;

function isFakeTable(name: string): name is FakeTableName {
  return Object.hasOwn(builtinChains, name);
}

/** A failure inside one restore; becomes `{ ok: false }` and discards the working copy. */
class RestoreError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

/** One table: chains in creation order, built-in policies, and how many rules target each chain. */
class TableState {
  constructor(
    readonly name: FakeTableName,
    readonly chains: Map<string, FakeRule[]>,
    readonly policies: Map<string, ChainPolicy>,
    readonly references: Map<string, number>,
  ) {}

  static empty(name: FakeTableName): TableState {
    const chains = new Map<string, FakeRule[]>();
    const policies = new Map<string, ChainPolicy>();
    for (const chain of builtinChains[name]) {
      chains.set(chain, []);
      policies.set(chain, 'ACCEPT');
    }
    return new TableState(name, chains, policies, new Map());
  }

  /** Rules are immutable values, so copying the arrays is enough for a working copy. */
  clone(): TableState {
    const chains = new Map<string, FakeRule[]>([...this.chains].map(([chain, rules]) => [chain, [...rules]]));
    return new TableState(this.name, chains, new Map(this.policies), new Map(this.references));
  }

  isBuiltin(chain: string): boolean {
    return this.policies.has(chain);
  }

  addRule(chain: string, rule: FakeRule, index: number): void {
    this.rulesOf(chain).splice(index, 0, rule);
    if (rule.target) this.references.set(rule.target.name, (this.references.get(rule.target.name) ?? 0) + 1);
  }

  removeRule(chain: string, index: number): void {
    const [removed] = this.rulesOf(chain).splice(index, 1);
    const target = removed?.target;
    if (target) this.references.set(target.name, (this.references.get(target.name) ?? 1) - 1);
  }

  flushChain(chain: string): void {
    const rules = this.rulesOf(chain);
    for (let index = rules.length - 1; index >= 0; index--) this.removeRule(chain, index);
  }

  flushAll(deleteUserChains: boolean): void {
    for (const chain of [...this.chains.keys()]) {
      this.flushChain(chain);
      if (deleteUserChains && !this.isBuiltin(chain)) this.chains.delete(chain);
    }
  }

  referenceCount(chain: string): number {
    return this.references.get(chain) ?? 0;
  }

  rulesOf(chain: string): FakeRule[] {
    const rules = this.chains.get(chain);
    if (!rules) throw new Error(`FakeNetfilter: chain ${this.name}/${chain} vanished`);
    return rules;
  }
}

export class FakeNetfilter implements Netfilter {
  private tables = new Map<FakeTableName, TableState>(
    (Object.keys(builtinChains) as FakeTableName[]).map((name) => [name, TableState.empty(name)]),
  );
  private restores = 0;
  private saves = 0;
  private lastRestore: { payload: string; noFlush: boolean } | undefined;
  private pendingRestoreFailure: { message: string; line: number | undefined } | undefined;
  private pendingSaveFailure: string | undefined;
  private saved: SavedTables | undefined;
  /** When set, `chainExists` answers undefined (the check itself failed). */
  chainCheckFails = false;
  /** When set, every restore fails with this message (a family whose rules cannot be loaded). */
  everyRestoreFails: string | undefined;

  restore(pieces: string | Iterable<string>, options: { readonly noFlush: boolean }): Promise<RestoreResult> {
    const payload = typeof pieces === 'string' ? pieces : [...pieces].join('');
    return Promise.resolve(this.restoreSync(payload, options));
  }

  save(table: TableName): Promise<SaveResult> {
    this.saves++;
    if (this.pendingSaveFailure !== undefined) {
      const message = this.pendingSaveFailure;
      this.pendingSaveFailure = undefined;
      return Promise.resolve({ ok: false, message });
    }
    return Promise.resolve({ ok: true, text: this.saveText(table) });
  }

  chainExists(table: TableName, chain: string): Promise<boolean | undefined> {
    if (this.chainCheckFails) return Promise.resolve(undefined);
    return Promise.resolve(this.hasChain(table, chain));
  }

  /** The same as `restore`, synchronously (handy in tests that set up tables). */
  restoreSync(payload: string, options: { readonly noFlush: boolean }): RestoreResult {
    this.restores++;
    this.lastRestore = { payload, noFlush: options.noFlush };
    if (this.pendingRestoreFailure) {
      const { message, line } = this.pendingRestoreFailure;
      this.pendingRestoreFailure = undefined;
      return { ok: false, message, line };
    }
    if (this.everyRestoreFails !== undefined) return { ok: false, message: this.everyRestoreFails, line: undefined };
    const parsed = parseRestorePayload(payload);
    if (!parsed.ok) return failure(parsed.message, parsed.line);

    // Work on copies of the named tables and swap them in only when every line applied.
    const working = new Map<FakeTableName, TableState>();
    try {
      for (const block of parsed.tables) {
        if (!isFakeTable(block.table)) {
          throw new RestoreError(`can't initialize iptables table '${block.table}': Table does not exist`, block.line);
        }
        const table = working.get(block.table) ?? this.table(block.table).clone();
        working.set(block.table, table);
        if (!options.noFlush) table.flushAll(true);
        const declared = new Set<string>();
        for (const command of block.commands) applyCommand(table, command, options.noFlush, declared);
      }
    } catch (error: unknown) {
      if (error instanceof RestoreError) return failure(error.message, error.line);
      throw error;
    }
    for (const [name, table] of working) this.tables.set(name, table);
    this.saved = undefined;
    return { ok: true };
  }

  /** iptables-save text of one table: built-in chains first, then user chains by name. */
  saveText(table: FakeTableName): string {
    const state = this.table(table);
    const lines = ['# Generated by FakeNetfilter', `*${table}`];
    for (const chain of this.chains(table)) {
      lines.push(`:${chain} ${state.policies.get(chain) ?? '-'} [0:0]`);
    }
    for (const chain of this.chains(table)) {
      for (const rule of state.rulesOf(chain)) lines.push(`-A ${chain} ${rule.text}`);
    }
    lines.push('COMMIT', '# Completed by FakeNetfilter', '');
    return lines.join('\n');
  }

  /** Chain names in iptables-save order. */
  chains(table: FakeTableName): readonly string[] {
    const state = this.table(table);
    const user = [...state.chains.keys()].filter((chain) => !state.isBuiltin(chain)).sort();
    return [...builtinChains[table], ...user];
  }

  hasChain(table: FakeTableName, chain: string): boolean {
    return this.table(table).chains.has(chain);
  }

  /** Canonical rule texts of a chain (without `-A CHAIN`), or undefined when it does not exist. */
  rules(table: FakeTableName, chain: string): readonly string[] | undefined {
    return this.table(table).chains.get(chain)?.map((rule) => rule.text);
  }

  /**
   * Every table as the tracer reads a node: parsed from this fake's iptables-save text. Kept until
   * the tables change, so repeated traces of one state reuse the tracer's compiled rules.
   */
  savedTables(): SavedTables {
    if (this.saved === undefined) {
      const text = (Object.keys(builtinChains) as FakeTableName[]).map((table) => this.saveText(table)).join('');
      const parsed = parseSavedTables(text);
      if (!parsed.ok) throw new Error(`FakeNetfilter: its own save text does not parse: ${parsed.message} (line ${parsed.line})`);
      this.saved = parsed.saved;
    }
    return this.saved;
  }

  /** Policy of a built-in chain; undefined for user chains. */
  policy(table: FakeTableName, chain: string): ChainPolicy | undefined {
    return this.table(table).policies.get(chain);
  }

  /** Number of `restore` calls so far, failed ones included. */
  get restoreCalls(): number {
    return this.restores;
  }

  get saveCalls(): number {
    return this.saves;
  }

  get lastPayload(): string | undefined {
    return this.lastRestore?.payload;
  }

  get lastNoFlush(): boolean | undefined {
    return this.lastRestore?.noFlush;
  }

  /** The next restore fails with this message and changes nothing. */
  failNextRestore(message: string, line?: number): void {
    this.pendingRestoreFailure = { message, line };
  }

  failNextSave(message: string): void {
    this.pendingSaveFailure = message;
  }

  /**
   * Tampering, as a firewall reload would do it: empties every chain of the table and, unless told
   * otherwise, deletes its user chains too.
   */
  flushTable(table: FakeTableName, options: { readonly deleteChains: boolean } = { deleteChains: true }): void {
    this.table(table).flushAll(options.deleteChains);
    this.saved = undefined;
  }

  /** Tampering: `iptables -F chain; iptables -X chain`. Throws where iptables would refuse. */
  deleteChain(table: FakeTableName, chain: string): void {
    const state = this.table(table);
    if (!state.chains.has(chain) || state.isBuiltin(chain)) {
      throw new Error(`FakeNetfilter.deleteChain: no user chain ${table}/${chain}`);
    }
    if (state.referenceCount(chain) > 0) {
      throw new Error(`FakeNetfilter.deleteChain: ${table}/${chain} is still referenced`);
    }
    state.flushChain(chain);
    state.chains.delete(chain);
    this.saved = undefined;
  }

  /** Tampering: `iptables -D chain rule` with the rule's canonical text. Throws when missing. */
  deleteRule(table: FakeTableName, chain: string, ruleText: string): void {
    const state = this.table(table);
    const index = state.chains.get(chain)?.findIndex((rule) => rule.text === ruleText) ?? -1;
    if (index < 0) throw new Error(`FakeNetfilter.deleteRule: no rule '${ruleText}' in ${table}/${chain}`);
    state.removeRule(chain, index);
    this.saved = undefined;
  }

  private table(name: FakeTableName): TableState {
    const table = this.tables.get(name);
    if (!table) throw new Error(`FakeNetfilter: unknown table ${name}`);
    return table;
  }
}

function failure(message: string, line: number): RestoreResult {
  return { ok: false, message: `iptables-restore: line ${line} failed: ${message}`, line };
}

function applyCommand(table: TableState, command: RestoreCommand, noFlush: boolean, declared: Set<string>): void {
  const fail = (message: string): never => {
    throw new RestoreError(message, command.line);
  };
  const requireChain = (chain: string): void => {
    if (!table.chains.has(chain)) fail(`No chain/target/match by that name: '${chain}'`);
  };
  switch (command.kind) {
    case 'declare': {
      const { chain, policy } = command;
      if (table.isBuiltin(chain)) {
        if (policy === 'ACCEPT' || policy === 'DROP') table.policies.set(chain, policy);
        else if (policy !== '-') fail(`Bad policy name '${policy}' for built-in chain ${chain}`);
        return;
      }
      if (policy !== '-') fail(`Can't set policy '${policy}' on '${chain}': Bad built-in chain name`);
      checkChainName(chain, fail);
      // Without --noflush the table was emptied, so a second declaration is a payload bug.
      if (!noFlush && declared.has(chain)) fail(`Chain '${chain}' already exists`);
      declared.add(chain);
      if (table.chains.has(chain)) table.flushChain(chain);
      else table.chains.set(chain, []);
      return;
    }
    case 'newChain':
      if (table.chains.has(command.chain)) fail(`Chain '${command.chain}' already exists`);
      checkChainName(command.chain, fail);
      table.chains.set(command.chain, []);
      return;
    case 'append':
    case 'insert': {
      requireChain(command.chain);
      const rule = makeRule(table, command.args, fail);
      const length = table.rulesOf(command.chain).length;
      if (command.kind === 'append') {
        table.addRule(command.chain, rule, length);
        return;
      }
      if (command.position > length + 1) fail(`Index of insertion too big: ${command.position}`);
      table.addRule(command.chain, rule, command.position - 1);
      return;
    }
    case 'delete': {
      requireChain(command.chain);
      // Matches the exact rule text; iptables compares parsed rules, but we delete what we wrote.
      const text = joinTokens(command.args);
      const index = table.rulesOf(command.chain).findIndex((rule) => rule.text === text);
      if (index < 0) fail(`Bad rule (does a matching rule exist in that chain?): -D ${command.chain} ${text}`);
      table.removeRule(command.chain, index);
      return;
    }
    case 'deleteAt':
      requireChain(command.chain);
      if (command.position > table.rulesOf(command.chain).length) {
        fail(`Index of deletion too big: ${command.position}`);
      }
      table.removeRule(command.chain, command.position - 1);
      return;
    case 'flush':
      if (command.chain === undefined) table.flushAll(false);
      else {
        requireChain(command.chain);
        table.flushChain(command.chain);
      }
      return;
    case 'deleteChain': {
      const userChains = [...table.chains.keys()].filter((chain) => !table.isBuiltin(chain));
      const targets = command.chain === undefined ? userChains : [command.chain];
      for (const chain of targets) {
        requireChain(chain);
        if (table.isBuiltin(chain)) fail(`Can't delete built-in chain '${chain}'`);
        if (table.rulesOf(chain).length > 0) fail(`Directory not empty: chain '${chain}' still has rules`);
      }
      for (const chain of targets) {
        if (table.referenceCount(chain) > 0) fail(`Too many links: chain '${chain}' is still referenced`);
        table.chains.delete(chain);
      }
      return;
    }
    default: {
      const unreachable: never = command;
      throw new Error(`unhandled command ${JSON.stringify(unreachable)}`);
    }
  }
}

function checkChainName(chain: string, fail: (message: string) => never): void {
  if (chain.length > maxChainNameLength) {
    fail(`chain name '${chain}' too long (must be under ${maxChainNameLength + 1} chars)`);
  }
  if (chain.startsWith('-') || standardTargets.has(chain) || Object.hasOwn(extensionTargets, chain)) {
    fail(`Invalid chain name '${chain}'`);
  }
}

/** Validates what the kernel would: the target exists and suits the table; -m tcp has -p tcp. */
function makeRule(table: TableState, args: readonly string[], fail: (message: string) => never): FakeRule {
  const target = ruleTarget(args);
  if (target && !standardTargets.has(target.name)) {
    const tables = extensionTargets[target.name];
    if (tables) {
      if (target.goto) fail(`goto needs a chain, '${target.name}' is a target`);
      if (!tables.includes(table.name)) fail(`${target.name} target: not valid in the ${table.name} table`);
    } else if (!table.chains.has(target.name)) {
      fail(`Couldn't load target '${target.name}': No such file or directory`);
    } else if (table.isBuiltin(target.name)) {
      fail(`can't jump to built-in chain '${target.name}'`);
    }
  }
  checkProtocolMatches(args, fail);
  return { text: joinTokens(args), args, target };
}

function checkProtocolMatches(args: readonly string[], fail: (message: string) => never): void {
  let protocol: string | undefined;
  const modules: string[] = [];
  for (let index = 0; index < args.length - 1; index++) {
    const token = args[index];
    const value = args[index + 1] ?? '';
    if (token === '--comment') index++;
    else if ((token === '-p' || token === '--protocol') && args[index - 1] !== '!') protocol = value.toLowerCase();
    else if (token === '-m' || token === '--match') modules.push(value);
  }
  for (const module of modules) {
    if ((module === 'tcp' || module === 'udp' || module === 'sctp') && protocol !== module) {
      fail(`${module} match: only valid for protocol ${module} (add -p ${module})`);
    }
  }
}
