// IP addresses and CIDRs of either family, for every module that reads one (API objects, the
// configuration, flags, the renderer). Strict because the values end up in rules, where a sloppy
// form ("010.0.0.1") would be read as octal. The family is a value, never an assumption.
import { isIPv6 } from 'node:net';

export type IPFamily = 'IPv4' | 'IPv6';

/** Both families, IPv4 first (the order of a dual-stack node's lanes). */
export const IP_FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

/** The address itself, or undefined when `text` is not a canonical IPv4 address (no leading zeros). */
export function parseIPv4(text: string): string | undefined {
  // Hand-rolled scanner: this runs for every endpoint of every slice, so no split/regex garbage.
  const length = text.length;
  if (length < 7 || length > 15) return undefined;
  let octets = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= length; i++) {
    const code = i === length ? 46 : text.charCodeAt(i);
    if (code === 46) {
      if (digits === 0 || value > 255) return undefined;
      octets++;
      value = 0;
      digits = 0;
    } else if (code >= 48 && code <= 57) {
      if (digits > 0 && value === 0) return undefined; // leading zero
      value = value * 10 + (code - 48);
      digits++;
    } else {
      return undefined;
    }
  }
  return octets === 4 ? text : undefined;
}

/** The family of an address literal; undefined for anything that is not one. */
export function familyOf(text: string): IPFamily | undefined {
  if (parseIPv4(text) !== undefined) return 'IPv4';
  if (isIPv6(text)) return 'IPv6';
  return undefined;
}

/** The address when it is one of `family`, else undefined. */
export function parseIP(text: string, family: IPFamily): string | undefined {
  return family === 'IPv4' ? parseIPv4(text) : isIPv6(text) ? text : undefined;
}

/** `ip:port`, or `[ip]:port` for IPv6, as Go's net.JoinHostPort writes it (kube-proxy's Endpoint.String()). */
export function joinHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const BITS: Readonly<Record<IPFamily, number>> = { IPv4: 32, IPv6: 128 };

/** The longest prefix of a family: `/32` or `/128`, a single address. */
export function hostPrefixLength(family: IPFamily): number {
  return BITS[family];
}

/** A CIDR with its host bits cleared; `text` is its canonical form (`10.0.0.0/8`). */
export interface Cidr {
  readonly family: IPFamily;
  readonly network: bigint;
  readonly prefixLength: number;
  readonly text: string;
}

/**
 * `address/n` of either family (`10.1.2.3/8` -> `10.0.0.0/8`, as Go's net.ParseCIDR does for
 * kube-proxy). A bare address is not a CIDR unless `bareAddress` says it stands for a single host.
 */
export function parseCidr(input: string, options: { readonly bareAddress?: boolean } = {}): Cidr | undefined {
  const text = input.trim();
  const slash = text.indexOf('/');
  if (slash < 0 && options.bareAddress !== true) return undefined;
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const family = familyOf(addressText);
  if (family === undefined) return undefined;
  const prefixText = slash < 0 ? String(BITS[family]) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefixLength = Number(prefixText);
  if (prefixLength > BITS[family]) return undefined;
  const network = maskValue(addressValue(addressText, family), family, prefixLength);
  return { family, network, prefixLength, text: `${formatAddress(network, family)}/${prefixLength}` };
}

/** Whether `address` (a literal of any family) lies inside `cidr`. */
export function cidrContains(cidr: Cidr, address: string): boolean {
  if (familyOf(address) !== cidr.family) return false;
  return maskValue(addressValue(address, cidr.family), cidr.family, cidr.prefixLength) === cidr.network;
}

/** Whether two CIDRs share any address (one contains the other). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const shorter = Math.min(a.prefixLength, b.prefixLength);
  return maskValue(a.network, a.family, shorter) === maskValue(b.network, b.family, shorter);
}

/** The loopback network of a family: 127.0.0.0/8, ::1/128. */
export function loopbackCidr(family: IPFamily): Cidr {
  const cidr = parseCidr(family === 'IPv4' ? '127.0.0.0/8' : '::1/128');
  if (cidr === undefined) throw new Error('unreachable: loopback CIDR literal');
  return cidr;
}

function addressValue(address: string, family: IPFamily): bigint {
  if (family === 'IPv4') {
    let value = 0n;
    for (const part of address.split('.')) value = value * 256n + BigInt(Number(part));
    return value;
  }
  return ipv6Value(address);
}

function ipv6Value(address: string): bigint {
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  let text = address;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = addressValue(tail, 'IPv4');
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...restGroups];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(parseInt(group, 16));
  return value;
}

function maskValue(value: bigint, family: IPFamily, prefixLength: number): bigint {
  const hostBits = BigInt(BITS[family] - prefixLength);
  return (value >> hostBits) << hostBits;
}

function formatAddress(value: bigint, family: IPFamily): string {
  if (family === 'IPv4') {
    const n = Number(value);
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  // RFC 5952: the longest run (of two or more) of zero groups becomes `::`.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
