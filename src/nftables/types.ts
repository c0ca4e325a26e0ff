// The nftables rule set the renderer produces and the differ consumes: the table's chains, sets,
// maps and elements as plain data. Rules are kept as nft rule text without `add rule <family>
// <table> <chain> `; the transaction writer adds it.

import type { BaseChainSpec, NftFamily } from './vocabulary.js';

export interface NftChain {
  readonly name: string;
  /** Set for a base chain (hooked into netfilter). */
  readonly base?: BaseChainSpec;
  readonly comment?: string;
  /** Order-sensitive: a chain is written whole whenever anything in it changes. */
  readonly rules: readonly string[];
}

/** A named set or verdict map (`type` holds the whole `a . b : verdict` for a map). */
export interface NftContainer {
  readonly kind: 'set' | 'map';
  readonly name: string;
  readonly type: string;
  readonly flags?: readonly string[];
  readonly timeoutSeconds?: number;
  readonly comment?: string;
}

/** One element of a named set or map: `key` and `value` in nft syntax (`10.0.0.1 . tcp . 80`, `goto x`). */
export interface NftElement {
  readonly container: string;
  readonly key: string;
  readonly value?: string;
  readonly comment?: string;
}

/** Everything one service port contributes. Unchanged service ports keep the identity of their part. */
export interface NftServicePortPart {
  /** Endpoint chains first, then the service's own chains (they jump to the endpoint chains). */
  readonly chains: readonly NftChain[];
  /** Affinity sets (session affinity ClientIP), one per reachable endpoint. */
  readonly sets: readonly NftContainer[];
  /** Elements of the shared maps and sets (service-ips, cluster-ips, no-endpoint-*, firewall-ips...). */
  readonly elements: readonly NftElement[];
}

export interface NftRuleset {
  readonly family: NftFamily;
  /** Base chains and kube-proxy's top-level chains with their rules. */
  readonly staticChains: readonly NftChain[];
  /** The shared maps and sets (cluster-ips, service-ips, ...), declared before any rule uses them. */
  readonly containers: readonly NftContainer[];
  /** Elements that belong to no service port (nodeport-ips). */
  readonly staticElements: readonly NftElement[];
  /** Keyed by ServicePort.key. */
  readonly servicePorts: ReadonlyMap<string, NftServicePortPart>;
}

/** The node-wide settings nft rules depend on. */
export interface NftContext {
  /** e.g. `0x00004000`. */
  readonly masqueradeMark: string;
  readonly masqueradeAll: boolean;
  /** nft matches for traffic from / not from a local pod; undefined when no detector applies. */
  readonly localTraffic: { readonly ifLocal: string; readonly ifNotLocal: string } | undefined;
  /** `all`, or the node addresses that accept NodePort traffic (the nodeport-ips set). */
  readonly nodePortIPs: 'all' | readonly string[];
  /** The node's primary address: a source range containing it lets the node reach its LB IPs. */
  readonly primaryNodeIP: string | undefined;
  /** ServiceCIDRs of this family: traffic to an unallocated cluster IP in them is dropped. */
  readonly serviceCIDRs: readonly string[];
}
