// The node-wide part of kube-proxy's layout: chains whose content does not depend on any one
// service port, the shared dispatch chains (and the trailer of nat KUBE-SERVICES), and the jumps
// from the built-in chains. Rule text follows upstream's writer argument for argument.

import type { ResolvedContext } from './context.js';
import { cidrContains, isIpv4Loopback, parseIpv4, parseIpv4Cidr, type Ipv4Cidr } from './ipv4.js';
import type { BuiltinJump, EnsuredChain, OrderedChain, SharedChain, TableName } from './types.js';

export const kubeServicesChain = 'KUBE-SERVICES';
export const kubeExternalServicesChain = 'KUBE-EXTERNAL-SERVICES';
export const kubeNodePortsChain = 'KUBE-NODEPORTS';
export const kubePostroutingChain = 'KUBE-POSTROUTING';
export const kubeMarkMasqChain = 'KUBE-MARK-MASQ';
export const kubeForwardChain = 'KUBE-FORWARD';
export const kubeProxyFirewallChain = 'KUBE-PROXY-FIREWALL';
export const kubeProxyCanaryChain = 'KUBE-PROXY-CANARY';
/** kubelet's chain, which kube-proxy duplicates (same single rule) when localhost NodePorts are on.
 * Shared with kubelet: never delete it on cleanup. */
export const kubeletFirewallChain = 'KUBE-FIREWALL';

const nodePortsTrailerComment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';

function ordered(table: TableName, name: string, rules: readonly string[]): OrderedChain {
  return { kind: 'ordered', table, name, rules };
}

function shared(table: TableName, name: string, trailer: readonly string[] = []): SharedChain {
  return { kind: 'shared', table, name, trailer };
}

/** The IPv4 CIDRs of nodePortAddresses (`primary` = the node's IPs); empty = match every local address. */
function nodePortCidrs(ctx: ResolvedContext): Ipv4Cidr[] {
  const cidrs: Ipv4Cidr[] = [];
  for (const entry of ctx.nodePortAddresses) {
    const texts = entry === 'primary' ? ctx.nodeIPs : [entry];
    for (const text of texts) {
      // IPv6 CIDRs belong to the IPv6 proxier; if only those are given, kube-proxy matches all.
      const cidr = parseIpv4Cidr(text);
      if (cidr !== undefined) cidrs.push(cidr);
    }
  }
  return cidrs;
}

const LOOPBACK_NETWORK = parseIpv4('127.0.0.0') ?? 0;

/** upstream's NodePortAddresses.ContainsIPv4Loopback: a CIDR inside 127.0.0.0/8 or containing it. */
function allowLoopback(cidrs: readonly Ipv4Cidr[]): boolean {
  return cidrs.length === 0 || cidrs.some((cidr) => isIpv4Loopback(cidr.network) || cidrContains(cidr, LOOPBACK_NETWORK));
}

/**
 * Whether `nodePortAddresses` (IPv4 CIDRs; empty = every address) lets NodePorts answer on the IPv4
 * loopback. As upstream, 127.0.0.2/32 counts too, although no rule then matches 127.0.0.1.
 */
export function nodePortAddressesAllowLoopback(cidrTexts: readonly string[]): boolean {
  return allowLoopback(cidrTexts.map((text) => parseIpv4Cidr(text)).filter((cidr): cidr is Ipv4Cidr => cidr !== undefined));
}

/** kube-proxy turns localhostNodePorts off unless nodePortAddresses covers the IPv4 loopback. */
export function localhostNodePortsEnabled(ctx: ResolvedContext): boolean {
  return ctx.localhostNodePorts && allowLoopback(nodePortCidrs(ctx));
}

/** The rules that end nat KUBE-SERVICES: everything not claimed by a service IP goes on to NodePorts. */
export function nodePortsTrailer(ctx: ResolvedContext): string[] {
  const localhost = localhostNodePortsEnabled(ctx);
  const cidrs = nodePortCidrs(ctx);
  if (cidrs.length === 0) {
    const blockLoopback = localhost ? '' : ' ! -d 127.0.0.0/8';
    return [`${nodePortsTrailerComment} -m addrtype --dst-type LOCAL${blockLoopback} -j ${kubeNodePortsChain}`];
  }
  // kube-proxy lists the addresses of the node's interfaces inside the CIDRs; a pure renderer
  // knows the node IPs, plus the 127.0.0.1 that every node has on lo.
  const rules: string[] = [];
  const seen = new Set<string>();
  for (const ip of ['127.0.0.1', ...ctx.nodeIPs]) {
    const address = parseIpv4(ip);
    if (address === undefined || seen.has(ip)) continue;
    seen.add(ip);
    if (!cidrs.some((cidr) => cidrContains(cidr, address))) continue;
    if (isIpv4Loopback(address) && !localhost) continue;
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
  const jump = (table: TableName, chain: BuiltinJump['chain'], extra: string, comment: string, target: string): BuiltinJump => ({
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
