// The nftables mode's periodic drift check: one terse listing of our table (`nft -t list table`),
// read outside the syncs on the schedule both modes share (agent/drift-reads.ts), compared rule by
// rule with the rule set last applied (drift.ts). So a rule changed or removed behind our back is
// repaired within two syncPeriods; a periodic sync that compares no read checks the canary instead.

import type { DriftCheck, DriftFinding } from '../agent/proxier.js';
import { DriftReads, type DeferredCheck } from '../agent/drift-reads.js';
import { findRuleDrift, listedChains } from './drift.js';
import type { Nft } from './nft.js';
import type { NftRuleset } from './types.js';
import type { NftFamily } from './vocabulary.js';

/** What a read found, compared as soon as it finished (outside the syncs: ~1 s of parsing and comparing at 10k Services). */
type Picture = { readonly kind: 'compared'; readonly findings: readonly DriftFinding[] } | { readonly kind: 'unread'; readonly message: string };

export class NftDriftChecker {
  private readonly reads: DriftReads<NftRuleset, Picture>;

  constructor(nft: Nft, family: NftFamily, monotonic: () => number) {
    this.reads = new DriftReads((applied) => readAndCompare(nft, family, applied), monotonic);
  }

  /** Begins a read in the background if none is under way and the budget allows; 'deferred' otherwise. */
  start(applied: NftRuleset, generation: number): DeferredCheck | undefined {
    return this.reads.start(applied, generation);
  }

  /** The finished read compared with what it began against, if nothing was applied since. */
  take(generation: number): Exclude<DriftCheck, { kind: 'deferred' }> | undefined {
    const taken = this.reads.take(generation, (_, picture) => picture);
    if (taken === undefined) return undefined;
    const { outcome, seconds } = taken;
    return outcome.kind === 'unread' ? { kind: 'unread', message: outcome.message, seconds } : { kind: 'checked', findings: outcome.findings, seconds };
  }

  /** Resolves once the read under way (if any) has finished; for tests and shutdown. */
  readSettled(): Promise<void> {
    return this.reads.readSettled();
  }
}

async function readAndCompare(nft: Nft, family: NftFamily, applied: NftRuleset): Promise<Picture> {
  try {
    const listing = await nft.listTable(family);
    if (listing.kind === 'unread') return listing;
    return { kind: 'compared', findings: findRuleDrift(applied, listing.kind === 'absent' ? 'absent' : listedChains(listing.text)) };
  } catch (error) {
    return { kind: 'unread', message: error instanceof Error ? error.message : String(error) };
  }
}
