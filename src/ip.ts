// Strict IPv4 address and CIDR parsing for untrusted API fields. Strict because the values end up in
// iptables rules, where a sloppy form ("010.0.0.1") would be read as octal.
import { isIPv6 } from 'node:net';

export type IPFamilyOf = 'IPv4' | 'IPv6' | 'invalid';

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

export function ipFamilyOf(text: string): IPFamilyOf {
  if (parseIPv4(text) !== undefined) return 'IPv4';
  if (isIPv6(text)) return 'IPv6';
  return 'invalid';
}

function ipv4ToNumber(ip: string): number {
  let value = 0;
  for (const part of ip.split('.')) value = value * 256 + Number(part);
  return value;
}

function numberToIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export type CidrParse =
  | { readonly family: 'IPv4'; readonly cidr: string }
  | { readonly family: 'IPv6' }
  | { readonly family: 'invalid' };

/**
 * Parses `a.b.c.d/n` into its network form (`10.1.2.3/8` -> `10.0.0.0/8`, as Go's net.ParseCIDR
 * does for kube-proxy). IPv6 CIDRs are recognised but not normalised: the data plane is IPv4 only.
 */
export function parseCidr(text: string): CidrParse {
  const slash = text.indexOf('/');
  if (slash < 0) return { family: 'invalid' };
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return { family: 'invalid' };
  const prefix = Number(prefixText);
  if (parseIPv4(address) !== undefined) {
    if (prefix > 32) return { family: 'invalid' };
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    const network = (ipv4ToNumber(address) & mask) >>> 0;
    return { family: 'IPv4', cidr: `${numberToIPv4(network)}/${prefix}` };
  }
  if (isIPv6(address) && prefix <= 128) return { family: 'IPv6' };
  return { family: 'invalid' };
}
