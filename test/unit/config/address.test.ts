import { describe, expect, it } from 'vitest';
import { formatBindAddress, parseBindAddress } from '../../../src/config/address.js';
import { parseCidr } from '../../../src/ip.js';

/** The IPv4 CIDR's canonical form, as the configuration reads one (src/ip.ts). */
function normaliseIPv4Cidr(text: string): string | undefined {
  const cidr = parseCidr(text);
  return cidr?.family === 'IPv4' ? cidr.text : undefined;
}

describe('normaliseIPv4Cidr', () => {
  it.each([
    ['10.244.0.0/16', '10.244.0.0/16'],
    ['10.244.3.7/16', '10.244.0.0/16'],
    [' 192.168.1.1/32 ', '192.168.1.1/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['172.16.5.4/12', '172.16.0.0/12'],
  ])('%s -> %s', (input, output) => {
    expect(normaliseIPv4Cidr(input)).toBe(output);
  });

  it.each(['10.0.0.0', '10.0.0.0/33', '10.0.0/8', '10.0.0.0/-1', '10.0.0.0/8/8', 'fd00::/64', '10.0.0.0/ 8'])('rejects %j', (input) => {
    expect(normaliseIPv4Cidr(input)).toBeUndefined();
  });
});

describe('parseBindAddress', () => {
  it.each([
    ['0.0.0.0:10256', { host: '0.0.0.0', port: 10256 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    [':10249', { host: '0.0.0.0', port: 10249 }],
    ['[::]:10256', { host: '::', port: 10256 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
  ])('%s', (input, expected) => {
    expect(parseBindAddress(input)).toEqual(expected);
  });

  it.each([
    ['10256', 'IP:port'],
    ['localhost:10256', 'IP address'],
    ['0.0.0.0:65536', '0..65535'],
    ['0.0.0.0:http', '0..65535'],
    ['::1:8080', 'brackets'],
    ['[10.0.0.1]:80', 'IPv6'],
  ])('rejects %s', (input, reason) => {
    const parsed = parseBindAddress(input);
    expect(parsed).toHaveProperty('reason');
    expect('reason' in parsed ? parsed.reason : '').toContain(reason);
  });

  it('formats IPv6 hosts with brackets', () => {
    expect(formatBindAddress({ host: '::', port: 10256 })).toBe('[::]:10256');
    expect(formatBindAddress({ host: '0.0.0.0', port: 10249 })).toBe('0.0.0.0:10249');
  });
});
