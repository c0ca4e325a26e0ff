// The addresses on this node's interfaces, as the kernel lists them to this process (its network
// namespace), without an IPv6 zone suffix. IO at the edge: read at each sync by the nftables mode
// (nodePortAddresses CIDRs select among them, as upstream's GetNodeIPs) and by `trace`.

import { networkInterfaces } from 'node:os';

export function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .map((address) => address.address.replace(/%.*$/, ''));
}
