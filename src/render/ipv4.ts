// Just enough IPv4 arithmetic for the two places the renderer must test membership: which node
// IPs fall inside `nodePortAddresses`, and whether a loadBalancerSourceRange covers the node.

export interface Ipv4Cidr {
  readonly network: number;
  readonly prefixLength: number;
}

/** `a.b.c.d` -> unsigned 32-bit value; undefined for anything else (e.g. IPv6). */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** `a.b.c.d/n` (or a bare address, as /32) -> CIDR; undefined when not IPv4. */
export function parseIpv4Cidr(text: string): Ipv4Cidr | undefined {
  const slash = text.indexOf('/');
  const address = parseIpv4(slash < 0 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const lengthText = slash < 0 ? '32' : text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(lengthText)) return undefined;
  const prefixLength = Number(lengthText);
  if (prefixLength > 32) return undefined;
  return { network: maskAddress(address, prefixLength), prefixLength };
}

export function cidrContains(cidr: Ipv4Cidr, address: number): boolean {
  return maskAddress(address, cidr.prefixLength) === cidr.network;
}

export function isIpv4Loopback(address: number): boolean {
  return Math.floor(address / 2 ** 24) === 127;
}

function maskAddress(address: number, prefixLength: number): number {
  const hostSize = 2 ** (32 - prefixLength);
  return Math.floor(address / hostSize) * hostSize;
}
