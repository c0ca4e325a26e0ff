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

  it('forEachChangedShard visits only the shards an update replaced, with every changed key in them; two plain maps as one pair', () => {
    const first = PersistentMap.empty<number>().withUpdates(Array.from({ length: 1000 }, (_, i) => [`key-${i}`, i] as const));
    const second = first.withUpdates([['key-1', 100], ['key-2', undefined]]);
    const pairs: [ReadonlyMap<string, number>, ReadonlyMap<string, number>][] = [];
    PersistentMap.forEachChangedShard(first, second, (before, after) => pairs.push([before, after]));
    expect(pairs.length).toBeGreaterThanOrEqual(1);
    expect(pairs.length).toBeLessThanOrEqual(2);
    const changed = new Set<string>();
    for (const [before, after] of pairs) {
      for (const [key, value] of after) if (before.get(key) !== value) changed.add(key);
      for (const key of before.keys()) if (!after.has(key)) changed.add(key);
    }
    expect([...changed].sort()).toEqual(['key-1', 'key-2']);
    PersistentMap.forEachChangedShard(second, second, () => expect.unreachable('identical maps share every shard'));
    const plain = new Map([['a', 1]]);
    const visits: unknown[] = [];
    PersistentMap.forEachChangedShard(plain, second, (before, after) => visits.push([before, after]));
    expect(visits).toEqual([[plain, second]]);
  });
});
