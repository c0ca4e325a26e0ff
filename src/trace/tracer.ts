// A packet tracer over a node's saved netfilter tables (`iptables-save`): where does a new
// connection end up (which endpoint, masqueraded or not, accepted, rejected or dropped), through
// which rules? Random choices (`-m statistic`), unknown history (`-m recent --rcheck`) and
// conditions the tracer cannot decide (other software's matches) are explored both ways, so a
// trace returns every possible outcome, each with its probability and the assumptions it made.
// Only the nat and filter tables are walked: they hold every rule kube-proxy writes.

import { isIP } from 'node:net';

import {
  compileRule,
  type CompiledRule,
  type Flow,
  type Fork,
  type MatchContext,
  type Step,
  type Target,
  type Verdict,
} from './rules.js';
import { savedChain, type SavedTables } from './tables.js';
import { joinHostPort } from '../ip.js';
import { localMatcher } from './values.js';

export type { Step, Verdict } from './rules.js';

/** Where the packet enters the node. */
export type Origin = 'outside' | 'pod' | 'node';

export interface TracePacket {
  readonly source: string;
  readonly destination: string;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly destinationPort: number;
  /** Unknown interfaces make `-i`/`-o` matches unknown conditions, explored both ways. */
  readonly inInterface?: string;
  readonly outInterface?: string;
  /** outside: from off the node; pod: from a local pod (forwarded); node: generated on the node. */
  readonly origin: Origin;
  /** Addresses that `-m addrtype LOCAL` treats as the node's own (127.0.0.0/8 and ::1 always are). */
  readonly localAddresses: readonly string[];
}

export interface TraceOptions {
  /**
   * Whether the source is on a `-m recent` list (per `--name`, or `true`/`false` for all lists).
   * Lists not given are explored both ways, each outcome naming the assumption it made.
   */
  readonly recentState?: boolean | Readonly<Record<string, boolean>>;
  /** Initial packet mark (default 0). */
  readonly mark?: number;
  /** How many unknown conditions may fork the trace (default 64); past it they are assumed not to match. */
  readonly exploreLimit?: number;
}

export interface TraceOutcome {
  readonly verdict: Verdict;
  readonly dnat?: { readonly ip: string; readonly port: number };
  readonly masquerade: boolean;
  /** Chains entered, in order, as `table/CHAIN`. */
  readonly path: readonly string[];
  /** The rules that matched, in order. */
  readonly steps: readonly Step[];
  /** Product of the `-m statistic` branches taken (given the assumptions). */
  readonly probability: number;
  /** Assumptions made on the way, e.g. `recent KUBE-SEP-X: hit`. */
  readonly assumptions: readonly string[];
  readonly mark: number;
  /** Why the verdict is UNKNOWN. */
  readonly unknown?: string;
}

export interface TraceResult {
  readonly outcomes: readonly TraceOutcome[];
}

/** A short stable text for table-driven tests: `ACCEPT 10.180.0.1:80 masquerade`, `REJECT`. */
export function describeOutcome(outcome: TraceOutcome): string {
  const parts: string[] = [outcome.verdict];
  if (outcome.dnat) parts.push(joinHostPort(outcome.dnat.ip, outcome.dnat.port));
  if (outcome.masquerade) parts.push('masquerade');
  return parts.join(' ');
}

/** Walks a new connection through the nat and filter hooks as the kernel would for its origin. */
export function trace(saved: SavedTables, packet: TracePacket, options: TraceOptions = {}): TraceResult {
  const context = makeContext(saved, packet, options);
  const outcomes: TraceOutcome[] = [];
  const start: Flow = {
    destination: packet.destination,
    destinationPort: packet.destinationPort,
    mark: options.mark ?? 0,
    dnat: undefined,
    masquerade: false,
    path: [],
    steps: [],
    probability: 1,
    assumptions: [],
    recentLists: new Set(),
    unknown: undefined,
  };
  const hook = (table: string, chain: string, flows: readonly Flow[]): Flow[] => runHook(context, table, chain, flows, outcomes);

  let flows: Flow[];
  if (packet.origin === 'node') {
    flows = hook('filter', 'OUTPUT', hook('nat', 'OUTPUT', [start]));
    flows = hook('nat', 'POSTROUTING', flows);
    // Traffic to the node itself loops back and is delivered through filter INPUT.
    const looped = flows.filter((flow) => context.isLocal(flow.destination));
    flows = [...flows.filter((flow) => !context.isLocal(flow.destination)), ...hook('filter', 'INPUT', looped)];
  } else {
    flows = hook('nat', 'PREROUTING', [start]);
    const delivered = flows.filter((flow) => context.isLocal(flow.destination));
    const forwarded = flows.filter((flow) => !context.isLocal(flow.destination));
    // Locally delivered packets never reach POSTROUTING.
    const routed = hook('nat', 'POSTROUTING', hook('filter', 'FORWARD', forwarded));
    flows = [...hook('filter', 'INPUT', delivered), ...routed];
  }
  for (const flow of flows) outcomes.push(toOutcome(flow, 'ACCEPT'));
  return { outcomes };
}

interface Context extends MatchContext {
  readonly saved: SavedTables;
}

type Ending = { readonly flow: Flow; readonly end: 'continue' | 'return' | Verdict };

const maxDepth = 64;

function makeContext(saved: SavedTables, packet: TracePacket, options: TraceOptions): Context {
  for (const address of [packet.source, packet.destination, ...packet.localAddresses]) {
    if (isIP(address) === 0) throw new Error(`trace: '${address}' is not an IP address`);
  }
  const isLocal = localMatcher(packet.localAddresses);
  let budget = options.exploreLimit ?? 64;
  const mayExplore = (): boolean => budget-- > 0;
  return { saved, packet, recentState: options.recentState, isLocal, mayExplore };
}

function runHook(context: Context, table: string, chain: string, flows: readonly Flow[], outcomes: TraceOutcome[]): Flow[] {
  // A table or built-in chain missing from the dump has no rules: the packet passes.
  const policy = savedChain(context.saved, table, chain)?.policy ?? 'ACCEPT';
  const passed: Flow[] = [];
  for (const flow of flows) {
    for (const { flow: after, end } of runChain(context, table, chain, flow, 0)) {
      if (end === 'return' || end === 'continue') {
        if (policy === 'ACCEPT') passed.push(after);
        else outcomes.push(toOutcome(withStep(after, { table, chain, number: undefined, text: `policy ${policy}`, comment: undefined, target: policy }), policy));
      } else if (end === 'ACCEPT') passed.push(after);
      else outcomes.push(toOutcome(after, end));
    }
  }
  return passed;
}

function withStep(flow: Flow, step: Step): Flow {
  return { ...flow, steps: [...flow.steps, step] };
}

/** Runs a chain; every ending is 'return' (fell off the end or RETURN) or a verdict. */
function runChain(context: Context, table: string, chain: string, flow: Flow, depth: number): Ending[] {
  const entered: Flow = { ...flow, path: [...flow.path, `${table}/${chain}`] };
  if (depth > maxDepth) {
    return [{ flow: { ...entered, unknown: `chains nested deeper than ${maxDepth} at ${table}/${chain} (a loop?)` }, end: 'UNKNOWN' }];
  }
  const rules = savedChain(context.saved, table, chain)?.rules ?? [];
  let live: Flow[] = [entered];
  const endings: Ending[] = [];
  for (const rule of rules) {
    if (live.length === 0) break;
    const compiled = compileRule(rule);
    const next: Flow[] = [];
    for (const current of live) {
      for (const fork of evaluate(compiled, context, current)) {
        if (!fork.matched) {
          next.push(fork.flow);
          continue;
        }
        for (const ending of applyTarget(context, compiled, fork.flow, depth)) {
          if (ending.end === 'continue') next.push(ending.flow);
          else endings.push(ending);
        }
      }
    }
    live = next;
  }
  return [...endings, ...live.map((after): Ending => ({ flow: after, end: 'return' }))];
}

function evaluate(rule: CompiledRule, context: Context, flow: Flow): Fork[] {
  for (const test of rule.tests) if (!test(context, flow)) return [{ flow, matched: false }];
  let forks: Fork[] = [{ flow, matched: true }];
  for (const branch of rule.branches) {
    const next: Fork[] = [];
    for (const fork of forks) next.push(...(fork.matched ? branch(context, fork.flow, rule.rule) : [fork]));
    forks = next;
  }
  return forks;
}

function targetName(target: Target): string {
  switch (target.kind) {
    case 'none':
      return target.name ?? '';
    case 'verdict':
      return target.verdict;
    case 'return':
      return 'RETURN';
    case 'chain':
      return target.chain;
    case 'dnat':
      return 'DNAT';
    case 'masquerade':
      return target.name;
    case 'mark':
      return 'MARK';
    case 'opaque':
      return 'UNKNOWN';
  }
}

function applyTarget(context: Context, compiled: CompiledRule, matched: Flow, depth: number): Ending[] {
  const { rule, target } = compiled;
  const flow = withStep(matched, { table: rule.table, chain: rule.chain, number: rule.number, text: rule.text, comment: rule.comment, target: targetName(target) });
  switch (target.kind) {
    case 'none':
      return [{ flow, end: 'continue' }];
    case 'verdict':
      return [{ flow, end: target.verdict }];
    case 'return':
      return [{ flow, end: 'return' }];
    case 'mark':
      return [{ flow: { ...flow, mark: target.apply(flow.mark) >>> 0 }, end: 'continue' }];
    case 'dnat': {
      // DNAT ends the nat hook; later hooks see the rewritten destination.
      const port = target.port ?? flow.destinationPort;
      const dnat = { ip: target.ip, port };
      return [{ flow: { ...flow, destination: target.ip, destinationPort: port, dnat }, end: 'ACCEPT' }];
    }
    case 'masquerade':
      return [{ flow: { ...flow, masquerade: true }, end: 'ACCEPT' }];
    case 'opaque':
      return [{ flow: { ...flow, unknown: target.reason }, end: 'UNKNOWN' }];
    case 'chain': {
      if (savedChain(context.saved, rule.table, target.chain) === undefined) {
        const reason = `target ${target.chain} (${rule.table} ${rule.chain} #${rule.number}) is neither a chain in the dump nor a target the tracer knows`;
        return [{ flow: { ...flow, unknown: reason }, end: 'UNKNOWN' }];
      }
      // A goto's RETURN goes back past the chain that did the goto.
      return runChain(context, rule.table, target.chain, flow, depth + 1).map((ending) =>
        ending.end === 'return' && !target.goto ? { flow: ending.flow, end: 'continue' } : ending,
      );
    }
  }
}

function toOutcome(flow: Flow, verdict: Verdict): TraceOutcome {
  return {
    verdict,
    ...(flow.dnat ? { dnat: flow.dnat } : {}),
    masquerade: flow.masquerade,
    path: flow.path,
    steps: flow.steps,
    probability: flow.probability,
    assumptions: flow.assumptions,
    mark: flow.mark,
    ...(flow.unknown === undefined ? {} : { unknown: flow.unknown }),
  };
}
