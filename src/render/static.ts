// The node-wide part of kube-proxy's layout: chains whose content does not depend on any one
// service port, the shared dispatch chains (and the trailer of nat KUBE-SERVICES), and the jumps
// from the built-in chains. Rule text follows upstream's writer argument for argument.

import { cidrContains, cidrsOverlap, loopbackCidr, parseCidr, type Cidr, type IPFamily } from '../ip.js';
import {
  kubeExternalServicesChain,
  kubeForwardChain,
  kubeletFirewallChain,
  kubeMarkMasqChain,
  kubeNodePortsChain,
  kubePostroutingChain,
  kubeProxyCanaryChain,
  kubeProxyFirewallChain,
  kubeServicesChain,
  type BuiltinChain,
  type TableName,
} from '../netfilter/vocabulary.js';
import type { ResolvedContext } from './context.js';
import type { BuiltinJump, EnsuredChain, OrderedChain, SharedChain } from './types.js';

const nodePortsTrailerComment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';

/** The address every node has on lo, per family. */
const loopbackAddress: Readonly<Record<IPFamily, string>> = { IPv4: '127.0.0.1', IPv6: '::1' };

function ordered(table: TableName, name: string, rules: readonly string[]): OrderedChain {
  return { kind: 'ordered', table, name, rules };
}

function shared(table: TableName, name: string, trailer: readonly string[] = []): SharedChain {
  return { kind: 'shared', table, name, trailer };
}

/** nodePortAddresses CIDRs of one family (`primary` = the node's IPs); empty = match every local address. */
function familyCidrs(entries: readonly string[], family: IPFamily, nodeIPs: readonly string[]): Cidr[] {
  const cidrs: Cidr[] = [];
  for (const entry of entries) {
    for (const text of entry === 'primary' ? nodeIPs : [entry]) {
      // The other family's CIDRs belong to the other proxier; if only those are given, kube-proxy matches all.
      const cidr = parseCidr(text, { bareAddress: entry === 'primary' });
      if (cidr?.family === family) cidrs.push(cidr);
    }
  }
  return cidrs;
}

function nodePortCidrs(ctx: ResolvedContext): Cidr[] {
  return familyCidrs(ctx.nodePortAddresses, ctx.family, ctx.nodeIPs);
}

/** upstream's NodePortAddresses.ContainsIPv4Loopback: a CIDR inside 127.0.0.0/8 or containing it. */
function allowLoopback(cidrs: readonly Cidr[]): boolean {
  const loopback = loopbackCidr('IPv4');
  return cidrs.length === 0 || cidrs.some((cidr) => cidrsOverlap(cidr, loopback));
}

/**
 * Whether `nodePortAddresses` (CIDRs; empty = every address) lets NodePorts answer on the IPv4
 * loopback. As upstream, 127.0.0.2/32 counts too, although no rule then matches 127.0.0.1.
 */
export function nodePortAddressesAllowLoopback(cidrTexts: readonly string[]): boolean {
  return allowLoopback(familyCidrs(cidrTexts, 'IPv4', []));
}

/** kube-proxy turns localhostNodePorts off unless nodePortAddresses covers the IPv4 loopback;
 * IPv6 has no route_localnet, so never there. */
export function localhostNodePortsEnabled(ctx: ResolvedContext): boolean {
  return ctx.family === 'IPv4' && ctx.localhostNodePorts && allowLoopback(nodePortCidrs(ctx));
}

/** The rules that end nat KUBE-SERVICES: everything not claimed by a service IP goes on to NodePorts. */
export function nodePortsTrailer(ctx: ResolvedContext): string[] {
  const localhost = localhostNodePortsEnabled(ctx);
  const cidrs = nodePortCidrs(ctx);
  const loopback = loopbackCidr(ctx.family);
  if (cidrs.length === 0) {
    const blockLoopback = localhost ? '' : ` ! -d ${loopback.text}`;
    return [`${nodePortsTrailerComment} -m addrtype --dst-type LOCAL${blockLoopback} -j ${kubeNodePortsChain}`];
  }
  // kube-proxy lists the addresses of the node's interfaces inside the CIDRs; a pure renderer
  // knows the node IPs, plus the loopback address that every node has on lo.
  const rules: string[] = [];
  const seen = new Set<string>();
  for (const ip of [loopbackAddress[ctx.family], ...ctx.nodeIPs]) {
    if (seen.has(ip)) continue;
    seen.add(ip);
    if (!cidrs.some((cidr) => cidrContains(cidr, ip))) continue;
    if (cidrContains(loopback, ip) && !localhost) continue;
    rules.push(`${nodePortsTrailerComment} -d ${ip} -j ${kubeNodePortsChain}`);
  }
  return rules;
}

export function staticChains(ctx: ResolvedContext): OrderedChain[] {
  const mark = ctx.masqueradeMark;
  const masquerade = `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${ctx.randomFully ? ' --random-fully' : ''}`;
  const forward: string[] = [];
  // Spurious retransmits marked INVALID by conntrack would otherwise reach a pod un-DNATed and be
  // answered with RST (kubernetes#74839); a liberal conntrack does not mark them.
  // kube-proxy counts them in an nfacct object where it can (kubeproxy_iptables_ct_state_invalid_dropped_packets_total).
  const counted = ctx.invalidDropCounter === undefined ? '' : ` -m nfacct --nfacct-name ${ctx.invalidDropCounter}`;
  if (!ctx.conntrackTCPBeLiberal) forward.push(`-m conntrack --ctstate INVALID${counted} -j DROP`);
  // Accept what we marked so NodePort traffic is forwarded even under a FORWARD policy of DROP,
  // and the rest of those connections after it.
  forward.push(`-m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  forward.push('-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');

  const chains = [
    ordered('nat', kubeMarkMasqChain, [`-j MARK --or-mark ${mark}`]),
    ordered('nat', kubePostroutingChain, [
      `-m mark ! --mark ${mark}/${mark} -j RETURN`,
      // Clear the mark so a packet that traverses the stack again is not masqueraded twice.
      `-j MARK --xor-mark ${mark}`,
      masquerade,
    ]),
    ordered('filter', kubeForwardChain, forward),
    // Empty canaries: if one disappears, the table was flushed behind our back. kube-proxy also
    // keeps one in mangle, which we do not own.
    ordered('nat', kubeProxyCanaryChain, []),
    ordered('filter', kubeProxyCanaryChain, []),
  ];
  if (localhostNodePortsEnabled(ctx)) {
    // route_localnet (needed for localhost NodePorts) would let other hosts reach 127.0.0.0/8
    // services (kubernetes#90259); kubelet's rule, duplicated as kube-proxy does, closes that.
    chains.push(
      ordered('filter', kubeletFirewallChain, [
        '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
      ]),
    );
  }
  return chains;
}

export function sharedChains(ctx: ResolvedContext): SharedChain[] {
  return [
    shared('nat', kubeServicesChain, nodePortsTrailer(ctx)),
    shared('nat', kubeNodePortsChain),
    shared('filter', kubeServicesChain),
    shared('filter', kubeExternalServicesChain),
    shared('filter', kubeNodePortsChain),
    shared('filter', kubeProxyFirewallChain),
  ];
}

/**
 * Chains that must exist without being ours to flush: KUBE-FIREWALL belongs to kubelet unless we
 * write the localnet rule into it (localhost NodePorts), as kube-proxy does.
 */
export function ensuredChains(ctx: ResolvedContext): EnsuredChain[] {
  return localhostNodePortsEnabled(ctx) ? [] : [{ table: 'filter', name: kubeletFirewallChain }];
}

/** upstream's iptablesJumpChains, then iptablesKubeletJumpChains. */
export function builtinJumps(ctx: ResolvedContext): BuiltinJump[] {
  const ctNew = '-m conntrack --ctstate NEW ';
  const jump = (table: TableName, chain: BuiltinChain, extra: string, comment: string, target: string): BuiltinJump => ({
    table,
    chain,
    rule: `${extra}-m comment --comment "${comment}" -j ${target}`,
  });
  const jumps: BuiltinJump[] = [
    jump('filter', 'INPUT', ctNew, 'kubernetes externally-visible service portals', kubeExternalServicesChain),
    jump('filter', 'FORWARD', ctNew, 'kubernetes externally-visible service portals', kubeExternalServicesChain),
    jump('filter', 'INPUT', '', 'kubernetes health check service ports', kubeNodePortsChain),
    jump('filter', 'FORWARD', ctNew, 'kubernetes service portals', kubeServicesChain),
    jump('filter', 'OUTPUT', ctNew, 'kubernetes service portals', kubeServicesChain),
    jump('filter', 'FORWARD', '', 'kubernetes forwarding rules', kubeForwardChain),
    jump('filter', 'INPUT', ctNew, 'kubernetes load balancer firewall', kubeProxyFirewallChain),
    jump('filter', 'OUTPUT', ctNew, 'kubernetes load balancer firewall', kubeProxyFirewallChain),
    jump('filter', 'FORWARD', ctNew, 'kubernetes load balancer firewall', kubeProxyFirewallChain),
    jump('nat', 'OUTPUT', '', 'kubernetes service portals', kubeServicesChain),
    jump('nat', 'PREROUTING', '', 'kubernetes service portals', kubeServicesChain),
    jump('nat', 'POSTROUTING', '', 'kubernetes postrouting rules', kubePostroutingChain),
  ];
  // kubelet's KUBE-FIREWALL, which kube-proxy makes sure of too (its iptablesKubeletJumpChains),
  // whether or not it writes the localnet rule into it.
  jumps.push({ table: 'filter', chain: 'INPUT', rule: `-j ${kubeletFirewallChain}` });
  jumps.push({ table: 'filter', chain: 'OUTPUT', rule: `-j ${kubeletFirewallChain}` });
  // kube-proxy inserts each jump at the top in list order, so the kernel ends up holding them in
  // reverse. RuleSet.jumps is in final kernel order: reverse once here.
  return jumps.reverse();
}
