// Turns the agent's configuration and the node's current addresses into a RenderContext. Pure.

import type { AgentConfig, DetectLocal } from '../config/index.js';
import type { NodeInfo } from '../model/types.js';
import {
  defaultRenderContext,
  localTrafficFromBridge,
  localTrafficFromCIDR,
  localTrafficFromInterfacePrefix,
  type LocalTraffic,
  type RenderContext,
} from '../render/types.js';
import { cidrContains, parseIpv4, parseIpv4Cidr } from '../render/ipv4.js';

/** What the agent found the kernel and tools on this node can do (kube-proxy probes the same). */
export interface KernelFeatures {
  /** The nfacct counter for the conntrack-INVALID drop rule, when nfacct works here. */
  readonly invalidDropCounter?: string;
  /** The nfacct counter for NodePort packets to 127.0.0.0/8, when nfacct works here. */
  readonly localhostNodePortsCounter?: string;
  /** Whether NodePorts answer on 127.0.0.1 (localhost-node-ports.ts: the setting, nodePortAddresses
   * and route_localnet). undefined: not probed yet, the configuration decides. */
  readonly localhostNodePorts?: boolean;
}

export function renderContextFor(config: AgentConfig, node: NodeInfo, kernel: KernelFeatures = {}): RenderContext {
  const nodeIPs = config.nodeIP !== undefined ? [config.nodeIP] : node.ips;
  let nodePortAddresses: readonly string[];
  switch (config.nodePortAddresses.kind) {
    case 'all':
      nodePortAddresses = [];
      break;
    case 'primary':
      nodePortAddresses = nodeIPs.map((ip) => `${ip}/32`);
      break;
    case 'cidrs':
      nodePortAddresses = config.nodePortAddresses.cidrs;
      break;
    default: {
      const unreachable: never = config.nodePortAddresses;
      return unreachable;
    }
  }
  return {
    ...defaultRenderContext,
    localTraffic: localTrafficFor(config.detectLocal, config.clusterCIDR, node),
    masqueradeAll: config.masqueradeAll,
    ...(kernel.invalidDropCounter !== undefined ? { invalidDropCounter: kernel.invalidDropCounter } : {}),
    ...(kernel.localhostNodePortsCounter !== undefined ? { localhostNodePortsCounter: kernel.localhostNodePortsCounter } : {}),
    nodePortAddresses,
    nodeIPs,
    masqueradeBit: config.masqueradeBit,
    // The renderer also leaves them out where nodePortAddresses does not cover the loopback.
    localhostNodePorts: kernel.localhostNodePorts ?? config.localhostNodePorts,
  };
}

/**
 * kube-proxy's local traffic detector. Without what its mode needs (no clusterCIDR, or a Node
 * without a podCIDR yet) there is none, and the rules that need one are left out, as upstream.
 * A podCIDR that arrives or changes later is picked up by the next sync (kube-proxy exits instead).
 */
export function localTrafficFor(detectLocal: DetectLocal, clusterCIDR: string | undefined, node: NodeInfo): LocalTraffic | undefined {
  switch (detectLocal.mode) {
    case 'ClusterCIDR':
      return clusterCIDR === undefined ? undefined : localTrafficFromCIDR(clusterCIDR);
    case 'NodeCIDR': {
      const podCIDR = node.podCIDRs[0];
      return podCIDR === undefined ? undefined : localTrafficFromCIDR(podCIDR);
    }
    case 'BridgeInterface':
      return localTrafficFromBridge(detectLocal.bridgeInterface);
    case 'InterfaceNamePrefix':
      return localTrafficFromInterfacePrefix(detectLocal.interfaceNamePrefix);
    default: {
      const unreachable: never = detectLocal;
      return unreachable;
    }
  }
}

/**
 * The addresses healthCheckNodePort servers listen on: every address when nodePortAddresses is
 * unset; otherwise, as kube-proxy, only this node's IPs that nodePortAddresses matches (and
 * 127.0.0.1 when a CIDR covers it). Empty until the Node (or --node-ip) gives a matching IP: never
 * every address as a fallback, which would open the port where NodePorts are closed.
 */
export function healthCheckAddresses(config: AgentConfig, node: NodeInfo): readonly string[] {
  if (config.nodePortAddresses.kind === 'all') return ['0.0.0.0'];
  const context = renderContextFor(config, node);
  const candidates = config.nodePortAddresses.kind === 'cidrs' ? [...context.nodeIPs, '127.0.0.1'] : context.nodeIPs;
  return [...new Set(candidates.filter((ip) => context.nodePortAddresses.some((cidr) => inCidr(ip, cidr))))];
}

function inCidr(ip: string, cidrText: string): boolean {
  const address = parseIpv4(ip);
  const cidr = parseIpv4Cidr(cidrText);
  return address !== undefined && cidr !== undefined && cidrContains(cidr, address);
}
