import { describe, expect, it } from 'vitest';
import { cidrContains, cidrsOverlap, familyOf, loopbackCidr, parseCidr, parseIP } from '../../src/ip.js';

describe('the one IP module: both families as values', () => {
  it.each([
    ['10.1.2.3', 'IPv4'],
    ['fd00::1', 'IPv6'],
    ['::ffff:10.0.0.1', 'IPv6'],
    ['010.0.0.1', undefined],
    ['10.0.0.256', undefined],
    ['nonsense', undefined],
  ] as const)('familyOf(%s) = %s', (text, family) => {
    expect(familyOf(text)).toBe(family);
  });

  it('parseIP keeps an address only in the family asked for', () => {
    expect(parseIP('10.0.0.1', 'IPv4')).toBe('10.0.0.1');
    expect(parseIP('10.0.0.1', 'IPv6')).toBeUndefined();
    expect(parseIP('fd00::1', 'IPv6')).toBe('fd00::1');
    expect(parseIP('fd00::1', 'IPv4')).toBeUndefined();
  });

  // input -> canonical form; the family is the canonical form's.
  const canonical: Readonly<Record<string, string>> = {
    '10.1.2.3/8': '10.0.0.0/8',
    ' 192.168.1.1/32 ': '192.168.1.1/32',
    '0.0.0.0/0': '0.0.0.0/0',
    'fd00:10:244::17/56': 'fd00:10:244::/56',
    'FD00:0:0:0:0:0:0:1/128': 'fd00::1/128',
    '2001:db8:0:0:1:0:0:1/64': '2001:db8::/64',
    '::/0': '::/0',
    '::ffff:10.1.2.3/120': '::ffff:a01:200/120',
  };
  it.each(Object.entries(canonical))('parseCidr(%j) is %s', (text, expected) => {
    expect(parseCidr(text)).toMatchObject({ family: expected.includes(':') ? 'IPv6' : 'IPv4', text: expected });
  });

  it.each(['10.0.0.0', '10.0.0.0/33', 'fd00::/129', '10.0.0/8', '10.0.0.0/8/8', '10.0.0.0/ 8', 'x/8'])('parseCidr rejects %j', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });

  it('takes a bare address as a host CIDR only when asked', () => {
    expect(parseCidr('10.0.0.5', { bareAddress: true })?.text).toBe('10.0.0.5/32');
    expect(parseCidr('fd00::5', { bareAddress: true })?.text).toBe('fd00::5/128');
  });

  it('containment and overlap never cross families', () => {
    const v4 = parseCidr('10.0.0.0/8');
    const v6 = parseCidr('fd00::/8');
    if (v4 === undefined || v6 === undefined) throw new Error('unparsed');
    expect(cidrContains(v4, '10.200.0.1')).toBe(true);
    expect(cidrContains(v4, '11.0.0.1')).toBe(false);
    expect(cidrContains(v4, 'fd00::1')).toBe(false);
    expect(cidrContains(v6, 'fd12::1')).toBe(true);
    expect(cidrContains(v6, '10.0.0.1')).toBe(false);
    expect(cidrsOverlap(loopbackCidr('IPv4'), parseCidr('127.0.0.2/32') ?? v4)).toBe(true);
    expect(cidrsOverlap(loopbackCidr('IPv4'), parseCidr('0.0.0.0/0') ?? v4)).toBe(true);
    expect(cidrsOverlap(loopbackCidr('IPv4'), parseCidr('192.168.0.0/16') ?? v4)).toBe(false);
    expect(cidrsOverlap(loopbackCidr('IPv6'), v4)).toBe(false);
  });
});
