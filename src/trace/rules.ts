// Compiles one saved iptables rule into tests, branches and a target for the packet tracer.
// What kube-proxy's layout uses is modelled exactly; anything else (a CNI's or a firewall's match,
// an option the tracer does not know) becomes an unknown condition that the trace explores both
// ways, naming the rule and what it assumed. Compiling never throws.

import type { SavedRule } from './tables.js';
import { cidrMatcher, markValue, parseAddressPort, portRange } from './values.js';
import { joinTokens } from '../netfilter/vocabulary.js';
import { messageOf } from '../values.js';

/** UNKNOWN: the packet met a target the tracer cannot follow (NFQUEUE, TPROXY, a missing chain...). */
export type Verdict = 'ACCEPT' | 'DROP' | 'REJECT' | 'UNKNOWN';

/** One rule the packet matched (or a built-in chain's policy that decided). */
export interface Step {
  readonly table: string;
  readonly chain: string;
  /** 1-based rule number; undefined for a chain policy. */
  readonly number: number | undefined;
  /** The rule spec (or `policy DROP`). */
  readonly text: string;
  readonly comment: string | undefined;
  /** What the rule did: a chain name, DNAT, MARK, ACCEPT... */
  readonly target: string;
}

/** The packet as it is being rewritten, plus what this branch of the trace assumed. */
export interface Flow {
  readonly destination: string;
  readonly destinationPort: number;
  readonly mark: number;
  readonly dnat: { readonly ip: string; readonly port: number } | undefined;
  readonly masquerade: boolean;
  readonly path: readonly string[];
  readonly steps: readonly Step[];
  readonly probability: number;
  readonly assumptions: readonly string[];
  readonly recentLists: ReadonlySet<string>;
  /** Why the flow ended UNKNOWN, when it did. */
  readonly unknown: string | undefined;
}

/** What a match may look at besides the flow: the packet's fixed fields and the node. */
export interface MatchContext {
  readonly packet: {
    readonly source: string;
    readonly protocol: string;
    readonly inInterface?: string;
    readonly outInterface?: string;
  };
  readonly recentState: boolean | Readonly<Record<string, boolean>> | undefined;
  isLocal(address: string): boolean;
  /** Whether one more unknown condition may still be explored both ways (the budget is finite). */
  mayExplore(): boolean;
}

export type Fork = { readonly flow: Flow; readonly matched: boolean };
/** A match that either holds or not for one flow. */
export type Test = (context: MatchContext, flow: Flow) => boolean;
/** A match that may split a flow (random choice, unknown history) or change it (`recent --set`). */
export type Branch = (context: MatchContext, flow: Flow, rule: SavedRule) => Fork[];

export type Target =
  | { readonly kind: 'none'; readonly name: string | undefined }
  | { readonly kind: 'verdict'; readonly verdict: 'ACCEPT' | 'DROP' | 'REJECT' }
  | { readonly kind: 'return' }
  | { readonly kind: 'chain'; readonly chain: string; readonly goto: boolean }
  | { readonly kind: 'dnat'; readonly ip: string; readonly port: number | undefined }
  | { readonly kind: 'masquerade'; readonly name: string }
  | { readonly kind: 'mark'; readonly apply: (mark: number) => number }
  | { readonly kind: 'opaque'; readonly reason: string };

export interface CompiledRule {
  readonly rule: SavedRule;
  readonly tests: readonly Test[];
  readonly branches: readonly Branch[];
  readonly target: Target;
}

interface Option {
  readonly name: string;
  readonly value: string | undefined;
  readonly negate: boolean;
}
interface Extension {
  readonly name: string;
  readonly options: Option[];
}

/** Options that take no value; every other `--option` takes exactly one. */
const flagOptions = new Set([
  '--set',
  '--rcheck',
  '--update',
  '--remove',
  '--reap',
  '--rsource',
  '--rdest',
  '--random',
  '--random-fully',
  '--persistent',
  '--physdev-is-in',
  '--physdev-is-out',
  '--physdev-is-bridged',
  '--syn',
  '--ctdir',
  '--log-tcp-sequence',
  '--log-tcp-options',
  '--log-ip-options',
  '--log-uid',
  '--notrack',
]);

/** Targets that do something and let the packet go on to the next rule. */
const continuingTargets = new Set([
  'LOG',
  'NFLOG',
  'ULOG',
  'CT',
  'NOTRACK',
  'TRACE',
  'CONNMARK',
  'TCPMSS',
  'CHECKSUM',
  'CLASSIFY',
  'DSCP',
  'TOS',
  'TTL',
  'HL',
  'SECMARK',
  'CONNSECMARK',
  'IDLETIMER',
  'AUDIT',
  'NFACCT',
]);
/** Targets that end the packet's way through the rules in a way the tracer does not follow. */
const opaqueTargets = new Set(['REDIRECT', 'NFQUEUE', 'QUEUE', 'TPROXY', 'NETMAP', 'SYNPROXY', 'TEE']);

type HeaderKind = 'source' | 'destination' | 'protocol' | 'in' | 'out';
const headerFlags: Readonly<Record<string, HeaderKind>> = {
  '-s': 'source',
  '--source': 'source',
  '--src': 'source',
  '-d': 'destination',
  '--destination': 'destination',
  '--dst': 'destination',
  '-p': 'protocol',
  '--protocol': 'protocol',
  '-i': 'in',
  '--in-interface': 'in',
  '-o': 'out',
  '--out-interface': 'out',
};

type CompiledBody = Omit<CompiledRule, 'rule'>;

const compiled = new WeakMap<SavedRule, CompiledRule>();
/** By rule spec: the same rule in successive dumps (a test's fake after each sync) compiles once. */
const bodies = new Map<string, CompiledBody>();

/** Compiles once per saved rule, and once per distinct rule spec while the cache lasts. */
export function compileRule(rule: SavedRule): CompiledRule {
  let result = compiled.get(rule);
  if (!result) {
    const key = rule.args.join('\u0000');
    let body = bodies.get(key);
    if (!body) {
      if (bodies.size >= 100_000) bodies.clear();
      body = compileArgs(rule.args);
      bodies.set(key, body);
    }
    result = { rule, ...body };
    compiled.set(rule, result);
  }
  return result;
}

/** `filter FORWARD #3` */
export function ruleLocation(rule: Pick<SavedRule, 'table' | 'chain' | 'number'>): string {
  return `${rule.table} ${rule.chain} #${rule.number}`;
}

interface Parsed {
  readonly header: { kind: HeaderKind; value: string; negate: boolean; text: string }[];
  readonly matches: (Extension & { text: string })[];
  readonly target: (Extension & { goto: boolean }) | undefined;
}

function compileArgs(args: readonly string[]): CompiledBody {
  let parsed: Parsed;
  try {
    parsed = parseArgs(args);
  } catch (error: unknown) {
    // The words themselves make no sense to us: the whole rule is one unknown condition.
    return { tests: [], branches: [unknownCondition(joinTokens(args), messageOf(error))], target: { kind: 'opaque', reason: 'the rule could not be read' } };
  }
  const tests: Test[] = [];
  const branches: Branch[] = [];
  for (const header of parsed.header) {
    const condition = headerCondition(header);
    if ('test' in condition) tests.push(condition.test);
    else branches.push(condition.branch);
  }
  for (const match of parsed.matches) {
    let condition: { test: Test } | { branch: Branch };
    try {
      condition = matchCondition(match);
    } catch (error: unknown) {
      condition = { branch: unknownCondition(match.text, messageOf(error)) };
    }
    if ('test' in condition) tests.push(condition.test);
    else branches.push(condition.branch);
  }
  let target: Target;
  try {
    target = parsed.target ? compileTarget(parsed.target) : { kind: 'none', name: undefined };
  } catch (error: unknown) {
    target = { kind: 'opaque', reason: messageOf(error) };
  }
  // Tests first, branches last, so a flow only splits when the rest of the rule matched.
  return { tests, branches, target };
}

function parseArgs(args: readonly string[]): Parsed {
  const header: Parsed['header'] = [];
  const matches: Parsed['matches'] = [];
  let target: Parsed['target'];
  let current: (Extension & { text?: string }) | undefined;
  let currentWords: string[] = [];
  let protocol: string | undefined;
  let negate = false;
  const closeMatch = (): void => {
    if (current && current !== target) (current as Extension & { text: string }).text = currentWords.join(' ');
  };
  for (let index = 0; index < args.length; index++) {
    const token = args[index] ?? '';
    const value = (): string => {
      const next = args[++index];
      if (next === undefined) throw new Error(`${token} needs a value`);
      return next;
    };
    if (token === '!') {
      negate = true;
      continue;
    }
    const headerKind = headerFlags[token];
    if (headerKind) {
      const headerValue = value();
      if (headerKind === 'protocol' && !negate) protocol = headerValue.toLowerCase();
      header.push({ kind: headerKind, value: headerValue, negate, text: `${negate ? '! ' : ''}${token} ${headerValue}` });
    } else if (token === '-m' || token === '--match') {
      closeMatch();
      const match = { name: value(), options: [], text: '' };
      matches.push(match);
      current = match;
      currentWords = [token, match.name];
    } else if (token === '-j' || token === '--jump' || token === '-g' || token === '--goto') {
      closeMatch();
      target = { name: value(), options: [], goto: token === '-g' || token === '--goto' };
      current = target;
    } else if (token.startsWith('--')) {
      if (!current && protocol && (token === '--dport' || token === '--sport' || token === '--destination-port' || token === '--source-port')) {
        // `-p tcp --dport` loads the tcp match implicitly.
        closeMatch();
        const match = { name: protocol, options: [], text: '' };
        matches.push(match);
        current = match;
        currentWords = [];
      }
      if (!current) throw new Error(`option ${token} outside of a match or target`);
      let optionValue = flagOptions.has(token) ? undefined : value();
      // Some options take several words (`--match-set NAME src`): keep them together.
      while (optionValue !== undefined && args[index + 1] !== undefined && !/^[-!]/.test(args[index + 1] ?? '')) {
        optionValue = `${optionValue} ${args[++index] ?? ''}`;
      }
      current.options.push({ name: token, value: optionValue, negate });
      if (current !== target) currentWords.push(...(negate ? ['!'] : []), token, ...(optionValue === undefined ? [] : [optionValue]));
    } else {
      throw new Error(`unexpected word '${token}'`);
    }
    negate = false;
  }
  closeMatch();
  return { header, matches, target };
}

const same = (flow: Flow, matched: boolean): Fork[] => [{ flow, matched }];

/** Explores a condition the tracer cannot decide both ways (while the budget lasts). */
function unknownCondition(text: string, why: string): Branch {
  return (context, flow, rule) => {
    const where = ruleLocation(rule);
    const assume = (matched: boolean, note = ''): Fork => ({
      flow: { ...flow, assumptions: [...flow.assumptions, `${where} '${text}' ${matched ? 'matches' : 'does not match'} (undecidable here: ${why}${note})`] },
      matched,
    });
    if (!context.mayExplore()) return [assume(false, '; not explored, exploration limit reached')];
    return [assume(true), assume(false)];
  };
}

function headerCondition(header: Parsed['header'][number]): { test: Test } | { branch: Branch } {
  const { kind, value, negate, text } = header;
  switch (kind) {
    case 'source':
    case 'destination': {
      let contains: (address: string) => boolean;
      try {
        contains = cidrMatcher(value);
      } catch (error: unknown) {
        return { branch: unknownCondition(text, messageOf(error)) };
      }
      return { test: ({ packet }, flow) => contains(kind === 'source' ? packet.source : flow.destination) !== negate };
    }
    case 'protocol': {
      const wanted = value.toLowerCase();
      return { test: ({ packet }) => (wanted === 'all' || wanted === packet.protocol.toLowerCase()) !== negate };
    }
    case 'in':
    case 'out': {
      const matches = (name: string): boolean => (value.endsWith('+') ? name.startsWith(value.slice(0, -1)) : name === value);
      const unknown = unknownCondition(text, `the ${kind === 'in' ? 'input' : 'output'} interface was not given`);
      return {
        branch: (context, flow, rule) => {
          const name = kind === 'in' ? context.packet.inInterface : context.packet.outInterface;
          return name === undefined ? unknown(context, flow, rule) : same(flow, matches(name) !== negate);
        },
      };
    }
  }
}

function matchCondition(match: Extension): { readonly test: Test } | { readonly branch: Branch } {
  const option = (name: string): Option | undefined => match.options.find((candidate) => candidate.name === name);
  const only = (...allowed: string[]): void => {
    const unknown = match.options.find((candidate) => !allowed.includes(candidate.name));
    if (unknown) throw new Error(`option ${unknown.name} of -m ${match.name} is not modelled`);
  };
  const deterministic = (test: Test): { test: Test } => ({ test });
  switch (match.name) {
    case 'comment':
    case 'nfacct':
      return deterministic(() => true);
    case 'tcp':
    case 'udp':
    case 'sctp': {
      only('--dport', '--destination-port');
      const port = option('--dport') ?? option('--destination-port');
      const [low, high] = portRange(port?.value);
      return deterministic(({ packet }, flow) => {
        const inRange = flow.destinationPort >= low && flow.destinationPort <= high;
        return packet.protocol.toLowerCase() === match.name && inRange !== (port?.negate ?? false);
      });
    }
    case 'multiport': {
      only('--dports', '--destination-ports');
      const ports = option('--dports') ?? option('--destination-ports');
      const ranges = (ports?.value ?? '').split(',').map(portRange);
      return deterministic((_, flow) => {
        const inRange = ranges.some(([low, high]) => flow.destinationPort >= low && flow.destinationPort <= high);
        return inRange !== (ports?.negate ?? false);
      });
    }
    case 'addrtype': {
      only('--dst-type', '--src-type');
      const checks = match.options.map((check) => {
        const types = (check.value ?? '').split(',');
        if (types.some((type) => type !== 'LOCAL')) throw new Error(`addrtype ${check.value ?? ''}: only LOCAL is modelled`);
        return { source: check.name === '--src-type', negate: check.negate };
      });
      return deterministic((context, flow) =>
        checks.every(({ source, negate }) => context.isLocal(source ? context.packet.source : flow.destination) !== negate),
      );
    }
    case 'mark': {
      only('--mark');
      const mark = option('--mark');
      const [value, mask] = markValue(mark?.value);
      return deterministic((_, flow) => ((flow.mark & mask) >>> 0 === value) !== (mark?.negate ?? false));
    }
    case 'conntrack':
    case 'state': {
      const name = match.name === 'state' ? '--state' : '--ctstate';
      only(name);
      const states = option(name);
      const wanted = (states?.value ?? '').split(',');
      // Every traced packet opens a new connection; DNAT is a state once a DNAT rule hit.
      return deterministic((_, flow) => {
        const hit = wanted.some((state) => state === 'NEW' || (state === 'DNAT' && flow.dnat !== undefined));
        return hit !== (states?.negate ?? false);
      });
    }
    case 'statistic': {
      only('--mode', '--probability');
      const probabilityOption = option('--probability');
      const probability = Number(probabilityOption?.value);
      if (option('--mode')?.value !== 'random' || !(probability >= 0 && probability <= 1)) {
        throw new Error('only --mode random --probability p is modelled');
      }
      const p = probabilityOption?.negate ? 1 - probability : probability;
      return {
        branch: (_, flow) => [
          { flow: { ...flow, probability: flow.probability * p }, matched: true },
          { flow: { ...flow, probability: flow.probability * (1 - p) }, matched: false },
        ],
      };
    }
    case 'recent':
      return { branch: recentCondition(match, option) };
    default:
      throw new Error(`match '${match.name}' is not modelled`);
  }
}

function recentCondition(match: Extension, option: (name: string) => Option | undefined): Branch {
  const supported = ['--set', '--rcheck', '--update', '--name', '--seconds', '--reap', '--mask', '--rsource'];
  const unknown = match.options.find((candidate) => !supported.includes(candidate.name));
  if (unknown) throw new Error(`option ${unknown.name} of -m recent is not modelled`);
  const name = option('--name')?.value ?? 'DEFAULT';
  const remember = (flow: Flow): Flow => ({ ...flow, recentLists: new Set([...flow.recentLists, name]) });
  if (option('--set')) return (_, flow) => same(remember(flow), true);
  const check = option('--rcheck') ?? option('--update');
  if (!check) throw new Error('recent: one of --set, --rcheck, --update is needed');
  const after = option('--update') ? remember : (flow: Flow): Flow => flow;
  return ({ recentState }, flow) => {
    const given = typeof recentState === 'boolean' ? recentState : recentState?.[name];
    const known = flow.recentLists.has(name) ? true : given;
    if (known !== undefined) return same(known ? after(flow) : flow, known !== check.negate);
    const assume = (hit: boolean): Flow => ({
      ...flow,
      assumptions: [...flow.assumptions, `recent ${name}: ${hit ? 'hit' : 'miss'}`],
    });
    return [
      { flow: after(assume(true)), matched: !check.negate },
      { flow: assume(false), matched: check.negate },
    ];
  };
}

function compileTarget(target: Extension & { goto: boolean }): Target {
  const option = (name: string): string | undefined => target.options.find((candidate) => candidate.name === name)?.value;
  switch (target.name) {
    case 'ACCEPT':
    case 'DROP':
    case 'REJECT':
      return { kind: 'verdict', verdict: target.name };
    case 'RETURN':
      return { kind: 'return' };
    case 'MASQUERADE':
    case 'SNAT':
      return { kind: 'masquerade', name: target.name };
    case 'DNAT': {
      const destination = option('--to-destination');
      if (!destination) throw new Error('DNAT without --to-destination');
      return { kind: 'dnat', ...parseAddressPort(destination) };
    }
    case 'MARK':
      return { kind: 'mark', apply: markOperation(target.options) };
    default:
      if (continuingTargets.has(target.name)) return { kind: 'none', name: target.name };
      if (opaqueTargets.has(target.name)) return { kind: 'opaque', reason: `target ${target.name} is not followed by the tracer` };
      // A user chain, or an extension target the tracer does not know (it finds no such chain).
      return { kind: 'chain', chain: target.name, goto: target.goto };
  }
}

function markOperation(options: readonly Option[]): (mark: number) => number {
  const [operation] = options;
  if (!operation || options.length !== 1) throw new Error('MARK needs exactly one operation');
  const [value, mask] = markValue(operation.value);
  switch (operation.name) {
    case '--or-mark':
      return (mark) => mark | value;
    case '--xor-mark':
      return (mark) => mark ^ value;
    case '--and-mark':
      return (mark) => mark & value;
    case '--set-xmark':
      return (mark) => (mark & ~mask) ^ value;
    case '--set-mark':
      return (mark) => (mark & ~mask) | value;
    default:
      throw new Error(`MARK ${operation.name} is not modelled`);
  }
}
