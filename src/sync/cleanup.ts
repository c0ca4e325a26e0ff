// The payload for `kube-proxy-ts cleanup`: delete every jump from a built-in chain into our
// chains, then flush and delete our chains, leaving other owners' chains (kubelet's) alone. Pure.

import type { TableName } from '../render/types.js';

const OWNED_FIXED = new Set([
  'KUBE-SERVICES',
  'KUBE-EXTERNAL-SERVICES',
  'KUBE-NODEPORTS',
  'KUBE-POSTROUTING',
  'KUBE-MARK-MASQ',
  'KUBE-FORWARD',
  'KUBE-PROXY-FIREWALL',
  'KUBE-PROXY-CANARY',
]);
const OWNED_PREFIXES = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-'];
const BUILTIN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/** Chains kube-proxy (and so kube-proxy-ts) owns; kubelet's KUBE-FIREWALL, KUBE-MARK-DROP and
 * KUBE-KUBELET-CANARY are not ours and are never touched. */
export function isOwnedChain(name: string): boolean {
  return OWNED_FIXED.has(name) || OWNED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

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
        const target = / -[jg] (\S+)/.exec(line)?.[1];
        if (chain !== undefined && BUILTIN.has(chain) && target !== undefined && isOwnedChain(target)) {
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
