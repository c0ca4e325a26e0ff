import { describe, expect, it } from 'vitest';
import { oldestSince } from '../../../src/nftables/nftables-proxier.js';

describe('oldestSince (the stale-chain batch clock)', () => {
  it('finds the oldest of 500k stale chains (a mass Service deletion at 10k) without overflowing the stack', () => {
    const stale = new Map<string, number>();
    for (let index = 0; index < 500_000; index++) stale.set(`endpoint-${index}`, 1_000 + (index % 997));
    stale.set('service-late', 5_000);
    stale.set('service-early', 7);
    expect(oldestSince(stale)).toBe(7);
  });

  it('is Infinity with nothing stale, so no deletion is due', () => {
    expect(oldestSince(new Map())).toBe(Infinity);
  });
});
