// kube-proxy's per-service chain names. They must be bit-for-bit identical to upstream's
// (portProtoHash / servicePortEndpointChainName) so a node can switch between kube-proxy and
// kube-proxy-ts without its established flows losing their chains.

import * as crypto from 'node:crypto';
import type { Protocol } from '../model/types.js';

export const servicePortPolicyClusterChainPrefix = 'KUBE-SVC-';
export const servicePortPolicyLocalChainPrefix = 'KUBE-SVL-';
export const serviceExternalChainPrefix = 'KUBE-EXT-';
export const serviceFirewallChainPrefix = 'KUBE-FW-';
export const servicePortEndpointChainPrefix = 'KUBE-SEP-';

/** The four chains of one service port share one hash. */
export interface ServicePortChainNames {
  /** KUBE-SVC-: endpoints for Cluster traffic policy. */
  readonly cluster: string;
  /** KUBE-SVL-: node-local endpoints for Local traffic policy. */
  readonly local: string;
  /** KUBE-EXT-: external destinations (NodePort, external IPs, load-balancer IPs). */
  readonly external: string;
  /** KUBE-FW-: loadBalancerSourceRanges. */
  readonly firewall: string;
}

const base32Alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

// crypto.hash (one-shot, about twice as fast) exists from Node 20.12; keep older 20.x working.
const sha256: (input: string) => Uint8Array =
  typeof crypto.hash === 'function'
    ? (input) => crypto.hash('sha256', input, 'buffer')
    : (input) => crypto.createHash('sha256').update(input).digest();

/**
 * First 16 characters of standard base32(sha256(input)). 16 base32 characters are exactly the
 * first 10 bytes (80 bits), so padding never comes into play.
 */
export function hash16(input: string): string {
  const digest = sha256(input);
  let out = '';
  for (let block = 0; block < 10; block += 5) {
    // 5 bytes -> 8 characters; 40 bits fit a double exactly.
    const bits =
      (digest[block] ?? 0) * 2 ** 32 +
      (digest[block + 1] ?? 0) * 2 ** 24 +
      (digest[block + 2] ?? 0) * 2 ** 16 +
      (digest[block + 3] ?? 0) * 2 ** 8 +
      (digest[block + 4] ?? 0);
    for (let shift = 35; shift >= 0; shift -= 5) {
      out += base32Alphabet[Math.floor(bits / 2 ** shift) % 32];
    }
  }
  return out;
}

// Bounded memo tables: renders repeat the same names for every unchanged service, while pod IP
// churn would grow an unbounded map forever. Clearing when full is crude but keeps lookups O(1).
const memoLimit = 250_000;
const servicePortNames = new Map<string, ServicePortChainNames>();
const endpointNames = new Map<string, string>();

/** upstream: `portProtoHash(servicePortName, strings.ToLower(protocol))`. */
export function servicePortChainNames(servicePortName: string, protocol: Protocol): ServicePortChainNames {
  const key = servicePortName + protocol.toLowerCase();
  let names = servicePortNames.get(key);
  if (names === undefined) {
    const suffix = hash16(key);
    names = {
      cluster: servicePortPolicyClusterChainPrefix + suffix,
      local: servicePortPolicyLocalChainPrefix + suffix,
      external: serviceExternalChainPrefix + suffix,
      firewall: serviceFirewallChainPrefix + suffix,
    };
    if (servicePortNames.size >= memoLimit) servicePortNames.clear();
    servicePortNames.set(key, names);
  }
  return names;
}

/** upstream: `servicePortEndpointChainName(servicePortName, lower(protocol), "ip:port")`. */
export function servicePortEndpointChainName(
  servicePortName: string,
  protocol: Protocol,
  endpointIP: string,
  endpointPort: number,
): string {
  const key = `${servicePortName}${protocol.toLowerCase()}${endpointIP}:${endpointPort}`;
  let name = endpointNames.get(key);
  if (name === undefined) {
    name = servicePortEndpointChainPrefix + hash16(key);
    if (endpointNames.size >= memoLimit) endpointNames.clear();
    endpointNames.set(key, name);
  }
  return name;
}

/** Whether a chain is one of the per-service-port chains (the ones kube-proxy garbage-collects). */
export function isServicePortChain(name: string): boolean {
  return (
    name.startsWith(servicePortPolicyClusterChainPrefix) ||
    name.startsWith(servicePortPolicyLocalChainPrefix) ||
    name.startsWith(serviceExternalChainPrefix) ||
    name.startsWith(serviceFirewallChainPrefix) ||
    name.startsWith(servicePortEndpointChainPrefix)
  );
}
