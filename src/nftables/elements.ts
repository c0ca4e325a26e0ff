// What the kernel's shared maps and sets hold, as far as we know: one entry per (container, key)
// with the number of service ports that contribute it (several ports share a cluster IP in the
// cluster-ips set). Planning a change reads it without touching it; the proxier commits the plan
// once nft accepted the transaction. Pure.

import type { NftElement } from './types.js';

interface Entry {
  readonly element: NftElement;
  readonly refs: number;
}

export interface ElementChanges {
  readonly deletes: readonly NftElement[];
  readonly adds: readonly NftElement[];
  /** How many elements `container` holds once the changes are applied. */
  sizeAfter(container: string): number;
  /** Every element of `container` once the changes are applied. */
  elementsAfter(container: string): NftElement[];
  /** Applies the planned changes to the index the plan was made from. */
  commit(): void;
}

const idOf = (element: NftElement): string => `${element.container}\u0000${element.key}`;
const sameContent = (a: NftElement, b: NftElement): boolean => a.value === b.value && a.comment === b.comment;

export class ElementIndex {
  private readonly entries = new Map<string, Entry>();
  /** Elements per container. */
  private readonly sizes = new Map<string, number>();

  get size(): number {
    return this.entries.size;
  }

  /** Every element once, in insertion order. */
  elements(): NftElement[] {
    return [...this.entries.values()].map((entry) => entry.element);
  }

  /** The changes that take the kernel from this index to it minus `removed` plus `added`. */
  plan(removed: readonly NftElement[], added: readonly NftElement[]): ElementChanges {
    const overlay = new Map<string, Entry | undefined>();
    const current = (id: string): Entry | undefined => (overlay.has(id) ? overlay.get(id) : this.entries.get(id));
    for (const element of removed) {
      const id = idOf(element);
      const entry = current(id);
      if (entry === undefined) continue;
      overlay.set(id, entry.refs <= 1 ? undefined : { element: entry.element, refs: entry.refs - 1 });
    }
    for (const element of added) {
      const id = idOf(element);
      const entry = current(id);
      // A later contributor with other content wins, as the last write would in the kernel.
      overlay.set(id, { element: entry === undefined || !sameContent(entry.element, element) ? element : entry.element, refs: (entry?.refs ?? 0) + 1 });
    }
    const deletes: NftElement[] = [];
    const adds: NftElement[] = [];
    for (const [id, next] of overlay) {
      const before = this.entries.get(id);
      if (before !== undefined && (next === undefined || !sameContent(before.element, next.element))) deletes.push(before.element);
      if (next !== undefined && (before === undefined || !sameContent(before.element, next.element))) adds.push(next.element);
    }
    const sizeChange = new Map<string, number>();
    for (const [id, next] of overlay) {
      const had = this.entries.has(id);
      const has = next !== undefined;
      if (had === has) continue;
      const container = (next ?? this.entries.get(id))?.element.container ?? '';
      sizeChange.set(container, (sizeChange.get(container) ?? 0) + (has ? 1 : -1));
    }
    return {
      deletes,
      adds,
      sizeAfter: (container) => (this.sizes.get(container) ?? 0) + (sizeChange.get(container) ?? 0),
      elementsAfter: (container) => {
        const result: NftElement[] = [];
        for (const [id, entry] of this.entries) {
          if (entry.element.container !== container) continue;
          const next = overlay.has(id) ? overlay.get(id) : entry;
          if (next !== undefined) result.push(next.element);
        }
        for (const [id, next] of overlay) if (next !== undefined && next.element.container === container && !this.entries.has(id)) result.push(next.element);
        return result;
      },
      commit: () => {
        for (const [id, next] of overlay) {
          if (next === undefined) this.entries.delete(id);
          else this.entries.set(id, next);
        }
        for (const [container, change] of sizeChange) this.sizes.set(container, (this.sizes.get(container) ?? 0) + change);
      },
    };
  }
}
