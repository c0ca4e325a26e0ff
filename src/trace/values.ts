// Small value parsers of iptables rule options for the tracer: addresses and CIDRs of either
// family, port ranges, marks, `--to-destination`.

import { isIP } from 'node:net';

/** `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; candidates of the other family never match. */
export function cidrMatcher(value: string): (address: string) => boolean {
  const [address = '', prefixText] = value.split('/');
  const network = addressBits(address);
  const width = network?.family === 6 ? 128 : 32;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!network || !Number.isInteger(prefix) || prefix < 0 || prefix > width) {
    throw new Error(`'${value}' is not an address or CIDR`);
  }
  const shift = BigInt(width - prefix);
  const wanted = network.value >> shift;
  return (candidate) => {
    const bits = addressBits(candidate);
    return bits !== undefined && bits.family === network.family && bits.value >> shift === wanted;
  };
}

/** An address as a number; memoised because a trace compares the same few addresses many times. */
const addressCache = new Map<string, { family: 4 | 6; value: bigint } | undefined>();
function addressBits(address: string): { family: 4 | 6; value: bigint } | undefined {
  if (addressCache.has(address)) return addressCache.get(address);
  let result: { family: 4 | 6; value: bigint } | undefined;
  const kind = isIP(address);
  if (kind === 4) {
    result = { family: 4, value: address.split('.').reduce((sum, part) => (sum << 8n) | BigInt(part), 0n) };
  } else if (kind === 6) {
    // Expand `::` and a trailing dotted quad into eight 16-bit groups.
    let text = address.toLowerCase();
    const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
    if (dotted) {
      const [a = 0, b = 0, c = 0, d = 0] = dotted.split('.').map(Number);
      text = `${text.slice(0, -dotted.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
    }
    const [head = '', tail] = text.split('::');
    const headGroups = head === '' ? [] : head.split(':');
    const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
    const zeros = Array.from({ length: 8 - headGroups.length - tailGroups.length }, () => '0');
    const groups = tail === undefined ? headGroups : [...headGroups, ...zeros, ...tailGroups];
    result = { family: 6, value: groups.reduce((sum, group) => (sum << 16n) | BigInt(`0x${group}`), 0n) };
  }
  if (addressCache.size > 10_000) addressCache.clear();
  addressCache.set(address, result);
  return result;
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

export function formatAddress(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
