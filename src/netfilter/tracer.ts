// A packet tracer over FakeNetfilter's tables, for behavioural tests: where does a new connection
// end up (which endpoint, masqueraded or not, accepted or rejected)? Random choices
// (`-m statistic`) and unknown history (`-m recent --rcheck`) are explored both ways, so a trace
// returns every possible outcome. A test-time tool: rules it cannot model throw.

import { isIP } from 'node:net';

import type { ChainPolicy, FakeRule, FakeTableName } from './fake.js';
import {
  cidrMatcher,
  compileRule,
  formatAddress,
  type CompiledRule,
  type Flow,
  type Fork,
  type MatchContext,
  type Target,
  type Verdict,
} from './tracer-rules.js';

export type { Verdict } from './tracer-rules.js';

/** What the tracer reads; FakeNetfilter satisfies it. */
export interface TraceTables {
  ruleEntries(table: FakeTableName, chain: string): readonly FakeRule[] | undefined;
  policy(table: FakeTableName, chain: string): ChainPolicy | undefined;
}

export interface TracePacket {
  readonly source: string;
  readonly destination: string;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly destinationPort: number;
  readonly inInterface?: string;
  readonly outInterface?: string;
  /** external: arrives from off the node; pod: arrives from a local pod (forwarded); local: generated on the node. */
  readonly origin: 'external' | 'local' | 'pod';
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
}

export interface TraceOutcome {
  readonly verdict: Verdict;
  readonly dnat?: { readonly ip: string; readonly port: number };
  readonly masquerade: boolean;
  /** Chains entered, in order, as `table/CHAIN`. */
  readonly path: readonly string[];
  /** Product of the `-m statistic` branches taken (given the assumptions). */
  readonly probability: number;
  /** `-m recent` outcomes assumed on the way, e.g. `recent KUBE-SEP-X: hit`. */
  readonly assumptions: readonly string[];
  readonly mark: number;
}

export interface TraceResult {
  readonly outcomes: readonly TraceOutcome[];
}

/** A short stable text for table-driven tests: `ACCEPT 10.180.0.1:80 masquerade`, `REJECT`. */
export function describeOutcome(outcome: TraceOutcome): string {
  const parts: string[] = [outcome.verdict];
  if (outcome.dnat) parts.push(formatAddress(outcome.dnat.ip, outcome.dnat.port));
  if (outcome.masquerade) parts.push('masquerade');
  return parts.join(' ');
}

/** Walks a new connection through nat and filter hooks as the kernel would for its origin. */
export function trace(tables: TraceTables, packet: TracePacket, options: TraceOptions = {}): TraceResult {
  const context = makeContext(tables, packet, options);
  const outcomes: TraceOutcome[] = [];
  const start: Flow = {
    destination: packet.destination,
    destinationPort: packet.destinationPort,
    mark: options.mark ?? 0,
    dnat: undefined,
    masquerade: false,
    path: [],
    probability: 1,
    assumptions: [],
    recentLists: new Set(),
  };
  const hook = (table: FakeTableName, chain: string, flows: readonly Flow[]): Flow[] =>
    runHook(context, table, chain, flows, outcomes);

  let flows: Flow[];
  if (packet.origin === 'local') {
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
  readonly tables: TraceTables;
}

type Ending = { readonly flow: Flow; readonly end: 'continue' | 'return' | Verdict };

const maxDepth = 64;

function makeContext(tables: TraceTables, packet: TracePacket, options: TraceOptions): Context {
  for (const address of [packet.source, packet.destination, ...packet.localAddresses]) {
    if (isIP(address) === 0) throw new Error(`trace: '${address}' is not an IP address`);
  }
  const local = ['127.0.0.0/8', '::1', ...packet.localAddresses].map(cidrMatcher);
  const isLocal = (address: string): boolean => local.some((matches) => matches(address));
  return { tables, packet, recentState: options.recentState, isLocal };
}

function runHook(
  context: Context,
  table: FakeTableName,
  chain: string,
  flows: readonly Flow[],
  outcomes: TraceOutcome[],
): Flow[] {
  const policy = context.tables.policy(table, chain) ?? 'ACCEPT';
  const passed: Flow[] = [];
  for (const flow of flows) {
    for (const { flow: after, end } of runChain(context, table, chain, flow, 0)) {
      const verdict = end === 'return' || end === 'continue' ? policy : end;
      if (verdict === 'ACCEPT') passed.push(after);
      else outcomes.push(toOutcome(after, verdict));
    }
  }
  return passed;
}

/** Runs a chain; every ending is 'return' (fell off the end or RETURN) or a verdict. */
function runChain(context: Context, table: FakeTableName, chain: string, flow: Flow, depth: number): Ending[] {
  if (depth > maxDepth) throw new Error(`trace: chain nesting deeper than ${maxDepth} at ${table}/${chain} (a loop?)`);
  const rules = context.tables.ruleEntries(table, chain);
  if (!rules) throw new Error(`trace: no chain ${table}/${chain}`);
  let live: Flow[] = [{ ...flow, path: [...flow.path, `${table}/${chain}`] }];
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
        for (const ending of applyTarget(context, table, compiled.target, fork.flow, depth)) {
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
    for (const fork of forks) next.push(...(fork.matched ? branch(context, fork.flow) : [fork]));
    forks = next;
  }
  return forks;
}

function applyTarget(context: Context, table: FakeTableName, target: Target, flow: Flow, depth: number): Ending[] {
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
    case 'chain':
      // A goto's RETURN goes back past the chain that did the goto.
      return runChain(context, table, target.chain, flow, depth + 1).map((ending) =>
        ending.end === 'return' && !target.goto ? { flow: ending.flow, end: 'continue' } : ending,
      );
    default: {
      const unreachable: never = target;
      throw new Error(`trace: unhandled target ${JSON.stringify(unreachable)}`);
    }
  }
}

function toOutcome(flow: Flow, verdict: Verdict): TraceOutcome {
  return {
    verdict,
    ...(flow.dnat ? { dnat: flow.dnat } : {}),
    masquerade: flow.masquerade,
    path: flow.path,
    probability: flow.probability,
    assumptions: flow.assumptions,
    mark: flow.mark,
  };
}
