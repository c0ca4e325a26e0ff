// An immutable string-keyed map whose updates copy only what they touch. Each snapshot publishes a
// new DesiredState.servicePorts while earlier ones stay valid (the proxier diffs old against new);
// copying a plain Map of 10,000+ entries for every one-endpoint change would cost milliseconds.
// Keys are spread over fixed shards by hash; an update copies the touched shards and shares the rest.

const shardCount = 256;
const noEntries: ReadonlyMap<string, never> = new Map<string, never>();

function shardOf(key: string): number {
  // FNV-1a: cheap and well spread for short ASCII keys like `ns/name:port/TCP`.
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shardCount;
}

export class PersistentMap<V> implements ReadonlyMap<string, V> {
  private constructor(
    private readonly shards: readonly ReadonlyMap<string, V>[],
    readonly size: number,
  ) {}

  static empty<V>(): PersistentMap<V> {
    return new PersistentMap<V>(new Array<ReadonlyMap<string, V>>(shardCount).fill(noEntries), 0);
  }

  /** A new map with `updates` applied (`undefined` deletes); this map is left as it was. */
  withUpdates(updates: Iterable<readonly [string, V | undefined]>): PersistentMap<V> {
    const shards = [...this.shards];
    const copied = new Set<number>();
    let size = this.size;
    for (const [key, value] of updates) {
      const index = shardOf(key);
      let shard = shards[index] as Map<string, V>;
      if (!copied.has(index)) {
        shard = new Map(shard);
        shards[index] = shard;
        copied.add(index);
      }
      const had = shard.has(key);
      if (value === undefined) {
        if (had) {
          shard.delete(key);
          size--;
        }
      } else {
        shard.set(key, value);
        if (!had) size++;
      }
    }
    return copied.size === 0 ? this : new PersistentMap(shards, size);
  }

  /**
   * The shards, for consumers that skip unchanged ones by identity (the render cache, the differ):
   * an update replaces only the shards it touches, and every PersistentMap puts a given key in the
   * same shard index, so two maps' shards can be compared pairwise.
   */
  get shardMaps(): readonly ReadonlyMap<string, V>[] {
    return this.shards;
  }

  /**
   * A map with the same keys and `transform`ed values, built shard by shard. A shard that is the
   * very object it was in `previous.source` takes `previous.result`'s shard as it is, so mapping a
   * map that differs from the previous one in one key costs one shard, not every entry.
   * `onReuse` hears of each shard taken over (e.g. to count its entries).
   */
  mapValues<W>(
    transform: (value: V, key: string) => W,
    previous?: { readonly source: PersistentMap<V>; readonly result: PersistentMap<W> },
    onReuse?: (shard: ReadonlyMap<string, W>) => void,
  ): PersistentMap<W> {
    const shards = new Array<ReadonlyMap<string, W>>(shardCount);
    for (let index = 0; index < shardCount; index++) {
      const shard = this.shards[index] as ReadonlyMap<string, V>;
      const reused = previous !== undefined && previous.source.shards[index] === shard ? previous.result.shards[index] : undefined;
      if (reused !== undefined) {
        shards[index] = reused;
        onReuse?.(reused);
      } else if (shard.size === 0) {
        shards[index] = noEntries;
      } else {
        const mapped = new Map<string, W>();
        shard.forEach((value, key) => mapped.set(key, transform(value, key)));
        shards[index] = mapped;
      }
    }
    return new PersistentMap(shards, this.size);
  }

  /**
   * Calls `visit` with each pair of shards that may differ between `before` and `after`: when both
   * are PersistentMaps, a shard that is the same object on both sides is skipped whole (a key sits
   * in the same shard index in both); otherwise the two maps themselves are the one pair. For
   * differs: a change at 10k service ports looks at one shard of 256.
   */
  static forEachChangedShard<V>(
    before: ReadonlyMap<string, V>,
    after: ReadonlyMap<string, V>,
    visit: (before: ReadonlyMap<string, V>, after: ReadonlyMap<string, V>) => void,
  ): void {
    if (!(before instanceof PersistentMap && after instanceof PersistentMap)) {
      visit(before, after);
      return;
    }
    const beforeShards = (before as PersistentMap<V>).shards;
    (after as PersistentMap<V>).shards.forEach((shard, index) => {
      const previous = beforeShards[index] as ReadonlyMap<string, V>;
      if (previous !== shard) visit(previous, shard);
    });
  }

  get(key: string): V | undefined {
    return (this.shards[shardOf(key)] as ReadonlyMap<string, V>).get(key);
  }

  has(key: string): boolean {
    return (this.shards[shardOf(key)] as ReadonlyMap<string, V>).has(key);
  }

  forEach(callback: (value: V, key: string, map: ReadonlyMap<string, V>) => void, thisArg?: unknown): void {
    // Shard by shard, without a generator per entry: this runs over every service port.
    for (const shard of this.shards) shard.forEach((value, key) => callback.call(thisArg, value, key, this));
  }

  *entries(): MapIterator<[string, V]> {
    for (const shard of this.shards) yield* shard.entries();
  }

  *keys(): MapIterator<string> {
    for (const shard of this.shards) yield* shard.keys();
  }

  *values(): MapIterator<V> {
    for (const shard of this.shards) yield* shard.values();
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }
}
