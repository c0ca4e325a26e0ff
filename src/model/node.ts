// This node as the model needs it: name (from config: kube-proxy's --hostname-override or the
// hostname), primary addresses of one family, the zone label that topology hints are matched against, and
// the pod CIDRs (detectLocalMode NodeCIDR).
import type { V1Node } from '@kubernetes/client-node';
import { asArray, asRecord, asString, asStringMap } from './fields.js';
import { parseCidr, parseIP, type IPFamily } from '../ip.js';
import type { NodeInfo } from './types.js';
import { labelTopologyZone } from './well-known.js';

export interface NodeOverrides {
  readonly name: string;
  /** Configured node IPs; when given and non-empty they replace the Node's addresses. */
  readonly ips?: readonly string[];
  /** The family whose addresses and pod CIDRs are read (default IPv4). */
  readonly family?: IPFamily;
}

/** `node` may be undefined when the Node object is not (yet) readable. */
export function nodeInfoFromNode(node: V1Node | undefined, overrides: NodeOverrides): NodeInfo {
  const metadata = asRecord(node?.metadata);
  const labels = asStringMap(metadata['labels']);
  const zone = labels[labelTopologyZone];
  const family = overrides.family ?? 'IPv4';
  const ips = overrides.ips !== undefined && overrides.ips.length > 0 ? [...overrides.ips] : addressesOf(node, family);
  return { name: overrides.name, ips, zone: zone === undefined || zone === '' ? undefined : zone, labels, podCIDRs: podCIDRsOf(node, family) };
}

/** `spec.podCIDRs` (or the older single `spec.podCIDR`) of one family, normalised. */
function podCIDRsOf(node: V1Node | undefined, family: IPFamily): string[] {
  const spec = asRecord(node?.spec);
  const listed = asArray(spec['podCIDRs']).map((entry) => asString(entry));
  const single = asString(spec['podCIDR']);
  const result: string[] = [];
  for (const text of listed.length > 0 ? listed : [single]) {
    const parsed = text === undefined ? undefined : parseCidr(text);
    const cidr = parsed?.family === family ? parsed.text : undefined;
    if (cidr !== undefined && !result.includes(cidr)) result.push(cidr);
  }
  return result;
}

/** InternalIPs of one family first, then ExternalIPs, each in listed order, without duplicates. */
function addressesOf(node: V1Node | undefined, family: IPFamily): string[] {
  const addresses = asArray(asRecord(node?.status)['addresses']).map((entry) => asRecord(entry));
  const result: string[] = [];
  for (const type of ['InternalIP', 'ExternalIP']) {
    for (const address of addresses) {
      if (address['type'] !== type) continue;
      const ip = parseIP(asString(address['address']) ?? '', family);
      if (ip !== undefined && !result.includes(ip)) result.push(ip);
    }
  }
  return result;
}
