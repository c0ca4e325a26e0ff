// Writes iptables-restore payloads: a builder that keeps each table's lines in the order
// iptables-restore needs them, and the complete payload of a RuleSet (first sync, periodic full
// sync, the `render` command). Pure.

import type { BuiltinJump, OrderedChain, RuleSet } from '../render/types.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';

/** Tables in payload order. */

/** Enough chain names to read in a log line; `changedChainCount` says how many there were. */
const CHANGED_CHAIN_NAMES_CAP = 50;

export interface SyncStats {
  readonly bytes: number;
  readonly lines: number;
  /** Chains declared (so flushed) and written whole: owned, static and rewritten shared chains. */
  readonly chainsWritten: number;
  /** Chains flushed and deleted with `-X`. */
  readonly chainsDeleted: number;
  /** Service rules written into shared chains (`-I` in a partial sync, `-A` in a full one). */
  readonly sharedRulesAdded: number;
  /** Service rules removed from shared chains with `-D`. */
  readonly sharedRulesDeleted: number;
  /** The first chains the payload touches (written, deleted or edited in place), capped. */
  readonly changedChainNames: readonly string[];
  readonly changedChainCount: number;
  /** `-A` and `-I` lines per table, 0 for a table the payload does not write into
   * (`kubeproxy_sync_proxy_rules_iptables_last`). */
  readonly rulesWritten: Readonly<Record<TableName, number>>;
}

export interface BuiltPayload {
  /** '' when there is nothing to do (the caller skips the restore). Joined from `chunks` on first read. */
  readonly payload: string;
  /**
   * The payload as consecutive pieces, each ending with a newline; empty when there is nothing to
   * do. Iterating it again yields the same pieces; the bodies of service port chains in a full
   * payload are generated during the iteration (never held whole: ~37 MB at 10k Services).
   */
  readonly chunks: Iterable<string>;
  readonly stats: SyncStats;
}

/** Lines per chunk: large enough to keep chunks few, small enough that line strings never pile up. */
const LINES_PER_CHUNK = 4096;

/**
 * Lines kept as joined chunks of LINES_PER_CHUNK: a full sync at 10k Services x 10 endpoints has
 * 500k lines, and holding each as its own string until one final join cost ~130 MB of peak memory
 * (bench/compare/memory-probe.ts); as chunks the payload is held about once.
 */
class LineChunks {
  readonly chunks: string[] = [];
  private pending: string[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(line: string): void {
    this.pending.push(line);
    this.count++;
    if (this.pending.length >= LINES_PER_CHUNK) this.flush();
  }

  /** All lines as newline-terminated chunks. */
  done(): string[] {
    this.flush();
    return this.chunks;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(`${this.pending.join('\n')}\n`);
    this.pending = [];
  }
}

/** A payload whose text is only joined when someone reads it (the restore itself writes the chunks). */
class ChunkedPayload implements BuiltPayload {
  private text: string | undefined;

  constructor(
    readonly chunks: Iterable<string>,
    readonly stats: SyncStats,
  ) {}

  get payload(): string {
    if (this.text === undefined) {
      const pieces: string[] = [];
      for (const chunk of this.chunks) pieces.push(chunk);
      this.text = pieces.join('');
    }
    return this.text;
  }
}

/** Chains whose `-A` lines are generated when the payload is written (see writeDeferredChains). */
type DeferredBodies = () => Iterable<OrderedChain>;

/**
 * One table's lines, grouped by phase because iptables-restore applies them in order: a chain must
 * be declared before a rule jumps to it, and it can only be deleted (`-X`) once it is empty and no
 * rule references it any more.
 */
class TableSection {
  /**
   * Names of the chains to declare (`:CHAIN - [0:0]`: creates the chain, or flushes it under
   * --noflush), written sorted: see sortedDeclarations.
   */
  readonly declarations: string[] = [];
  /** `-D`: shared rules and built-in jumps that go away. */
  readonly deletions = new LineChunks();
  /** `-A`: bodies of declared chains. */
  readonly bodies = new LineChunks();
  /** `-I <shared chain> 1`: new service rules in shared chains. */
  readonly inserts = new LineChunks();
  /** `-A` / `-I` into built-in chains. */
  readonly jumps = new LineChunks();
  /** `-X`: stale chains, last, once nothing references them. */
  readonly removals = new LineChunks();
  /** Bodies generated on iteration, after `bodies`. */
  readonly deferred: DeferredBodies[] = [];
  deferredLines = 0;
  deferredBytes = 0;

  get lineCount(): number {
    return (
      this.declarations.length + this.deletions.length + this.bodies.length + this.deferredLines +
      this.inserts.length + this.jumps.length + this.removals.length
    );
  }
}

/** Collects payload lines per table and the stats that describe them. */
export class PayloadBuilder {
  private readonly sections = new Map<TableName, TableSection>();
  private chainsWritten = 0;
  private chainsDeleted = 0;
  private sharedRulesAdded = 0;
  private sharedRulesDeleted = 0;
  private readonly changedNames: string[] = [];
  private changedCount = 0;
  /** Shared chains edited in place are noted once, however many rules change in them. */
  private readonly editedSharedChains = new Set<string>();

  /** Makes the table appear in the payload even when nothing is written into it. */
  touch(table: TableName): void {
    this.section(table);
  }

  /** Declares (creates or flushes) a chain and writes all its rules. */
  writeChain(table: TableName, chain: string, rules: readonly string[]): void {
    const section = this.section(table);
    section.declarations.push(chain);
    const bodies = section.bodies;
    for (const rule of rules) bodies.push(`-A ${chain} ${rule}`);
    this.chainsWritten++;
    this.noteChanged(chain);
  }

  /**
   * Declares chains now and writes their rules only when the payload is iterated, from `bodies()`,
   * which must yield the same chains (in the order their rules should appear) every time it is called.
   */
  writeDeferredChains(table: TableName, chains: readonly OrderedChain[], bodies: DeferredBodies): void {
    const section = this.section(table);
    for (const chain of chains) {
      section.declarations.push(chain.name);
      section.deferredLines += chain.rules.length;
      // "-A <chain> <rule>\n"; names and rules are ASCII, but count bytes to be exact.
      for (const rule of chain.rules) section.deferredBytes += 5 + chain.name.length + Buffer.byteLength(rule);
      this.chainsWritten++;
      this.noteChanged(chain.name);
    }
    section.deferred.push(bodies);
  }

  /** Flushes a chain and deletes it at the end of the table, after every `-D`. */
  deleteChain(table: TableName, chain: string): void {
    const section = this.section(table);
    section.declarations.push(chain);
    section.removals.push(`-X ${chain}`);
    this.chainsDeleted++;
    this.noteChanged(chain);
  }

  /** Inserts a service rule at the top of a shared chain: order among service rules does not matter
   * and the trailer stays last. */
  insertSharedRule(table: TableName, chain: string, rule: string): void {
    this.section(table).inserts.push(`-I ${chain} 1 ${rule}`);
    this.sharedRulesAdded++;
    this.noteSharedEdit(table, chain);
  }

  deleteSharedRule(table: TableName, chain: string, rule: string): void {
    this.section(table).deletions.push(`-D ${chain} ${rule}`);
    this.sharedRulesDeleted++;
    this.noteSharedEdit(table, chain);
  }

  /** Counts service rules a rewritten shared chain carries (its body goes through writeChain). */
  countSharedRulesWritten(count: number): void {
    this.sharedRulesAdded += count;
  }

  appendJump(jump: BuiltinJump): void {
    this.section(jump.table).jumps.push(`-A ${jump.chain} ${jump.rule}`);
  }

  /** Callers insert in reverse of the wanted order: each `-I 1` lands above the previous one. */
  insertJump(jump: BuiltinJump): void {
    this.section(jump.table).jumps.push(`-I ${jump.chain} 1 ${jump.rule}`);
  }

  deleteJump(jump: BuiltinJump): void {
    this.section(jump.table).deletions.push(`-D ${jump.chain} ${jump.rule}`);
  }

  build(): BuiltPayload {
    // Per table: the eager pieces before the deferred bodies, the deferred bodies, the eager rest.
    const layout: { before: string[]; deferred: DeferredBodies[]; table: TableName; after: string[] }[] = [];
    let lines = 0;
    let bytes = 0;
    const rulesWritten: Record<TableName, number> = { filter: 0, nat: 0 };
    for (const table of TABLES) {
      const section = this.sections.get(table);
      if (section === undefined) continue;
      rulesWritten[table] = section.bodies.length + section.deferredLines + section.inserts.length + section.jumps.length;
      const before = [`*${table}\n`, ...sortedDeclarations(section.declarations), ...section.deletions.done(), ...section.bodies.done()];
      const after = [...section.inserts.done(), ...section.jumps.done(), ...section.removals.done(), 'COMMIT\n'];
      for (const chunk of [...before, ...after]) bytes += Buffer.byteLength(chunk);
      bytes += section.deferredBytes;
      lines += section.lineCount + 2;
      layout.push({ before, deferred: section.deferred, table, after });
    }
    const chunks: Iterable<string> = layout.some((table) => table.deferred.length > 0)
      ? { [Symbol.iterator]: () => generateChunks(layout) }
      : layout.flatMap((table) => [...table.before, ...table.after]);
    return new ChunkedPayload(chunks, {
      bytes,
      lines,
      chainsWritten: this.chainsWritten,
      chainsDeleted: this.chainsDeleted,
      sharedRulesAdded: this.sharedRulesAdded,
      sharedRulesDeleted: this.sharedRulesDeleted,
      changedChainNames: this.changedNames,
      changedChainCount: this.changedCount,
      rulesWritten,
    });
  }

  private section(table: TableName): TableSection {
    let section = this.sections.get(table);
    if (section === undefined) {
      section = new TableSection();
      this.sections.set(table, section);
    }
    return section;
  }

  private noteChanged(chain: string): void {
    this.changedCount++;
    if (this.changedNames.length < CHANGED_CHAIN_NAMES_CAP) this.changedNames.push(chain);
  }

  private noteSharedEdit(table: TableName, chain: string): void {
    const key = chainKey(table, chain);
    if (this.editedSharedChains.has(key)) return;
    this.editedSharedChains.add(key);
    this.noteChanged(chain);
  }
}

/**
 * Chain declarations in byte order of their names, as chunks. iptables-legacy-restore keeps a
 * table's chains in one name-sorted linked list and walks all of it every 355 new chains to rebuild
 * its index; when the chains arrive sorted, each lands at the tail, right after the one allocated
 * before it, and those walks run through memory in order instead of jumping about. At 10k Services
 * (127k chains) that took a first sync's restore from ~14 s to ~10 s; upstream kube-proxy declares
 * them in Go map order (docs/benchmarks.md).
 */
function sortedDeclarations(chains: readonly string[]): string[] {
  const lines = new LineChunks();
  // Names are ASCII, so comparing UTF-16 code units is strcmp's byte order.
  for (const chain of [...chains].sort()) lines.push(`:${chain} - [0:0]`);
  return lines.done();
}

function* generateChunks(
  layout: readonly { before: readonly string[]; deferred: readonly DeferredBodies[]; table: TableName; after: readonly string[] }[],
): Generator<string> {
  for (const table of layout) {
    yield* table.before;
    for (const bodies of table.deferred) {
      let pending: string[] = [];
      for (const chain of bodies()) {
        for (const rule of chain.rules) pending.push(`-A ${chain.name} ${rule}`);
        if (pending.length >= LINES_PER_CHUNK) {
          yield `${pending.join('\n')}\n`;
          pending = [];
        }
      }
      if (pending.length > 0) yield `${pending.join('\n')}\n`;
    }
    yield* table.after;
  }
}

/** A chain's identity across tables (KUBE-SERVICES exists in both filter and nat). */
export function chainKey(table: TableName, chain: string): string {
  return `${table} ${chain}`;
}

/** Service port keys in the canonical order of shared-chain rules. */
export function sortedServicePortKeys(ruleSet: RuleSet): string[] {
  return [...ruleSet.servicePorts.keys()].sort();
}

/**
 * The service rules of each shared chain (keyed by chainKey), ordered by service port key then by
 * the order the service port lists them. `only` restricts the result to some chains.
 */
export function sharedServiceRules(
  ruleSet: RuleSet,
  sortedKeys: readonly string[],
  only?: ReadonlySet<string>,
): Map<string, string[]> {
  const byChain = new Map<string, string[]>();
  for (const key of sortedKeys) {
    const servicePort = ruleSet.servicePorts.get(key);
    if (servicePort === undefined) continue;
    for (const shared of servicePort.sharedRules) {
      const id = chainKey(shared.table, shared.chain);
      if (only !== undefined && !only.has(id)) continue;
      let rules = byChain.get(id);
      if (rules === undefined) {
        rules = [];
        byChain.set(id, rules);
      }
      rules.push(shared.rule);
    }
  }
  return byChain;
}

export interface FullPayloadOptions {
  /** 'append' on a fresh node (and for `render`), 'insert' to put jumps above rules others already
   * have in built-in chains, 'none' to leave built-in chains alone. */
  readonly jumps: 'append' | 'insert' | 'none';
  /** Which jumps to write instead of all of `ruleSet.jumps` (a full sync writes only missing ones). */
  readonly onlyJumps?: readonly BuiltinJump[];
  /** Our chains the kernel has (saved-tables.ts): those not desired any more are deleted. */
  readonly existingChains?: ReadonlyMap<TableName, ReadonlySet<string>>;
  /** Built-in rules into our chains that match no desired jump: deleted before their targets go. */
  readonly staleJumps?: readonly BuiltinJump[];
  /** Ensured chains that exist (left alone); the others are created. Unknown: all are declared. */
  readonly presentEnsuredChains?: ReadonlyMap<TableName, ReadonlySet<string>>;
  /** false when earlier restores already wrote every service port's own chains (full-parts.ts). Default true. */
  readonly servicePortChains?: boolean;
}

/** The complete payload as a string (what `render` prints). */
export function fullPayload(ruleSet: RuleSet, options: FullPayloadOptions): string {
  return buildFullPayload(ruleSet, options).payload;
}

/**
 * Every chain we own, declared and written whole, in canonical order: static chains, shared chains
 * (service rules then trailer), then each service port's chains by key. Built-in chains are never
 * declared, so rules others keep in them survive a --noflush restore.
 */
export function buildFullPayload(ruleSet: RuleSet, options: FullPayloadOptions): BuiltPayload {
  const builder = new PayloadBuilder();
  for (const table of TABLES) builder.touch(table);
  const sortedKeys = sortedServicePortKeys(ruleSet);
  const wanted = desiredChainNames(ruleSet, options.existingChains);

  // Stale chains are declared along with ours; their -X lands at the end of the table.
  if (options.existingChains !== undefined) {
    for (const [table, existing] of options.existingChains) {
      const desired = wanted.get(table);
      for (const chain of existing) {
        if (desired === undefined || !desired.has(chain)) builder.deleteChain(table, chain);
      }
    }
  }
  for (const jump of options.staleJumps ?? []) builder.deleteJump(jump);

  for (const chain of ruleSet.staticChains) builder.writeChain(chain.table, chain.name, chain.rules);
  // Declaring a chain flushes it: only the missing ones, so what kubelet keeps in them stays.
  for (const chain of ruleSet.ensuredChains) {
    if (options.presentEnsuredChains?.get(chain.table)?.has(chain.name) !== true) builder.writeChain(chain.table, chain.name, []);
  }

  const sharedRules = sharedServiceRules(ruleSet, sortedKeys);
  for (const shared of ruleSet.sharedChains) {
    const id = chainKey(shared.table, shared.name);
    const serviceRules = sharedRules.get(id) ?? [];
    sharedRules.delete(id);
    builder.writeChain(shared.table, shared.name, serviceRules.length === 0 ? shared.trailer : [...serviceRules, ...shared.trailer]);
    builder.countSharedRulesWritten(serviceRules.length);
  }
  // Rules aimed at a chain the RuleSet does not declare as shared are a renderer bug; writing them
  // anyway makes the restore fail on a named line instead of losing them silently.
  for (const [id, rules] of sharedRules) {
    const [table, chain] = id.split(' ') as [TableName, string];
    for (const rule of rules) builder.insertSharedRule(table, chain, rule);
  }

  if (options.servicePortChains ?? true) {
    // The bulk of the payload: declared now, rules generated while the restore reads them.
    for (const table of TABLES) {
      const chainsOf = function* (): Generator<OrderedChain> {
        for (const key of sortedKeys) {
          const servicePort = ruleSet.servicePorts.get(key);
          if (servicePort === undefined) continue;
          for (const chain of servicePort.chains) if (chain.table === table) yield chain;
        }
      };
      const chains = [...chainsOf()];
      if (chains.length > 0) builder.writeDeferredChains(table, chains, chainsOf);
    }
  }

  const jumps = options.onlyJumps ?? ruleSet.jumps;
  switch (options.jumps) {
    case 'append':
      for (const jump of jumps) builder.appendJump(jump);
      break;
    case 'insert':
      for (let index = jumps.length - 1; index >= 0; index--) {
        const jump = jumps[index];
        if (jump !== undefined) builder.insertJump(jump);
      }
      break;
    case 'none':
      break;
    default: {
      const unreachable: never = options.jumps;
      return unreachable;
    }
  }
  return builder.build();
}

/** Names of the chains a RuleSet writes, per table; only built when stale chains must be found. */
function desiredChainNames(
  ruleSet: RuleSet,
  existingChains: ReadonlyMap<TableName, ReadonlySet<string>> | undefined,
): Map<TableName, Set<string>> {
  const names = new Map<TableName, Set<string>>();
  if (existingChains === undefined || [...existingChains.values()].every((chains) => chains.size === 0)) return names;
  const add = (table: TableName, chain: string): void => {
    let set = names.get(table);
    if (set === undefined) {
      set = new Set();
      names.set(table, set);
    }
    set.add(chain);
  };
  for (const chain of ruleSet.staticChains) add(chain.table, chain.name);
  for (const chain of ruleSet.sharedChains) add(chain.table, chain.name);
  for (const servicePort of ruleSet.servicePorts.values()) {
    for (const chain of servicePort.chains) add(chain.table, chain.name);
  }
  return names;
}
