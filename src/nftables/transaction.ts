// nft command lines for `nft -f`, written from the rule set's values: one function per kind of
// command, so the full and the partial plan spell every object the same way. Pure.

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

  deleteTable(): void {
    this.push(`delete table ${this.prefix}`);
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

  addContainer(container: NftContainer): void {
    const parts = [`type ${container.type} ;`];
    if (container.flags !== undefined && container.flags.length > 0) parts.push(`flags ${container.flags.join(',')} ;`);
    if (container.timeoutSeconds !== undefined) parts.push(`timeout ${container.timeoutSeconds}s ;`);
    if (container.comment !== undefined) parts.push(`comment ${quoteComment(container.comment)} ;`);
    this.push(`add ${container.kind} ${this.prefix} ${container.name} { ${parts.join(' ')} }`);
  }

  flushContainer(container: Pick<NftContainer, 'kind' | 'name'>): void {
    this.push(`flush ${container.kind} ${this.prefix} ${container.name}`);
  }

  deleteContainer(container: Pick<NftContainer, 'kind' | 'name'>): void {
    this.push(`delete ${container.kind} ${this.prefix} ${container.name}`);
  }

  /** Elements of one container per line, at most `perLine` of them (nft parses a long list faster than many lines). */
  addElements(elements: readonly NftElement[], perLine = ELEMENTS_PER_LINE): void {
    for (const [container, group] of byContainer(elements)) {
      for (let start = 0; start < group.length; start += perLine) {
        const text = group.slice(start, start + perLine).map(elementText).join(', ');
        this.push(`add element ${this.prefix} ${container} { ${text} }`);
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
