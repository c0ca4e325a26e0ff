// kube-proxy's per-service chain names. They must be bit-for-bit identical to upstream's
// (portProtoHash / servicePortEndpointChainName) so a node can switch between kube-proxy and
// kube-proxy-ts without its established flows losing their chains.

import * as crypto from 'node:crypto';
import type { Protocol } from '../model/types.js';
import { joinHostPort } from '../ip.js';

import {
  serviceExternalChainPrefix,
  serviceFirewallChainPrefix,
  servicePortEndpointChainPrefix,
  servicePortPolicyClusterChainPrefix,
  servicePortPolicyLocalChainPrefix,
} from '../netfilter/vocabulary.js';

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

// crypto.hash (one-shot) exists from Node 20.12; keep older 20.x working. Hex output: a string
// is about three times cheaper to get out of it than a Buffer, which matters for 100k endpoints.
const sha256Hex: (input: string) => string =
  typeof crypto.hash === 'function'
    ? (input) => crypto.hash('sha256', input, 'hex')
    : (input) => crypto.createHash('sha256').update(input).digest('hex');

/**
 * First 16 characters of standard base32(sha256(input)). 16 base32 characters are exactly the
 * first 10 bytes (80 bits = 20 hex digits), so padding never comes into play.
 */
export function hash16(input: string): string {
  const hex = sha256Hex(input);
  let out = '';
  let bits = 0;
  let buffer = 0;
  for (let index = 0; index < 20; index++) {
    const code = hex.charCodeAt(index);
    const nibble = code <= 57 ? code - 48 : code - 87; // '0'-'9', then lowercase 'a'-'f'
    buffer = ((buffer << 4) | nibble) & 0xff;
    bits += 4;
    if (bits >= 5) {
      bits -= 5;
      out += base32Alphabet.charAt((buffer >> bits) & 31);
    }
  }
  return out;
}

// Bounded memo of service port names (one entry per service port): clearing when full is crude,
// but keeps a churning cluster from growing the table forever.
const memoLimit = 100_000;
const servicePortNames = new Map<string, ServicePortChainNames>();

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

/**
 * upstream: `servicePortEndpointChainName(servicePortName, lower(protocol), "ip:port")`, the
 * endpoint as Go's net.JoinHostPort writes it (`[ip]:port` for IPv6). Not memoised here: callers hash each endpoint once per render of its service port, and a table of
 * every endpoint ever seen costs more (in GC) than the hashes it saves.
 */
export function servicePortEndpointChainName(
  servicePortName: string,
  protocol: Protocol,
  endpointIP: string,
  endpointPort: number,
): string {
  return servicePortEndpointChainPrefix + hash16(`${servicePortName}${protocol.toLowerCase()}${joinHostPort(endpointIP, endpointPort)}`);
}
