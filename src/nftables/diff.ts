// Applied vs desired -> nft transactions. A partial sync is one transaction holding only the
// chains, sets and elements of service ports whose part changed (compared by identity first);
// a full sync rewrites everything in several transactions of about `chainsPerTransaction`
// service chains each, so a cold start at scale never builds one giant transaction. Neither
// lists the table: a full sync takes what it observed once (names only) as an argument. Pure.

import { deepEqual } from '../model/equal.js';
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
  /** Each one `nft -f` run, in order; lines without newlines. */
  readonly transactions: readonly (readonly string[])[];
  readonly stats: NftPlanStats;
  /** Service chains this plan flushes because nothing uses them any more. */
  readonly staleChains: readonly string[];
  /** Chains this plan (re)writes: no longer stale if they were. */
  readonly writtenChains: readonly string[];
  /** The element index as it will be once every transaction applied (full: a new one; partial: commit). */
  readonly elements: ElementIndex;
  readonly elementChanges: ElementChanges | undefined;
}

const CHANGED_NAMES_CAP = 20;

export interface FullPlanOptions {
  /** Delete and re-create the base chains first (once per process: fixes a changed priority). */
  readonly recreateBaseChains: boolean;
  readonly chainsPerTransaction: number;
}

export function planFullSync(desired: NftRuleset, observed: ObservedTable | undefined, options: FullPlanOptions): NftPlan {
  const family = desired.family;
  const transactions: string[][] = [];
  const totals = { bytes: 0, lines: 0, chains: 0, rules: 0 };
  const changedChainNames: string[] = [];
  const finish = (writer: NftWriter): void => {
    if (writer.lines.length === 0) return;
    transactions.push(writer.lines);
    totals.bytes += writer.bytes;
    totals.lines += writer.lines.length;
    totals.rules += writer.rules;
  };

  // 1: the table, base and top-level chains, the shared containers (declared, not yet flushed).
  const head = new NftWriter(family);
  head.addTable();
  if (options.recreateBaseChains) {
    for (const base of BASE_CHAINS) {
      head.addChain({ name: base.name, rules: [] });
      head.deleteChain(base.name);
    }
  }
  const nodePortIPsWanted = desired.containers.some((container) => container.name === SET.nodePortIPs);
  if (!nodePortIPsWanted) head.addContainer({ kind: 'set', name: SET.nodePortIPs, type: family.addressType });
  for (const container of desired.containers) head.addContainer(container);
  for (const chain of desired.staticChains) head.addChain(chain);
  for (const chain of desired.staticChains) head.flushChain(chain.name);
  if (!nodePortIPsWanted) head.deleteContainer({ kind: 'set', name: SET.nodePortIPs });
  for (const chain of desired.staticChains) head.addRules(chain);
  totals.chains += desired.staticChains.length;
  finish(head);

  // 2..n-1: service port chains in slices; a part never straddles two transactions.
  const elements = new ElementIndex();
  const allElements: NftElement[] = [...desired.staticElements];
  const wanted = new Set<string>();
  const wantedSets = new Set<string>();
  let writer = new NftWriter(family);
  let chainsInWriter = 0;
  for (const part of desired.servicePorts.values()) {
    writePart(writer, part);
    for (const chain of part.chains) {
      wanted.add(chain.name);
      if (changedChainNames.length < CHANGED_NAMES_CAP) changedChainNames.push(chain.name);
    }
    for (const set of part.sets) wantedSets.add(set.name);
    allElements.push(...part.elements);
    chainsInWriter += part.chains.length;
    totals.chains += part.chains.length;
    if (chainsInWriter >= options.chainsPerTransaction) {
      finish(writer);
      writer = new NftWriter(family);
      chainsInWriter = 0;
    }
  }
  finish(writer);

  // n: every element at once (the maps swap atomically), then what nothing uses any more.
  const tail = new NftWriter(family);
  const changes = elements.plan([], allElements);
  changes.commit();
  for (const container of desired.containers) tail.flushContainer(container);
  tail.addElements(elements.elements(), containersByName(desired));
  const staleChains = [...(observed?.chains ?? [])].filter((name) => isServiceChainName(name) && !wanted.has(name)).sort();
  for (const name of staleChains) tail.flushChain(name);
  for (const name of [...(observed?.sets ?? [])].filter((set) => isAffinitySetName(set) && !wantedSets.has(set)).sort()) {
    tail.deleteContainer({ kind: 'set', name });
  }
  finish(tail);

  return {
    kind: 'full',
    transactions,
    stats: {
      bytes: totals.bytes,
      lines: totals.lines,
      chainsWritten: totals.chains,
      chainsFlushed: staleChains.length,
      rulesWritten: totals.rules,
      elementsAdded: elements.size,
      elementsDeleted: 0,
      changedChainNames,
    },
    staleChains,
    writtenChains: [...desired.staticChains.map((chain) => chain.name), ...wanted],
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

export function planPartialSync(applied: NftRuleset, desired: NftRuleset, elements: ElementIndex): NftPlan {
  const family: NftFamily = desired.family;
  const newChains: NftChain[] = [];
  const rewrittenChains: NftChain[] = [];
  const staleChains: string[] = [];
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
      if (next === undefined || !deepEqual(next, set)) {
        deletedSets.push(set);
        if (next !== undefined) setRedefined = true;
      }
    }
    const unchangedSets: NftContainer[] = [];
    for (const [name, set] of afterSets) {
      const previous = beforeSets.get(name);
      if (previous === undefined || !deepEqual(previous, set)) addedSets.push(set);
      else unchangedSets.push(set);
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
  for (const [key, after] of desired.servicePorts) visit(applied.servicePorts.get(key), after);
  for (const [key, before] of applied.servicePorts) if (!desired.servicePorts.has(key)) visit(before, undefined);

  const changes = elements.plan(removedElements, addedElements);
  const writer = new NftWriter(family);
  for (const chain of newChains) writer.addChain(chain);
  for (const chain of rewrittenChains) writer.flushChain(chain.name);
  for (const name of staleChains) writer.flushChain(name);
  for (const set of deletedSets) writer.deleteContainer(set);
  for (const set of [...addedSets, ...declaredSets]) writer.addContainer(set);
  for (const chain of [...newChains, ...rewrittenChains]) writer.addRulesBlock(chain);
  writer.deleteElements(changes.deletes);
  writer.addElements(changes.adds, containersByName(desired));

  const written = [...newChains, ...rewrittenChains].map((chain) => chain.name);
  return {
    kind: 'partial',
    transactions: writer.lines.length === 0 ? [] : [writer.lines],
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
    writtenChains: written,
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
