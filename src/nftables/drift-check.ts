// The nftables mode's periodic drift check: one terse listing of our table (`nft -t list table`),
// read outside the syncs on the schedule both modes share (agent/drift-reads.ts), compared rule by
// rule with the rule set last applied (drift.ts). So a rule changed or removed behind our back is
// repaired within two syncPeriods; a periodic sync that compares no read checks the canary instead.

import type { DriftCheck } from '../agent/proxier.js';
import { DriftReads, type DeferredCheck } from '../agent/drift-reads.js';
import { findRuleDrift, listedChains } from './drift.js';
import type { Nft } from './nft.js';
import type { NftRuleset } from './types.js';
import type { NftFamily } from './vocabulary.js';

type Picture = { readonly kind: 'listed'; readonly chains: ReadonlyMap<string, readonly string[]> | 'absent' } | { readonly kind: 'unread'; readonly message: string };

export class NftDriftChecker {
  private readonly reads: DriftReads<NftRuleset, Picture>;

  constructor(nft: Nft, family: NftFamily, monotonic: () => number) {
    this.reads = new DriftReads(() => listTable(nft, family), monotonic);
  }

  /** Begins a read in the background if none is under way and the budget allows; 'deferred' otherwise. */
  start(applied: NftRuleset, generation: number): DeferredCheck | undefined {
    return this.reads.start(applied, generation);
  }

  /** The finished read compared with what it began against, if nothing was applied since. */
  take(generation: number): Exclude<DriftCheck, { kind: 'deferred' }> | undefined {
    const taken = this.reads.take(generation, (applied, picture) => (picture.kind === 'listed' ? findRuleDrift(applied, picture.chains) : picture.message));
    if (taken === undefined) return undefined;
    const { outcome, seconds } = taken;
    return typeof outcome === 'string' ? { kind: 'unread', message: outcome, seconds } : { kind: 'checked', findings: outcome, seconds };
  }

  /** Resolves once the read under way (if any) has finished; for tests and shutdown. */
  readSettled(): Promise<void> {
    return this.reads.readSettled();
  }
}

async function listTable(nft: Nft, family: NftFamily): Promise<Picture> {
  try {
    const listing = await nft.listTable(family);
    if (listing.kind === 'unread') return listing;
    return { kind: 'listed', chains: listing.kind === 'absent' ? 'absent' : listedChains(listing.text) };
  } catch (error) {
    return { kind: 'unread', message: error instanceof Error ? error.message : String(error) };
  }
}
