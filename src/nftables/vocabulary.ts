// The nftables vocabulary of kube-proxy's nftables mode, once: the table, its base and top-level
// chains, maps and sets, the per-service-port and per-endpoint name scheme (so a node can move
// between upstream's nftables mode and ours), and the family words (`ip`/`ip6`). Pure.

import type { IPFamily } from '../ip.js';
import type { Protocol } from '../model/types.js';
import { hash16 } from '../render/names.js';

export const KUBE_PROXY_TABLE = 'kube-proxy';
export const TABLE_COMMENT = 'rules for kube-proxy';

/** How one address family is spelled in nft. */
export interface NftFamily {
  readonly family: IPFamily;
  /** The table family and the address match keyword: `ip` or `ip6`. */
  readonly table: 'ip' | 'ip6';
  /** The set/map key type of an address. */
  readonly addressType: 'ipv4_addr' | 'ipv6_addr';
  /** Matches everything but the loopback destination. */
  readonly noLocalhost: string;
}

export function nftFamily(family: IPFamily): NftFamily {
  return family === 'IPv4'
    ? { family, table: 'ip', addressType: 'ipv4_addr', noLocalhost: 'ip daddr != 127.0.0.0/8' }
    : { family, table: 'ip6', addressType: 'ipv6_addr', noLocalhost: 'ip6 daddr != ::1' };
}

export const CHAIN = {
  filterPreroutingPreDNAT: 'filter-prerouting-pre-dnat',
  filterOutputPreDNAT: 'filter-output-pre-dnat',
  filterInput: 'filter-input',
  filterForward: 'filter-forward',
  filterOutput: 'filter-output',
  natPrerouting: 'nat-prerouting',
  natOutput: 'nat-output',
  natPostrouting: 'nat-postrouting',
  services: 'services',
  serviceEndpointsCheck: 'service-endpoints-check',
  nodePortEndpointsCheck: 'nodeport-endpoints-check',
  reject: 'reject-chain',
  clusterIPsCheck: 'cluster-ips-check',
  firewallCheck: 'firewall-check',
  markMasquerade: 'mark-for-masquerade',
  masquerading: 'masquerading',
} as const;

export const MAP = {
  serviceIPs: 'service-ips',
  serviceNodePorts: 'service-nodeports',
  noEndpointServices: 'no-endpoint-services',
  noEndpointNodePorts: 'no-endpoint-nodeports',
  firewallIPs: 'firewall-ips',
} as const;

export const SET = {
  clusterIPs: 'cluster-ips',
  nodePortIPs: 'nodeport-ips',
} as const;

export type BaseChainType = 'filter' | 'nat';
export type BaseChainHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';

export interface BaseChainSpec {
  readonly name: string;
  readonly type: BaseChainType;
  readonly hook: BaseChainHook;
  /** Numeric, as knftables writes it (dstnat = -100, filter = 0, srcnat = 100): older nft
   * binaries accept the names in fewer contexts. */
  readonly priority: number;
}

/** upstream's nftablesBaseChains, in its order. */
export const BASE_CHAINS: readonly BaseChainSpec[] = [
  { name: CHAIN.filterPreroutingPreDNAT, type: 'filter', hook: 'prerouting', priority: -110 },
  { name: CHAIN.filterOutputPreDNAT, type: 'filter', hook: 'output', priority: -110 },
  { name: CHAIN.filterInput, type: 'filter', hook: 'input', priority: 0 },
  { name: CHAIN.filterForward, type: 'filter', hook: 'forward', priority: 0 },
  { name: CHAIN.filterOutput, type: 'filter', hook: 'output', priority: 0 },
  { name: CHAIN.natPrerouting, type: 'nat', hook: 'prerouting', priority: -100 },
  { name: CHAIN.natOutput, type: 'nat', hook: 'output', priority: -100 },
  { name: CHAIN.natPostrouting, type: 'nat', hook: 'postrouting', priority: 100 },
];

/** upstream's nftablesJumpChains: `from` jumps to `to`, guarded by `match`. In its order. */
export const JUMP_CHAINS: readonly { readonly to: string; readonly from: string; readonly match: string }[] = [
  { to: CHAIN.nodePortEndpointsCheck, from: CHAIN.filterInput, match: 'ct state new' },
  { to: CHAIN.serviceEndpointsCheck, from: CHAIN.filterInput, match: 'ct state new' },
  { to: CHAIN.serviceEndpointsCheck, from: CHAIN.filterForward, match: 'ct state new' },
  { to: CHAIN.serviceEndpointsCheck, from: CHAIN.filterOutput, match: 'ct state new' },
  { to: CHAIN.firewallCheck, from: CHAIN.filterPreroutingPreDNAT, match: 'ct state new' },
  { to: CHAIN.firewallCheck, from: CHAIN.filterOutputPreDNAT, match: 'ct state new' },
  { to: CHAIN.services, from: CHAIN.natOutput, match: '' },
  { to: CHAIN.services, from: CHAIN.natPrerouting, match: '' },
  { to: CHAIN.masquerading, from: CHAIN.natPostrouting, match: '' },
  { to: CHAIN.clusterIPsCheck, from: CHAIN.filterForward, match: 'ct state new' },
  { to: CHAIN.clusterIPsCheck, from: CHAIN.filterOutput, match: 'ct state new' },
];

export const PREFIX = {
  cluster: 'service-',
  local: 'local-',
  external: 'external-',
  firewall: 'firewall-',
  endpoint: 'endpoint-',
  affinity: 'affinity-',
} as const;

/** nft names are at most 256 bytes; the longest prefix (with its hyphen) is kept under 16. */
const NAME_BASE_MAX = 256 - 16;

/** upstream's hashAndTruncate: the first 8 base32 characters of sha256(name), `-`, the name. */
function hashAndTruncate(name: string): string {
  const hashed = `${hash16(name).slice(0, 8)}-${name}`;
  return hashed.length > NAME_BASE_MAX ? `${hashed.slice(0, NAME_BASE_MAX - 3)}...` : hashed;
}

export interface NftServicePortNames {
  readonly cluster: string;
  readonly local: string;
  readonly external: string;
  readonly firewall: string;
}

/** `HASH-namespace/name/protocol/portName`, e.g. `service-ULMVA6XW-ns1/svc1/tcp/p80`. */
export function nftServicePortNames(namespace: string, name: string, portName: string, protocol: Protocol): NftServicePortNames {
  const base = hashAndTruncate(`${namespace}/${name}/${protocol.toLowerCase()}/${portName}`);
  return { cluster: PREFIX.cluster + base, local: PREFIX.local + base, external: PREFIX.external + base, firewall: PREFIX.firewall + base };
}

export interface NftEndpointNames {
  readonly chain: string;
  readonly affinitySet: string;
}

/** `HASH-namespace/name/protocol/portName__ip/port` (an IPv6 address with `.` for `:`). */
export function nftEndpointNames(
  namespace: string,
  name: string,
  portName: string,
  protocol: Protocol,
  ip: string,
  port: number,
): NftEndpointNames {
  const base = hashAndTruncate(`${namespace}/${name}/${protocol.toLowerCase()}/${portName}__${ip.replaceAll(':', '.')}/${port}`);
  return { chain: PREFIX.endpoint + base, affinitySet: PREFIX.affinity + base };
}

/** Per-service-port and per-endpoint chains have a `/` in their names; the stock chains never do. */
export function isServiceChainName(name: string): boolean {
  return name.includes('/');
}

export function isAffinitySetName(name: string): boolean {
  return name.startsWith(PREFIX.affinity);
}

/** `goto <chain>` in a verdict map value. */
export function gotoChain(chain: string): string {
  return `goto ${chain}`;
}

/** A comment in nft syntax (upstream's comments never contain a quote; strip any to stay parseable). */
export function quoteComment(text: string): string {
  return `"${text.replaceAll('"', '')}"`;
}
