// nft command lines for `nft -f`, written from the rule set's values: one function per kind of
// command, so the full and the partial plan spell every object the same way. Pure.
//
// Cache-light forms (nft 1.0.6, measured in docs/nftables.md): before `add rule` or `add element`
// nft dumps every chain, set, flowtable and object of the family into its cache, a cost that grows
// with the table (110k chains at 10k Services) however small the transaction. `add chain X { rules }`
// and `add set|map X { decl ; elements = { ... } }` need only the table cache, so service chains
// and elements are written that way; a set a rule names must then be declared in the same
// transaction (nft looks it up in its cache). Deletes (`delete element`, `delete chain`) still fill
// the whole cache: they stay off the common paths (stale chains are flushed, deleted later).

import type { NftChain, NftContainer, NftElement } from './types.js';
import { KUBE_PROXY_TABLE, TABLE_COMMENT, quoteComment, type NftFamily } from './vocabulary.js';

export class NftWriter {
  readonly lines: string[] = [];
  bytes = 0;
  rules = 0;
  private readonly prefix: string;

  constructor(readonly family: NftFamily) {
    this.prefix = `${family.table} ${KUBE_PROXY_TABLE}`;
  }

  private push(line: string): void {
    this.lines.push(line);
    this.bytes += line.length + 1;
  }

  addTable(): void {
    this.push(`add table ${this.prefix} { comment ${quoteComment(TABLE_COMMENT)} ; }`);
  }

  addChain(chain: NftChain): void {
    const parts: string[] = [];
    if (chain.base !== undefined) parts.push(`type ${chain.base.type} hook ${chain.base.hook} priority ${chain.base.priority} ;`);
    if (chain.comment !== undefined) parts.push(`comment ${quoteComment(chain.comment)} ;`);
    this.push(`add chain ${this.prefix} ${chain.name}${parts.length > 0 ? ` { ${parts.join(' ')} }` : ''}`);
  }

  flushChain(name: string): void {
    this.push(`flush chain ${this.prefix} ${name}`);
  }

  deleteChain(name: string): void {
    this.push(`delete chain ${this.prefix} ${name}`);
  }

  addRules(chain: NftChain): void {
    for (const rule of chain.rules) this.push(`add rule ${this.prefix} ${chain.name} ${rule}`);
    this.rules += chain.rules.length;
  }

  /**
   * The chain's rules appended in the cache-light block form (`add chain T X { r1 ; r2 ; }`); the
   * chain must exist and be empty (declared and flushed earlier in the transaction). Not for base
   * chains: the block carries no hook.
   */
  addRulesBlock(chain: NftChain): void {
    if (chain.rules.length === 0) return;
    this.push(`add chain ${this.prefix} ${chain.name} { ${chain.rules.map((rule) => `${rule} ;`).join(' ')} }`);
    this.rules += chain.rules.length;
  }

  addContainer(container: NftContainer): void {
    this.push(`add ${container.kind} ${this.prefix} ${container.name} { ${declaration(container).join(' ')} }`);
  }

  flushContainer(container: Pick<NftContainer, 'kind' | 'name'>): void {
    this.push(`flush ${container.kind} ${this.prefix} ${container.name}`);
  }

  deleteContainer(container: Pick<NftContainer, 'kind' | 'name'>): void {
    this.push(`delete ${container.kind} ${this.prefix} ${container.name}`);
  }

  /**
   * Elements of one container per line, at most `perLine` of them (nft parses a long list faster
   * than many lines), each line the container's declaration with `elements = { ... }` (cache-light,
   * see above). `containers` holds the declaration of every container an element names.
   */
  addElements(elements: readonly NftElement[], containers: ReadonlyMap<string, NftContainer>, perLine = ELEMENTS_PER_LINE): void {
    for (const [name, group] of byContainer(elements)) {
      const container = containers.get(name);
      if (container === undefined) throw new Error(`nft writer: element of undeclared ${name}`);
      const head = `add ${container.kind} ${this.prefix} ${name} { ${declaration(container).join(' ')} elements = {`;
      for (let start = 0; start < group.length; start += perLine) {
        this.push(`${head} ${group.slice(start, start + perLine).map(elementText).join(', ')} } ; }`);
      }
    }
  }

  deleteElements(elements: readonly NftElement[], perLine = ELEMENTS_PER_LINE): void {
    for (const [container, group] of byContainer(elements)) {
      for (let start = 0; start < group.length; start += perLine) {
        this.push(`delete element ${this.prefix} ${container} { ${group.slice(start, start + perLine).map((element) => element.key).join(', ')} }`);
      }
    }
  }
}

export const ELEMENTS_PER_LINE = 256;

function declaration(container: NftContainer): string[] {
  const parts = [`type ${container.type} ;`];
  if (container.flags !== undefined && container.flags.length > 0) parts.push(`flags ${container.flags.join(',')} ;`);
  if (container.timeoutSeconds !== undefined) parts.push(`timeout ${container.timeoutSeconds}s ;`);
  if (container.comment !== undefined) parts.push(`comment ${quoteComment(container.comment)} ;`);
  return parts;
}

function elementText(element: NftElement): string {
  const comment = element.comment !== undefined ? ` comment ${quoteComment(element.comment)}` : '';
  return element.value !== undefined ? `${element.key}${comment} : ${element.value}` : `${element.key}${comment}`;
}

function byContainer(elements: readonly NftElement[]): Map<string, NftElement[]> {
  const groups = new Map<string, NftElement[]>();
  for (const element of elements) {
    let group = groups.get(element.container);
    if (group === undefined) groups.set(element.container, (group = []));
    group.push(element);
  }
  return groups;
}
