import { describe, expect, it } from 'vitest';
import { PersistentMap } from '../../../src/model/persistent-map.js';

describe('PersistentMap', () => {
  it('applies updates into a new map and leaves the old one as it was', () => {
    const empty = PersistentMap.empty<number>();
    const first = empty.withUpdates(Array.from({ length: 1000 }, (_, i) => [`key-${i}`, i] as const));
    const second = first.withUpdates([
      ['key-1', 100],
      ['key-2', undefined],
      ['missing', undefined],
      ['new', 7],
    ]);
    expect([empty.size, first.size, second.size]).toEqual([0, 1000, 1000]);
    expect([first.get('key-1'), first.has('key-2'), first.has('new')]).toEqual([1, true, false]);
    expect([second.get('key-1'), second.has('key-2'), second.get('new')]).toEqual([100, false, 7]);
    expect(new Map(second).size).toBe(1000);
    expect([...second.keys()].length).toBe(1000);
    expect([...second.values()].reduce((sum, value) => sum + value, 0)).toBe(499500 - 1 - 2 + 100 + 7);
    let visited = 0;
    second.forEach(() => visited++);
    expect(visited).toBe(1000);
  });

  it('returns itself when there is nothing to apply', () => {
    const map = PersistentMap.empty<number>().withUpdates([['a', 1]]);
    expect(map.withUpdates([])).toBe(map);
  });
});
