// `host:port` bind addresses as the configuration takes them (IPs and CIDRs: ../ip.ts).

import { isIP } from 'node:net';
import { joinHostPort } from '../ip.js';
import type { BindAddress } from './types.js';

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
  return joinHostPort(address.host, address.port);
}
