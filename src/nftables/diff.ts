// Applied vs desired -> nft transactions. A partial sync is one transaction holding only the
// chains, sets and elements of service ports whose part changed (compared by identity first);
// a full sync rewrites everything in several transactions of about `chainsPerTransaction`
// service chains each, so a cold start at scale never builds one giant transaction, and writes
// each transaction's text only when it is reached (the whole of it is ~60 MB at 10k Services).
// Neither lists the table: a full sync takes what it observed once (names only) as an argument.
// Pure.

import { deepEqual } from '../model/equal.js';
import { PersistentMap } from '../model/persistent-map.js';
import { ElementIndex, type ElementChanges } from './elements.js';
import { NftWriter } from './transaction.js';
import type { NftChain, NftContainer, NftElement, NftRuleset, NftServicePortPart } from './types.js';
import { BASE_CHAINS, SET, isAffinitySetName, isServiceChainName, type NftFamily } from './vocabulary.js';

/** Names present in the kernel's table before a full sync (`nft -t list chains/sets`). */
export interface ObservedTable {
  readonly chains: ReadonlySet<string>;
  readonly sets: ReadonlySet<string>;
}

export interface NftPlanStats {
  /** Of a full plan: of the transactions built so far (all of them once `transactions()` was walked). */
  readonly bytes: number;
  readonly lines: number;
  readonly chainsWritten: number;
  /** Stale service chains flushed now (deleted by a later sync). */
  readonly chainsFlushed: number;
  readonly rulesWritten: number;
  readonly elementsAdded: number;
  readonly elementsDeleted: number;
  readonly changedChainNames: readonly string[];
}

export interface NftPlan {
  readonly kind: 'full' | 'partial';
  /** How many `nft -f` runs `transactions()` yields. */
  readonly transactionCount: number;
  /** Each one `nft -f` run, in order, lines without newlines; a full plan builds each when it is reached. */
  transactions(): Iterable<readonly string[]>;
  readonly stats: NftPlanStats;
  /** Service chains this plan flushes because nothing uses them any more. */
  readonly staleChains: readonly string[];
  /** Affinity sets nothing names any more after this plan: left in place, deleted later with the stale chains. */
  readonly staleSets: readonly string[];
  /** Chains this plan (re)writes: no longer stale if they were. */
  readonly writtenChains: readonly string[];
  /** Affinity sets this plan (re)creates: no longer stale if they were. */
  readonly writtenSets: readonly string[];
  /** The element index as it will be once every transaction applied (full: a new one; partial: commit). */
  readonly elements: ElementIndex;
  readonly elementChanges: ElementChanges | undefined;
}

const CHANGED_NAMES_CAP = 20;

/**
 * A partial sync that deletes elements from a map or set left with at most this many flushes it
 * and adds what remains instead: nft 1.0.6 dumps every chain of the family before any
 * `delete element` (1.2-1.6 s on a table of 125k chains, as at 10k Services), while `flush map` +
 * `add map X { elements = ... }` needs only the table and set dumps (0.04-0.05 s on the same table).
 * The one transaction swaps the elements atomically. Typical users: `no-endpoint-services` when a
 * new Service's endpoints arrive, `firewall-ips`. Above it (service-ips at scale) the text would
 * grow with the cluster, so it deletes.
 */
export const REWRITE_CONTAINER_MAX_ELEMENTS = 2000;

export interface FullPlanOptions {
  /** Delete and re-create the base chains first (once per process: fixes a changed priority). */
  readonly recreateBaseChains: boolean;
  readonly chainsPerTransaction: number;
}

export function planFullSync(desired: NftRuleset, observed: ObservedTable | undefined, options: FullPlanOptions): NftPlan {
  const family = desired.family;
  const stats = { bytes: 0, lines: 0, chainsWritten: 0, chainsFlushed: 0, rulesWritten: 0, elementsAdded: 0, elementsDeleted: 0, changedChainNames: [] as string[] };

  // What goes where is decided now; the text of each transaction is written when it is reached.
  const slices: NftServicePortPart[][] = [];
  const allElements: NftElement[] = [...desired.staticElements];
  const wanted = new Set<string>();
  const wantedSets = new Set<string>();
  let slice: NftServicePortPart[] = [];
  let chainsInSlice = 0;
  for (const part of desired.servicePorts.values()) {
    slice.push(part);
    for (const chain of part.chains) {
      wanted.add(chain.name);
      if (stats.changedChainNames.length < CHANGED_NAMES_CAP) stats.changedChainNames.push(chain.name);
    }
    for (const set of part.sets) wantedSets.add(set.name);
    for (const element of part.elements) allElements.push(element);
    chainsInSlice += part.chains.length;
    stats.chainsWritten += part.chains.length;
    if (chainsInSlice >= options.chainsPerTransaction) {
      slices.push(slice);
      slice = [];
      chainsInSlice = 0;
    }
  }
  if (slice.length > 0) slices.push(slice);
  stats.chainsWritten += desired.staticChains.length;

  const elements = new ElementIndex();
  elements.plan([], allElements).commit();
  stats.elementsAdded = elements.size;
  const staleChains = [...(observed?.chains ?? [])].filter((name) => isServiceChainName(name) && !wanted.has(name)).sort();
  const staleSets = [...(observed?.sets ?? [])].filter((set) => isAffinitySetName(set) && !wantedSets.has(set)).sort();
  stats.chainsFlushed = staleChains.length;

  const finish = (writer: NftWriter): readonly string[] => {
    stats.bytes += writer.bytes;
    stats.lines += writer.lines.length;
    stats.rulesWritten += writer.rules;
    return writer.lines;
  };
  // 1: the table, base and top-level chains, the shared containers (declared, not yet flushed).
  const head = (): NftWriter => {
    const writer = new NftWriter(family);
    writer.addTable();
    if (options.recreateBaseChains) {
      for (const base of BASE_CHAINS) {
        writer.addChain({ name: base.name, rules: [] });
        writer.deleteChain(base.name);
      }
    }
    const nodePortIPsWanted = desired.containers.some((container) => container.name === SET.nodePortIPs);
    if (!nodePortIPsWanted) writer.addContainer({ kind: 'set', name: SET.nodePortIPs, type: family.addressType });
    for (const container of desired.containers) writer.addContainer(container);
    for (const chain of desired.staticChains) writer.addChain(chain);
    for (const chain of desired.staticChains) writer.flushChain(chain.name);
    if (!nodePortIPsWanted) writer.deleteContainer({ kind: 'set', name: SET.nodePortIPs });
    for (const chain of desired.staticChains) writer.addRules(chain);
    return writer;
  };
  // 2..n-1: service port chains in slices; a part never straddles two transactions.
  const sliceWriter = (parts: readonly NftServicePortPart[]): NftWriter => {
    const writer = new NftWriter(family);
    for (const part of parts) writePart(writer, part);
    return writer;
  };
  // n: every element at once (the maps swap atomically), then what nothing uses any more.
  const tail = (): NftWriter => {
    const writer = new NftWriter(family);
    for (const container of desired.containers) writer.flushContainer(container);
    writer.addElements(elements.elements(), containersByName(desired));
    for (const name of staleChains) writer.flushChain(name);
    for (const name of staleSets) writer.deleteContainer({ kind: 'set', name });
    return writer;
  };
  function* transactions(): Generator<readonly string[]> {
    stats.bytes = stats.lines = stats.rulesWritten = 0;
    yield finish(head());
    for (const parts of slices) yield finish(sliceWriter(parts));
    yield finish(tail());
  }

  return {
    kind: 'full',
    transactionCount: 2 + slices.length,
    transactions,
    stats,
    staleChains,
    // Unwanted affinity sets are deleted in the last transaction: none is left stale.
    staleSets: [],
    writtenChains: [...desired.staticChains.map((chain) => chain.name), ...wanted],
    writtenSets: [...wantedSets],
    elements,
    elementChanges: undefined,
  };
}

/** Whether a partial sync can take `applied` to `desired`: the node-wide part must be unchanged. */
export function staticPartEqual(applied: NftRuleset, desired: NftRuleset): boolean {
  return (
    deepEqual(applied.family, desired.family) &&
    deepEqual(applied.staticChains, desired.staticChains) &&
    deepEqual(applied.containers, desired.containers) &&
    deepEqual(applied.staticElements, desired.staticElements)
  );
}

export interface PartialPlanOptions {
  /** Containers left with at most this many elements are rewritten rather than deleted from (default REWRITE_CONTAINER_MAX_ELEMENTS; -1: never). */
  readonly rewriteMaxElements?: number;
  /** Affinity sets left stale by earlier plans and still in the kernel: one coming back is deleted and declared anew. */
  readonly pendingStaleSets?: { has(name: string): boolean };
}

export function planPartialSync(applied: NftRuleset, desired: NftRuleset, elements: ElementIndex, options: PartialPlanOptions = {}): NftPlan {
  const rewriteMax = options.rewriteMaxElements ?? REWRITE_CONTAINER_MAX_ELEMENTS;
  const family: NftFamily = desired.family;
  const newChains: NftChain[] = [];
  const rewrittenChains: NftChain[] = [];
  const staleChains: string[] = [];
  const pendingStaleSets = options.pendingStaleSets ?? new Set<string>();
  // A set no part names any more is not deleted now (`delete set` makes nft dump every chain first,
  // 1-5 s at 10k Services): nothing refers to it once its chains are rewritten or flushed, and it
  // goes with the stale chains, beside the syncs. A redefined one is deleted and re-added at once.
  const staleSets: string[] = [];
  const deletedSets: NftContainer[] = [];
  const addedSets: NftContainer[] = [];
  // Unchanged sets a rewritten chain names: re-declared (a no-op for the kernel) so nft knows them
  // without filling its cache (transaction.ts).
  const declaredSets: NftContainer[] = [];
  const removedElements: NftElement[] = [];
  const addedElements: NftElement[] = [];
  const visit = (before: NftServicePortPart | undefined, after: NftServicePortPart | undefined): void => {
    if (before === after) return;
    const beforeChains = new Map((before?.chains ?? []).map((chain) => [chain.name, chain]));
    const afterChains = new Map((after?.chains ?? []).map((chain) => [chain.name, chain]));
    const beforeSets = new Map((before?.sets ?? []).map((set) => [set.name, set]));
    const afterSets = new Map((after?.sets ?? []).map((set) => [set.name, set]));
    let setRedefined = false;
    for (const [name, set] of beforeSets) {
      const next = afterSets.get(name);
      if (next === undefined) {
        staleSets.push(name);
      } else if (!deepEqual(next, set)) {
        deletedSets.push(set);
        setRedefined = true;
      }
    }
    const unchangedSets: NftContainer[] = [];
    for (const [name, set] of afterSets) {
      const previous = beforeSets.get(name);
      if (previous === undefined || !deepEqual(previous, set)) {
        // Still in the kernel from an earlier plan, perhaps declared otherwise (another timeout): replaced.
        if (previous === undefined && pendingStaleSets.has(name)) deletedSets.push(set);
        addedSets.push(set);
      } else {
        unchangedSets.push(set);
      }
    }
    let chainWritten = false;
    for (const [name, chain] of afterChains) {
      const previous = beforeChains.get(name);
      if (previous === undefined) newChains.push(chain);
      // A redefined set is deleted and re-added: every chain of the part that names it is flushed first.
      else if (setRedefined || !deepEqual(previous.rules, chain.rules)) rewrittenChains.push(chain);
      else continue;
      chainWritten = true;
    }
    if (chainWritten) declaredSets.push(...unchangedSets);
    for (const name of beforeChains.keys()) if (!afterChains.has(name)) staleChains.push(name);
    sameElementsAside(before?.elements ?? [], after?.elements ?? [], removedElements, addedElements);
  };
  PersistentMap.forEachChangedShard(applied.servicePorts, desired.servicePorts, (before, after) => {
    after.forEach((part, key) => visit(before.get(key), part));
    before.forEach((part, key) => {
      if (!after.has(key)) visit(part, undefined);
    });
  });

  const changes = elements.plan(removedElements, addedElements);
  const writer = new NftWriter(family);
  for (const chain of newChains) writer.addChain(chain);
  for (const chain of rewrittenChains) writer.flushChain(chain.name);
  for (const name of staleChains) writer.flushChain(name);
  for (const set of deletedSets) writer.deleteContainer(set);
  for (const set of [...addedSets, ...declaredSets]) writer.addContainer(set);
  for (const chain of [...newChains, ...rewrittenChains]) writer.addRulesBlock(chain);
  // A container left with few elements is flushed and written whole rather than deleted from:
  // `flush` needs only nft's table and set caches, `delete element` its whole cache (every chain).
  const rewritten = new Set<string>();
  for (const element of changes.deletes) {
    if (!rewritten.has(element.container) && changes.sizeAfter(element.container) <= rewriteMax) rewritten.add(element.container);
  }
  const containers = containersByName(desired);
  writer.deleteElements(changes.deletes.filter((element) => !rewritten.has(element.container)));
  for (const name of rewritten) {
    const container = containers.get(name);
    if (container !== undefined) writer.flushContainer(container);
  }
  writer.addElements([...changes.adds.filter((element) => !rewritten.has(element.container)), ...[...rewritten].flatMap((name) => changes.elementsAfter(name))], containers);

  const written = [...newChains, ...rewrittenChains].map((chain) => chain.name);
  const transactions: readonly (readonly string[])[] = writer.lines.length === 0 ? [] : [writer.lines];
  return {
    kind: 'partial',
    transactionCount: transactions.length,
    transactions: () => transactions,
    stats: {
      bytes: writer.bytes,
      lines: writer.lines.length,
      chainsWritten: written.length,
      chainsFlushed: staleChains.length,
      rulesWritten: writer.rules,
      elementsAdded: changes.adds.length,
      elementsDeleted: changes.deletes.length,
      changedChainNames: [...written, ...staleChains].slice(0, CHANGED_NAMES_CAP),
    },
    staleChains,
    staleSets,
    writtenChains: written,
    writtenSets: addedSets.map((set) => set.name),
    elements,
    elementChanges: changes,
  };
}

/** Writes a part whole (full sync): its sets, its chains declared and flushed, then their rules. */
function writePart(writer: NftWriter, part: NftServicePortPart): void {
  for (const set of part.sets) writer.addContainer(set);
  for (const chain of part.chains) writer.addChain(chain);
  for (const chain of part.chains) writer.flushChain(chain.name);
  for (const chain of part.chains) writer.addRulesBlock(chain);
}

function containersByName(ruleset: NftRuleset): Map<string, NftContainer> {
  return new Map(ruleset.containers.map((container) => [container.name, container]));
}

/** Elements in `before` but not `after` go to `removed`, the reverse to `added` (same content = same element). */
function sameElementsAside(before: readonly NftElement[], after: readonly NftElement[], removed: NftElement[], added: NftElement[]): void {
  const text = (element: NftElement): string => `${element.container}\u0000${element.key}\u0000${element.value ?? ''}\u0000${element.comment ?? ''}`;
  const afterTexts = new Set(after.map(text));
  const beforeTexts = new Set(before.map(text));
  for (const element of before) if (!afterTexts.has(text(element))) removed.push(element);
  for (const element of after) if (!beforeTexts.has(text(element))) added.push(element);
}
