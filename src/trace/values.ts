// Small value parsers of iptables rule options for the tracer: addresses and CIDRs of either
// family, port ranges, marks, `--to-destination`.

import { isIP } from 'node:net';

import { cidrContains, parseCidr } from '../ip.js';

/** `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; candidates of the other family never match. */
export function cidrMatcher(value: string): (address: string) => boolean {
  const cidr = parseCidr(value, { bareAddress: true });
  if (cidr === undefined) throw new Error(`'${value}' is not an address or CIDR`);
  return (candidate) => cidrContains(cidr, candidate);
}

export function portRange(value: string | undefined): [number, number] {
  if (value === undefined) return [0, 65535];
  const [low = '', high = low] = value.split(':');
  const range: [number, number] = [low === '' ? 0 : Number(low), high === '' ? 65535 : Number(high)];
  if (range.some((port) => !Number.isInteger(port))) throw new Error(`bad port '${value}'`);
  return range;
}

/** `value[/mask]`, hex or decimal; the mask defaults to all ones. */
export function markValue(text: string | undefined): [number, number] {
  const [value = '', mask = '0xffffffff'] = (text ?? '').split('/');
  const numbers: [number, number] = [Number(value) >>> 0, Number(mask) >>> 0];
  if (value === '' || Number.isNaN(Number(value)) || Number.isNaN(Number(mask))) {
    throw new Error(`bad mark '${text ?? ''}'`);
  }
  return numbers;
}

/** `1.2.3.4`, `1.2.3.4:80`, `[fd00::1]:80`. */
export function parseAddressPort(text: string): { ip: string; port: number | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const unbracketed = isIP(text) === 6 ? [text, undefined] : text.split(':');
  const [ip, port] = bracketed ? [bracketed[1] ?? '', bracketed[2]] : unbracketed;
  if (ip === undefined || isIP(ip) === 0 || (port !== undefined && !/^\d+$/.test(port))) {
    throw new Error(`bad --to-destination '${text}'`);
  }
  return { ip, port: port === undefined ? undefined : Number(port) };
}

/** Whether an address is this node's: loopback or one of `localAddresses`. */
export function localMatcher(localAddresses: readonly string[]): (address: string) => boolean {
  const local = ['127.0.0.0/8', '::1', ...localAddresses].map(cidrMatcher);
  return (address) => local.some((matches) => matches(address));
}
