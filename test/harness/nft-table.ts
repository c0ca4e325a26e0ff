// The nftables mode's table of a namespace in a form two nodes can be compared by: `nft -j list
// table ip|ip6 kube-proxy` without handles, set and map elements sorted, rules keyed by their chain
// and position (their order within a chain is part of the contract; nothing else's order is).

import type { Netns } from './netns.js';

export type NormalisedTable = Readonly<Record<string, unknown>>;

/** The table of a family (`ip` or `ip6`), or a string saying it is absent. */
export async function normalisedNftTable(netns: Pick<Netns, 'exec'>, family: 'ip' | 'ip6' = 'ip'): Promise<NormalisedTable | string> {
  const listed = await netns.exec('nft', ['-j', 'list', 'table', family, 'kube-proxy']);
  if (listed.code !== 0) return `absent: ${listed.stderr.trim()}`;
  const objects = (JSON.parse(listed.stdout) as { nftables: Record<string, Record<string, unknown>>[] }).nftables;
  const out: Record<string, unknown> = {};
  const ruleIndex = new Map<string, number>();
  for (const object of objects) {
    const [kind, body] = Object.entries(object)[0] ?? [];
    if (kind === undefined || body === undefined || kind === 'metainfo') continue;
    const { handle: _handle, ...rest } = body;
    if (Array.isArray(rest.elem)) rest.elem = [...(rest.elem as unknown[])].map((element) => JSON.stringify(element)).sort();
    if (kind === 'rule') {
      const chain = String(rest.chain);
      const index = ruleIndex.get(chain) ?? 0;
      ruleIndex.set(chain, index + 1);
      out[`rule ${chain} #${index}`] = rest;
    } else {
      out[`${kind} ${String(rest.name)}`] = rest;
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}
