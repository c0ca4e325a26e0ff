// The agent's configuration and the node's addresses -> the NftContext the renderer takes: the
// local-traffic detector in nft words (upstream's IfLocalNFT/IfNotLocalNFT), the masquerade mark
// as kube-proxy formats it, and the addresses that accept NodePorts. Pure.

import type { AgentConfig } from '../config/index.js';
import { clusterCIDRFor, nodePortAddressList, ofFamily } from '../agent/context.js';
import { cidrContains, familyOf, loopbackCidr, parseCidr, type IPFamily } from '../ip.js';
import type { NodeInfo } from '../model/types.js';
import type { NftContext } from './types.js';
import { nftFamily } from './vocabulary.js';

/** The settings the nft rules depend on (the agent's config, or `render`'s flags). */
export type NftSettings = Pick<AgentConfig, 'nodeIPs' | 'masqueradeBit' | 'masqueradeAll' | 'detectLocal' | 'clusterCIDRs' | 'nodePortAddresses'>;

/** What the node itself says, beside the settings. */
export interface NftNodeInputs {
  /** The cluster's ServiceCIDRs of any family (this family's go into the drop rule). */
  readonly serviceCIDRs?: readonly string[];
  /** The addresses on the node's interfaces; unknown (`render`) means the node IPs stand in for them. */
  readonly interfaceAddresses?: readonly string[];
}

export function nftContextFor(config: NftSettings, node: NodeInfo, family: IPFamily, inputs: NftNodeInputs = {}): NftContext {
  const serviceCIDRs = inputs.serviceCIDRs ?? [];
  // The configured node IP of this family wins over the Node object's (as the iptables context).
  const configured = ofFamily(config.nodeIPs, family);
  const nodeIPs = (configured.length > 0 ? configured : node.ips).filter((ip) => familyOf(ip) === family);
  return {
    // Go's `%#08x` pads the digits to 8: bit 14 -> 0x00004000.
    masqueradeMark: `0x${(2 ** config.masqueradeBit).toString(16).padStart(8, '0')}`,
    masqueradeAll: config.masqueradeAll,
    localTraffic: localTrafficNft(config, node, family),
    nodePortIPs: nodePortIPs(config, nodeIPs, inputs.interfaceAddresses, family),
    primaryNodeIP: nodeIPs[0],
    serviceCIDRs: serviceCIDRs.filter((text) => parseCidr(text)?.family === family),
  };
}

function localTrafficNft(config: NftSettings, node: NodeInfo, family: IPFamily): NftContext['localTraffic'] {
  const ip = nftFamily(family).table;
  const fromCidr = (cidr: string | undefined): NftContext['localTraffic'] =>
    cidr === undefined ? undefined : { ifLocal: `${ip} saddr ${cidr}`, ifNotLocal: `${ip} saddr != ${cidr}` };
  const detectLocal = config.detectLocal;
  switch (detectLocal.mode) {
    case 'ClusterCIDR':
      return fromCidr(clusterCIDRFor(config, family));
    case 'NodeCIDR':
      return fromCidr(node.podCIDRs[0]);
    case 'BridgeInterface':
      return { ifLocal: `iifname ${detectLocal.bridgeInterface}`, ifNotLocal: `iifname != ${detectLocal.bridgeInterface}` };
    case 'InterfaceNamePrefix':
      return { ifLocal: `iifname ${detectLocal.interfaceNamePrefix}*`, ifNotLocal: `iifname != ${detectLocal.interfaceNamePrefix}*` };
    default: {
      const unreachable: never = detectLocal;
      return unreachable;
    }
  }
}

/**
 * The node's addresses inside nodePortAddresses, never a loopback one. Unset means `primary` in
 * nftables mode (upstream's platformApplyDefaults): NodePorts answer on the node IPs only; a CIDR
 * such as 0.0.0.0/0 opens them on every address. With CIDRs, the candidates are the addresses on
 * the node's interfaces (upstream's GetNodeIPs), so a CIDR holding a second address of the node
 * opens NodePorts there too.
 */
function nodePortIPs(config: NftSettings, nodeIPs: readonly string[], interfaceAddresses: readonly string[] | undefined, family: IPFamily): NftContext['nodePortIPs'] {
  const setting = config.nodePortAddresses.kind === 'all' ? ({ kind: 'primary' } as const) : config.nodePortAddresses;
  const cidrs = nodePortAddressList(setting, nodeIPs).flatMap((text) => {
    const cidr = parseCidr(text);
    return cidr !== undefined && cidr.family === family ? [cidr] : [];
  });
  // upstream's MatchAll(): a /0 means every local address, matched by `fib daddr type local`.
  if (cidrs.some((cidr) => cidr.text.endsWith('/0'))) return 'all';
  const candidates = setting.kind === 'cidrs' && interfaceAddresses !== undefined ? interfaceAddresses.filter((ip) => familyOf(ip) === family) : nodeIPs;
  const loopback = loopbackCidr(family);
  // Sorted and without repeats: the context is compared between syncs.
  return [...new Set(candidates.filter((ip) => !cidrContains(loopback, ip) && cidrs.some((cidr) => cidrContains(cidr, ip))))].sort();
}
