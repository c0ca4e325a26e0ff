// Turns the agent's configuration and the node's current addresses into a RenderContext. Pure.

import type { AgentConfig, DetectLocal, NodePortAddresses } from '../config/index.js';
import type { V1Node } from '@kubernetes/client-node';
import type { NodeInfo } from '../model/types.js';
import { nodeInfoFromNode } from '../model/node.js';
import {
  defaultRenderContext,
  localTrafficFromBridge,
  localTrafficFromCIDR,
  localTrafficFromInterfacePrefix,
  type LocalTraffic,
  type RenderContext,
} from '../render/types.js';
import { cidrContains, familyOf, hostPrefixLength, parseCidr, type IPFamily } from '../ip.js';
import type { NodeCapabilities } from './proxier.js';

/** The context of one family's rules: `node` is that family's NodeInfo (nodeInfoFor). */
export function renderContextFor(config: AgentConfig, node: NodeInfo, capabilities: NodeCapabilities = {}, family: IPFamily = 'IPv4'): RenderContext {
  const configured = ofFamily(config.nodeIPs, family);
  const nodeIPs = configured.length > 0 ? configured : node.ips;
  const nodePortAddresses = nodePortAddressList(config.nodePortAddresses, nodeIPs);
  return {
    ...defaultRenderContext,
    localTraffic: localTrafficFor(config.detectLocal, clusterCIDRFor(config, family), node),
    masqueradeAll: config.masqueradeAll,
    ...(capabilities.invalidDropCounter !== undefined ? { invalidDropCounter: capabilities.invalidDropCounter } : {}),
    ...(capabilities.localhostNodePortsCounter !== undefined ? { localhostNodePortsCounter: capabilities.localhostNodePortsCounter } : {}),
    nodePortAddresses,
    nodeIPs,
    masqueradeBit: config.masqueradeBit,
    // The renderer also leaves them out where nodePortAddresses does not cover the loopback.
    localhostNodePorts: capabilities.localhostNodePorts ?? config.localhostNodePorts,
  };
}

/** This node as one family's model sees it: the configured node IP of that family wins over the Node object's. */
export function nodeInfoFor(config: AgentConfig, node: V1Node | undefined, family: IPFamily): NodeInfo {
  return nodeInfoFromNode(node, { name: config.nodeName, ips: ofFamily(config.nodeIPs, family), family });
}

/** The configured clusterCIDR of one family (a dual-stack pair holds one of each). */
export function clusterCIDRFor(config: Pick<AgentConfig, 'clusterCIDRs'>, family: IPFamily): string | undefined {
  return ofFamily(config.clusterCIDRs, family)[0];
}

/** Addresses or CIDRs of one family, in order. */
export function ofFamily(entries: readonly string[], family: IPFamily): string[] {
  return entries.filter((entry) => familyOf(entry.split('/')[0] ?? '') === family);
}

/** nodePortAddresses as the renderer takes them: CIDRs, `primary` as the node IPs' host CIDRs, [] for all. */
export function nodePortAddressList(setting: NodePortAddresses, nodeIPs: readonly string[]): readonly string[] {
  switch (setting.kind) {
    case 'all':
      return [];
    case 'primary':
      return nodeIPs.flatMap((ip) => {
        const family = familyOf(ip);
        return family === undefined ? [] : [`${ip}/${hostPrefixLength(family)}`];
      });
    case 'cidrs':
      return setting.cidrs;
    default: {
      const unreachable: never = setting;
      return unreachable;
    }
  }
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
 * The addresses healthCheckNodePort servers listen on for one family: every address of it
 * (`0.0.0.0`, `::`) when nodePortAddresses is unset; otherwise, as kube-proxy, only this node's IPs
 * of that family that nodePortAddresses matches (and the loopback, 127.0.0.1 or ::1, when a CIDR
 * covers it: kube-proxy matches the node's interface addresses, lo's among them). Empty until the
 * Node (or --node-ip) gives a matching IP: never every address as a fallback, which would open
 * the port where NodePorts are closed.
 */
export function healthCheckAddresses(config: AgentConfig, node: NodeInfo, family: IPFamily = 'IPv4'): readonly string[] {
  const everyAddress = [family === 'IPv4' ? '0.0.0.0' : '::'];
  if (config.nodePortAddresses.kind === 'all') return everyAddress;
  // CIDRs of the other family only: this family's NodePorts match every address (the renderer's
  // familyCidrs, kube-proxy's NodePortAddresses matchAll), so its healthcheck servers do too.
  if (config.nodePortAddresses.kind === 'cidrs' && ofFamily(config.nodePortAddresses.cidrs, family).length === 0) return everyAddress;
  const context = renderContextFor(config, node, {}, family);
  const loopback = config.nodePortAddresses.kind === 'cidrs' ? [family === 'IPv4' ? '127.0.0.1' : '::1'] : [];
  const candidates = [...context.nodeIPs, ...loopback];
  return [...new Set(candidates.filter((ip) => context.nodePortAddresses.some((cidr) => inCidr(ip, cidr))))];
}

function inCidr(ip: string, cidrText: string): boolean {
  const cidr = parseCidr(cidrText);
  return cidr !== undefined && cidrContains(cidr, ip);
}
