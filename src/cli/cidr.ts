// Parsing of IPv4 CIDRs given on the command line or in config.

import { isIPv4 } from 'node:net';

/** Returns the CIDR normalised to its network address (`10.0.0.5/8` -> `10.0.0.0/8`), or undefined. */
export function parseCidr(text: string): string | undefined {
  const [address, bitsText, extra] = text.trim().split('/');
  if (address === undefined || extra !== undefined || !isIPv4(address)) return undefined;
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32 || (bitsText !== undefined && !/^\d+$/.test(bitsText))) return undefined;
  const value = address.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const network = (value & mask) >>> 0;
  const octets = [network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255];
  return `${octets.join('.')}/${bits}`;
}
