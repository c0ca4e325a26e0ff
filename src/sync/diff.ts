// Plans one sync: the complete payload, or the delta between the RuleSet the kernel holds and the
// desired one (ADR 001). A partial plan costs a reference scan of the service port map (of its
// shards, when both RuleSets come from the model's PersistentMap through one RenderCache) plus work
// proportional to the service ports that changed. Pure.

import { PersistentMap } from '../model/persistent-map.js';
import { deepEqual } from '../model/equal.js';
import type { BuiltinJump, OrderedChain, RuleSet, ServicePortRules, SharedChain, SharedRule } from '../render/types.js';
import type { TableName } from '../netfilter/vocabulary.js';
import {
  buildFullPayload,
  chainKey,
  PayloadBuilder,
  sharedServiceRules,
  sortedServicePortKeys,
  type BuiltPayload,
  type FullPayloadOptions,
  type SyncStats,
} from './payload.js';
import { buildFullPayloadParts, combineStats } from './full-parts.js';

export type { SyncStats } from './payload.js';

export interface SyncPlan {
  readonly kind: 'full' | 'partial';
  /** '' when nothing changed: the caller skips the restore. Joined from `chunks` when read. */
  readonly payload: string;
  /** The payload as newline-terminated pieces, what the restore writes (generated while written, see BuiltPayload). */
  readonly chunks: Iterable<string>;
  readonly stats: SyncStats;
  /** When set, `payload` is applied as these restores, in order (full-parts.ts); their concatenation is `payload`. */
  readonly parts?: readonly string[];
}

/** What a full sync needs to know about the kernel (saved-tables.ts), per table. */
export interface ObservedTables {
  /** Our chains that exist; those not desired are deleted. */
  readonly existingChains: ReadonlyMap<TableName, ReadonlySet<string>>;
  /** Desired jumps the kernel lacks; only these are inserted, so a full sync never duplicates one. */
  readonly missingJumps: readonly BuiltinJump[];
  /** Built-in rules into our chains that no desired jump matches (e.g. left by another kube-proxy). */
  readonly staleJumps?: readonly BuiltinJump[];
  /** Which of the rule set's ensured chains exist already (they are created only when missing). */
  readonly presentEnsuredChains?: ReadonlyMap<TableName, ReadonlySet<string>>;
}

/**
 * Every chain we own, written whole. With `chainsPerPart` > 0 a large rule set is split into
 * several restores of about that many chains each (full-parts.ts: iptables-nft-restore's cost
 * grows with the square of one call's size).
 */
export function planFullSync(desired: RuleSet, kernel: ObservedTables, chainsPerPart = 0): SyncPlan {
  const options: FullPayloadOptions = {
    jumps: 'insert',
    onlyJumps: kernel.missingJumps,
    existingChains: kernel.existingChains,
    staleJumps: kernel.staleJumps ?? [],
    ...(kernel.presentEnsuredChains !== undefined ? { presentEnsuredChains: kernel.presentEnsuredChains } : {}),
  };
  const parts = buildFullPayloadParts(desired, options, chainsPerPart);
  if (parts !== undefined) {
    const texts = parts.map((part) => part.payload);
    // `+` keeps the concatenation a rope: no copy unless someone reads the whole text.
    return { kind: 'full', payload: texts.reduce((text, part) => text + part, ''), chunks: texts, stats: combineStats(parts), parts: texts };
  }
  return planOf('full', buildFullPayload(desired, options));
}

/** Full when nothing is known to be applied or the caller forces it, partial otherwise. */
export function planSync(
  applied: RuleSet | undefined,
  desired: RuleSet,
  options: ObservedTables & { readonly forceFull: boolean; readonly fullSyncChainsPerPart?: number },
): SyncPlan {
  if (applied === undefined || options.forceFull) return planFullSync(desired, options, options.fullSyncChainsPerPart ?? 0);
  return planPartialSync(applied, desired);
}

/**
 * The delta from `applied` (what the kernel holds) to `desired`. Tables without changes do not
 * appear; an empty plan has payload ''.
 */
export function planPartialSync(applied: RuleSet, desired: RuleSet): SyncPlan {
  const builder = new PayloadBuilder();
  planStaticChains(builder, applied.staticChains, desired.staticChains);
  const rewrittenShared = planSharedChains(builder, applied.sharedChains, desired);
  planServicePorts(builder, applied.servicePorts, desired.servicePorts, rewrittenShared);
  planJumps(builder, applied.jumps, desired.jumps);
  return planOf('partial', builder.build());
}

/** The plan of a built payload, without reading (so joining) its text. */
function planOf(kind: SyncPlan['kind'], built: BuiltPayload): SyncPlan {
  return {
    kind,
    get payload() {
      return built.payload;
    },
    chunks: built.chunks,
    stats: built.stats,
  };
}

/** Static chains are few and small: compared by content every time. */
function planStaticChains(builder: PayloadBuilder, applied: readonly OrderedChain[], desired: readonly OrderedChain[]): void {
  const previous = new Map(applied.map((chain) => [chainKey(chain.table, chain.name), chain]));
  for (const chain of desired) {
    const id = chainKey(chain.table, chain.name);
    const before = previous.get(id);
    previous.delete(id);
    if (before !== undefined && deepEqual(before.rules, chain.rules)) continue;
    builder.writeChain(chain.table, chain.name, chain.rules);
  }
  for (const chain of previous.values()) builder.deleteChain(chain.table, chain.name);
}

/**
 * Shared chains that are new or whose trailer changed are rewritten whole (their service rules
 * gathered from every service port); gone ones are deleted. Returns the chainKeys handled here, so
 * no in-place edit targets them.
 */
function planSharedChains(builder: PayloadBuilder, applied: readonly SharedChain[], desired: RuleSet): Set<string> {
  const previous = new Map(applied.map((chain) => [chainKey(chain.table, chain.name), chain]));
  const rewrite: SharedChain[] = [];
  const handled = new Set<string>();
  for (const chain of desired.sharedChains) {
    const id = chainKey(chain.table, chain.name);
    const before = previous.get(id);
    previous.delete(id);
    if (before !== undefined && deepEqual(before.trailer, chain.trailer)) continue;
    rewrite.push(chain);
    handled.add(id);
  }
  if (rewrite.length > 0) {
    // O(service ports), but only when a trailer changes (a node-wide setting, not a Service).
    const rules = sharedServiceRules(desired, sortedServicePortKeys(desired), handled);
    for (const chain of rewrite) {
      const serviceRules = rules.get(chainKey(chain.table, chain.name)) ?? [];
      builder.writeChain(chain.table, chain.name, [...serviceRules, ...chain.trailer]);
      builder.countSharedRulesWritten(serviceRules.length);
    }
  }
  for (const chain of previous.values()) {
    builder.deleteChain(chain.table, chain.name);
    handled.add(chainKey(chain.table, chain.name));
  }
  return handled;
}

/** What the changed service ports add and remove, collected before writing so that moves between
 * service ports (a chain or rule that one drops and another takes) cancel out. */
interface ServicePortDelta {
  readonly written: Map<string, OrderedChain>;
  readonly stale: Map<string, OrderedChain>;
  readonly addedRules: Map<string, SharedRule>;
  readonly removedRules: Map<string, SharedRule>;
}

function planServicePorts(
  builder: PayloadBuilder,
  applied: ReadonlyMap<string, ServicePortRules>,
  desired: ReadonlyMap<string, ServicePortRules>,
  handledShared: ReadonlySet<string>,
): void {
  const delta: ServicePortDelta = { written: new Map(), stale: new Map(), addedRules: new Map(), removedRules: new Map() };
  // The renderer's map shares every shard the change did not touch: only the replaced ones need a look.
  PersistentMap.forEachChangedShard(applied, desired, (before, after) => diffServicePortMaps(before, after, delta));

  for (const id of delta.written.keys()) delta.stale.delete(id);
  for (const id of [...delta.addedRules.keys()]) {
    if (delta.removedRules.delete(id)) delta.addedRules.delete(id);
  }

  for (const chain of delta.written.values()) builder.writeChain(chain.table, chain.name, chain.rules);
  for (const shared of delta.removedRules.values()) {
    if (!handledShared.has(chainKey(shared.table, shared.chain))) builder.deleteSharedRule(shared.table, shared.chain, shared.rule);
  }
  // Each `-I <chain> 1` lands above the one before: inserting in reverse leaves a service port's new
  // rules in the order it lists them (a NodePort's 127.0.0.0/8 counting rule before its general one).
  const added = [...delta.addedRules.values()];
  for (let index = added.length - 1; index >= 0; index--) {
    const shared = added[index];
    if (shared !== undefined && !handledShared.has(chainKey(shared.table, shared.chain))) builder.insertSharedRule(shared.table, shared.chain, shared.rule);
  }
  for (const chain of delta.stale.values()) builder.deleteChain(chain.table, chain.name);
}

/** Collects the delta of every service port whose rules are not the very same object. */
function diffServicePortMaps(
  applied: ReadonlyMap<string, ServicePortRules>,
  desired: ReadonlyMap<string, ServicePortRules>,
  delta: ServicePortDelta,
): void {
  // The renderer keeps the identity of unchanged ServicePortRules, so this scan is one Map lookup
  // and one reference comparison per service port (forEach: no entry array per iteration).
  let kept = 0;
  desired.forEach((current, key) => {
    const previous = applied.get(key);
    if (previous !== undefined) kept++;
    if (previous !== current) diffServicePort(previous, current, delta);
  });
  // Only when some applied key is missing from desired is a second scan needed to find it.
  if (kept < applied.size) {
    applied.forEach((previous, key) => {
      if (!desired.has(key)) diffServicePort(previous, undefined, delta);
    });
  }
}

function diffServicePort(previous: ServicePortRules | undefined, current: ServicePortRules | undefined, delta: ServicePortDelta): void {
  const previousChains = new Map((previous?.chains ?? []).map((chain) => [chainKey(chain.table, chain.name), chain]));
  for (const chain of current?.chains ?? []) {
    const id = chainKey(chain.table, chain.name);
    const before = previousChains.get(id);
    previousChains.delete(id);
    // Content, not identity: an endpoint change leaves the other endpoints' KUBE-SEP chains as they were.
    if (before !== undefined && deepEqual(before.rules, chain.rules)) continue;
    delta.written.set(id, chain);
  }
  for (const [id, chain] of previousChains) delta.stale.set(id, chain);

  const previousRules = new Map((previous?.sharedRules ?? []).map((shared) => [sharedRuleKey(shared), shared]));
  for (const shared of current?.sharedRules ?? []) {
    const id = sharedRuleKey(shared);
    if (!previousRules.delete(id)) delta.addedRules.set(id, shared);
  }
  for (const [id, shared] of previousRules) delta.removedRules.set(id, shared);
}

function sharedRuleKey(shared: SharedRule): string {
  return `${shared.table} ${shared.chain} ${shared.rule}`;
}

/** Jumps change only with node-wide settings; inserted ones go on top, in the RuleSet's order. */
function planJumps(builder: PayloadBuilder, applied: readonly BuiltinJump[], desired: readonly BuiltinJump[]): void {
  if (applied === desired) return;
  const key = (jump: BuiltinJump): string => `${jump.table} ${jump.chain} ${jump.rule}`;
  const before = new Set(applied.map(key));
  const after = new Set(desired.map(key));
  for (const jump of applied) if (!after.has(key(jump))) builder.deleteJump(jump);
  for (let index = desired.length - 1; index >= 0; index--) {
    const jump = desired[index];
    if (jump !== undefined && !before.has(key(jump))) builder.insertJump(jump);
  }
}
