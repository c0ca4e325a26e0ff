// The payload for `kube-proxy-ts cleanup`: delete every jump from a built-in chain into our
// chains, then flush and delete our chains, leaving other owners' chains (kubelet's) alone. Pure.

import { isBuiltinChain, isOwnedChain, jumpTarget, type TableName } from '../netfilter/vocabulary.js';

/** Builds a `--noflush` payload removing our jumps and chains from the given `iptables-save` texts. */
export function cleanupPayload(saved: ReadonlyMap<TableName, string>): string {
  const out: string[] = [];
  for (const [table, text] of saved) {
    const chains: string[] = [];
    const jumps: string[] = [];
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) {
        const name = line.slice(1).split(' ')[0] ?? '';
        if (isOwnedChain(name)) chains.push(name);
      } else if (line.startsWith('-A ')) {
        const [, chain] = line.split(' ');
        const target = jumpTarget(line);
        if (chain !== undefined && isBuiltinChain(chain) && target !== undefined && isOwnedChain(target)) {
          // iptables-save prints a rule in a form that `-D` accepts as is.
          jumps.push(`-D ${line.slice(3)}`);
        }
      }
    }
    if (chains.length === 0 && jumps.length === 0) continue;
    out.push(`*${table}`);
    for (const chain of chains) out.push(`:${chain} - [0:0]`);
    out.push(...jumps);
    for (const chain of chains) out.push(`-X ${chain}`);
    out.push('COMMIT');
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
