// Address syntax the configuration accepts: IPv4 literals, IPv4 CIDRs and `host:port` bind addresses.

import { isIP, isIPv4 } from 'node:net';
import type { BindAddress } from './types.js';

/** The CIDR with its host bits cleared (`10.0.0.5/8` -> `10.0.0.0/8`), or undefined if not an IPv4 CIDR. */
export function normaliseIPv4Cidr(text: string): string | undefined {
  const parts = text.trim().split('/');
  if (parts.length !== 2) return undefined;
  const [address = '', bitsText = ''] = parts;
  if (!isIPv4(address) || !/^\d{1,2}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  if (bits > 32) return undefined;
  const value = address.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const network = (value & mask) >>> 0;
  return `${network >>> 24}.${(network >>> 16) & 255}.${(network >>> 8) & 255}.${network & 255}/${bits}`;
}

/** True for an IPv6 CIDR: we only need to tell it apart from garbage to give a precise message. */
export function isIPv6Cidr(text: string): boolean {
  const parts = text.trim().split('/');
  return parts.length === 2 && isIP(parts[0] ?? '') === 6 && /^\d{1,3}$/.test(parts[1] ?? '') && Number(parts[1]) <= 128;
}

/**
 * `host:port`, `[v6]:port` or `:port` (all IPv4 addresses, as Go's net.Listen reads an empty host).
 * Returns a reason string on failure so the caller can name the field.
 */
export function parseBindAddress(text: string): BindAddress | { readonly reason: string } {
  const trimmed = text.trim();
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(trimmed);
  let host: string;
  let portText: string;
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (isIP(host) !== 6) return { reason: 'the bracketed host must be an IPv6 address' };
  } else {
    const colon = trimmed.lastIndexOf(':');
    if (colon < 0) return { reason: 'must be IP:port, e.g. 0.0.0.0:10256' };
    host = trimmed.slice(0, colon);
    portText = trimmed.slice(colon + 1);
    if (host.includes(':')) return { reason: 'an IPv6 host must be in brackets, e.g. [::]:10256' };
    if (host === '') host = '0.0.0.0';
    if (isIP(host) === 0) return { reason: 'the host must be an IP address' };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return { reason: 'the port must be 0..65535' };
  return { host, port: Number(portText) };
}

/** `host:port` with brackets for IPv6, as Go's net.JoinHostPort writes it. */
export function formatBindAddress(address: BindAddress): string {
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
