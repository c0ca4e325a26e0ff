// The netfilter rule set the renderer produces and the differ consumes. Rules are kept as
// iptables-restore rule specs without the leading `-A <chain> `; the differ adds it.

import type { BuiltinChain, TableName } from '../netfilter/vocabulary.js';

/**
 * A chain whose rules are order-sensitive: written whole whenever anything in it changes.
 */
export interface OrderedChain {
  readonly kind: 'ordered';
  readonly table: TableName;
  readonly name: string;
  readonly rules: readonly string[];
}

/**
 * A shared dispatch chain (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES, KUBE-PROXY-FIREWALL...):
 * its service rules each match a distinct destination, so their relative order does not matter
 * and the differ may edit them in place (`-D` / `-I <chain> 1`) instead of rewriting the chain.
 * `trailer` rules always stay last (e.g. the KUBE-NODEPORTS jump at the end of nat KUBE-SERVICES).
 */
export interface SharedChain {
  readonly kind: 'shared';
  readonly table: TableName;
  readonly name: string;
  readonly trailer: readonly string[];
}

/** A rule one service port contributes to a shared chain. */
export interface SharedRule {
  readonly table: TableName;
  readonly chain: string;
  readonly rule: string;
}

/** Everything one service port contributes: the chains it owns and its rules in shared chains. */
export interface ServicePortRules {
  /** KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW-, KUBE-SEP- chains owned by this service port. */
  readonly chains: readonly OrderedChain[];
  readonly sharedRules: readonly SharedRule[];
}

/** A jump from a built-in chain into ours, e.g. nat PREROUTING -> KUBE-SERVICES. */
export interface BuiltinJump {
  readonly table: TableName;
  readonly chain: BuiltinChain;
  readonly rule: string;
}

export interface RuleSet {
  /** Chains whose content does not belong to a single service port (KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-FORWARD, KUBE-PROXY-CANARY, ...). */
  readonly staticChains: readonly OrderedChain[];
  /** Shared dispatch chains; their non-trailer rules come from `servicePorts[*].sharedRules`. */
  readonly sharedChains: readonly SharedChain[];
  /** Keyed by ServicePort.key. Unchanged service ports keep the identity of their ServicePortRules. */
  readonly servicePorts: ReadonlyMap<string, ServicePortRules>;
  /** In the order they end up in the kernel on a fresh node under kube-proxy, which inserts each
   * of its `iptablesJumpChains` at the top in turn (filter INPUT: KUBE-PROXY-FIREWALL,
   * KUBE-NODEPORTS, KUBE-EXTERNAL-SERVICES). `append` payloads write them in this order. */
  readonly jumps: readonly BuiltinJump[];
  /** Chains others may own too that must exist but are never flushed: created empty when missing
   * (kube-proxy's EnsureChain for kubelet's KUBE-FIREWALL, which its jumps point at). */
  readonly ensuredChains: readonly EnsuredChain[];
}

export interface EnsuredChain {
  readonly table: TableName;
  readonly name: string;
}

/**
 * How pod traffic is told from other traffic (kube-proxy's local traffic detector): the matches
 * for "from a pod" and "not from a pod". Traffic to a cluster IP that is not from a pod is
 * masqueraded; pods reaching an external IP of a Local-policy Service go to any endpoint.
 */
export interface LocalTraffic {
  readonly ifLocal: string;
  readonly ifNotLocal: string;
}

/** `detectLocalMode: ClusterCIDR` (with `clusterCIDR`) or `NodeCIDR` (with the node's podCIDR). */
export function localTrafficFromCIDR(cidr: string): LocalTraffic {
  return { ifLocal: `-s ${cidr}`, ifNotLocal: `! -s ${cidr}` };
}

/** `detectLocalMode: BridgeInterface`: traffic coming in on this bridge is from a pod. */
export function localTrafficFromBridge(name: string): LocalTraffic {
  return { ifLocal: `-i ${name}`, ifNotLocal: `! -i ${name}` };
}

/** `detectLocalMode: InterfaceNamePrefix`: traffic coming in on any interface named `<prefix>...` is from a pod. */
export function localTrafficFromInterfacePrefix(prefix: string): LocalTraffic {
  return { ifLocal: `-i ${prefix}+`, ifNotLocal: `! -i ${prefix}+` };
}

/** Node-wide settings that shape rendering (kube-proxy flags / KubeProxyConfiguration). */
export interface RenderContext {
  /** Which traffic is from pods. undefined (no clusterCIDR, say) = no rule that needs to know. */
  readonly localTraffic: LocalTraffic | undefined;
  /** `nodePortAddresses` CIDRs; empty = NodePorts on every local address (`-m addrtype --dst-type LOCAL`). */
  readonly nodePortAddresses: readonly string[];
  /** This node's IPs (used where kube-proxy needs them, e.g. `nodePortAddresses` matching). */
  readonly nodeIPs: readonly string[];
  /** kube-proxy's masquerade bit (default 14 -> mark 0x4000). */
  readonly masqueradeBit: number;
  /** Add `--random-fully` to MASQUERADE (kube-proxy does when the kernel supports it). */
  readonly randomFully: boolean;
  /** `masqueradeAll`: masquerade all traffic to a cluster IP, not only what is not from a pod. Default false. */
  readonly masqueradeAll?: boolean;
  /** `iptables.localhostNodePorts`: NodePorts also answer on 127.0.0.0/8 (needs route_localnet=1), guarded
   * by kubelet's KUBE-FIREWALL localnet rule, which kube-proxy duplicates. Off unless `nodePortAddresses`
   * covers the IPv4 loopback, as upstream. Default true, as kube-proxy. */
  readonly localhostNodePorts?: boolean;
  /** An nfacct counter for NodePort packets to 127.0.0.0/8: with localhost NodePorts on, each NodePort
   * gets a `-d 127.0.0.0/8 ... -m nfacct --nfacct-name ...` rule ahead of its own, as kube-proxy adds
   * where the kernel has nfacct. Default none. */
  readonly localhostNodePortsCounter?: string;
  /** An nfacct counter that counts what the KUBE-FORWARD rule for conntrack-INVALID packets drops
   * (`-m nfacct --nfacct-name ...`), as kube-proxy adds where the kernel has nfacct. Default none. */
  readonly invalidDropCounter?: string;
  /** The node has `net.netfilter.nf_conntrack_tcp_be_liberal=1`: kube-proxy then omits the
   * KUBE-FORWARD rule dropping conntrack-INVALID packets. Default false. */
  readonly conntrackTCPBeLiberal?: boolean;
  /** Above this many endpoints in total, per-endpoint comments are dropped (kube-proxy's
   * largeClusterEndpointsThreshold). Default 1000. */
  readonly largeClusterEndpointsThreshold?: number;
}

export const defaultRenderContext: RenderContext = {
  localTraffic: undefined,
  nodePortAddresses: [],
  nodeIPs: [],
  masqueradeBit: 14,
  randomFully: true,
};
