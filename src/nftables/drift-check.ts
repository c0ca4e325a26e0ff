// The nftables mode's periodic drift check: one terse listing of our table (`nft -t list table`),
// compared rule by rule with the rule set last applied (drift.ts). As in iptables mode
// (sync/drift-check.ts) the listing is read OUTSIDE the sync: a periodic sync starts it and goes on;
// the next sync takes the finished read and compares it, unless something was applied since the
// read began (then the picture is older than the kernel and it is discarded). So a rule changed or
// removed behind our back is repaired within two syncPeriods. Reads are held to a quarter of the
// wall time; a periodic sync that compares no read checks the canary instead.

import type { DriftCheck } from '../agent/proxier.js';
import { findRuleDrift, listedChains } from './drift.js';
import type { Nft } from './nft.js';
import type { NftRuleset } from './types.js';
import type { NftFamily } from './vocabulary.js';

const CHECK_TIME_SHARE = 0.25;

type ReadResult = { readonly kind: 'listed'; readonly chains: ReadonlyMap<string, readonly string[]> | 'absent' } | { readonly kind: 'unread'; readonly message: string };

interface Read {
  readonly applied: NftRuleset;
  readonly generation: number;
  readonly started: number;
  done: { readonly result: ReadResult; readonly ended: number } | undefined;
  settled: Promise<void>;
}

export class NftDriftChecker {
  private notBefore = Number.NEGATIVE_INFINITY;
  private read: Read | undefined;

  constructor(
    private readonly nft: Nft,
    private readonly family: NftFamily,
    private readonly monotonic: () => number,
  ) {}

  /** Begins a read in the background if none is under way and the budget allows; 'deferred' otherwise. */
  start(applied: NftRuleset, generation: number): Extract<DriftCheck, { kind: 'deferred' }> | undefined {
    if (this.read !== undefined) return undefined;
    const started = this.monotonic();
    if (started < this.notBefore) return { kind: 'deferred', dueInMs: Math.ceil(this.notBefore - started), seconds: 0 };
    const read: Read = { applied, generation, started, done: undefined, settled: Promise.resolve() };
    read.settled = this.list().then((result) => {
      read.done = { result, ended: this.monotonic() };
    });
    this.read = read;
    return undefined;
  }

  /** The finished read compared with what it began against, if nothing was applied since. */
  take(generation: number): Exclude<DriftCheck, { kind: 'deferred' }> | undefined {
    const read = this.read;
    if (read?.done === undefined) return undefined;
    this.read = undefined;
    const { result, ended } = read.done;
    if (read.generation !== generation) {
      this.spent(read.started, ended - read.started);
      return undefined;
    }
    const compareStart = this.monotonic();
    const findings = result.kind === 'listed' ? findRuleDrift(read.applied, result.chains) : undefined;
    const spentMs = ended - read.started + (this.monotonic() - compareStart);
    this.spent(read.started, spentMs);
    return findings === undefined
      ? { kind: 'unread', message: result.kind === 'unread' ? result.message : '', seconds: spentMs / 1000 }
      : { kind: 'checked', findings, seconds: spentMs / 1000 };
  }

  /** Resolves once the read under way (if any) has finished; for tests and shutdown. */
  async readSettled(): Promise<void> {
    await this.read?.settled;
  }

  private spent(started: number, spentMs: number): void {
    this.notBefore = started + spentMs / CHECK_TIME_SHARE;
  }

  private async list(): Promise<ReadResult> {
    try {
      const listing = await this.nft.listTable(this.family);
      if (listing.kind === 'unread') return listing;
      return { kind: 'listed', chains: listing.kind === 'absent' ? 'absent' : listedChains(listing.text) };
    } catch (error) {
      return { kind: 'unread', message: error instanceof Error ? error.message : String(error) };
    }
  }
}
