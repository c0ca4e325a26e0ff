// Compiles one stored iptables rule spec into tests, branches and a target for the packet tracer.
// Only what kube-proxy's layout uses is modelled; anything else throws, naming the rule.

import { isIP } from 'node:net';

import type { FakeRule } from './fake.js';
import { messageOf } from '../values.js';

export type Verdict = 'ACCEPT' | 'DROP' | 'REJECT';

/** The packet as it is being rewritten, plus what this branch of the trace assumed. */
export interface Flow {
  readonly destination: string;
  readonly destinationPort: number;
  readonly mark: number;
  readonly dnat: { readonly ip: string; readonly port: number } | undefined;
  readonly masquerade: boolean;
  readonly path: readonly string[];
  readonly probability: number;
  readonly assumptions: readonly string[];
  readonly recentLists: ReadonlySet<string>;
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
}

export type Fork = { readonly flow: Flow; readonly matched: boolean };
/** A match that either holds or not for one flow. */
export type Test = (context: MatchContext, flow: Flow) => boolean;
/** A match that may split a flow (random choice, unknown history) or change it (`recent --set`). */
export type Branch = (context: MatchContext, flow: Flow) => Fork[];

export type Target =
  | { readonly kind: 'none' }
  | { readonly kind: 'verdict'; readonly verdict: Verdict }
  | { readonly kind: 'return' }
  | { readonly kind: 'chain'; readonly chain: string; readonly goto: boolean }
  | { readonly kind: 'dnat'; readonly ip: string; readonly port: number | undefined }
  | { readonly kind: 'masquerade' }
  | { readonly kind: 'mark'; readonly apply: (mark: number) => number };

export interface CompiledRule {
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
]);
type HeaderKind = 'source' | 'destination' | 'protocol' | 'in' | 'out';
const headerFlags: Readonly<Record<string, HeaderKind>> = {
  '-s': 'source',
  '--source': 'source',
  '-d': 'destination',
  '--destination': 'destination',
  '-p': 'protocol',
  '--protocol': 'protocol',
  '-i': 'in',
  '--in-interface': 'in',
  '-o': 'out',
  '--out-interface': 'out',
};

const compiled = new WeakMap<FakeRule, CompiledRule>();

/** Compiles (once per stored rule) or throws naming the rule it cannot model. */
export function compileRule(rule: FakeRule): CompiledRule {
  let result = compiled.get(rule);
  if (!result) {
    try {
      result = compileArgs(rule.args);
    } catch (error: unknown) {
      const reason = messageOf(error);
      throw new Error(`trace: cannot model rule '${rule.text}': ${reason}`);
    }
    compiled.set(rule, result);
  }
  return result;
}

function compileArgs(args: readonly string[]): CompiledRule {
  const header: Test[] = [];
  const matches: Extension[] = [];
  let target: (Extension & { goto: boolean }) | undefined;
  let current: Extension | undefined;
  let protocol: string | undefined;
  let negate = false;
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
      header.push(headerCondition(headerKind, headerValue, negate));
    } else if (token === '-m' || token === '--match') {
      current = { name: value(), options: [] };
      matches.push(current);
    } else if (token === '-j' || token === '--jump' || token === '-g' || token === '--goto') {
      target = { name: value(), options: [], goto: token === '-g' || token === '--goto' };
      current = target;
    } else if (token.startsWith('--')) {
      if (!current && protocol && (token === '--dport' || token === '--sport')) {
        current = { name: protocol, options: [] }; // `-p tcp --dport` loads the tcp match implicitly
        matches.push(current);
      }
      if (!current) throw new Error(`option ${token} outside of a match or target`);
      current.options.push({ name: token, value: flagOptions.has(token) ? undefined : value(), negate });
    } else {
      throw new Error(`unexpected word '${token}'`);
    }
    negate = false;
  }
  // Tests first, branches last, so a flow only splits when the rest of the rule matched.
  const compiledMatches = matches.map(matchCondition);
  return {
    tests: [...header, ...compiledMatches.flatMap((match) => ('test' in match ? [match.test] : []))],
    branches: compiledMatches.flatMap((match) => ('branch' in match ? [match.branch] : [])),
    target: target ? compileTarget(target) : { kind: 'none' },
  };
}

const same = (flow: Flow, matched: boolean): Fork[] => [{ flow, matched }];

function headerCondition(kind: HeaderKind, value: string, negate: boolean): Test {
  switch (kind) {
    case 'source':
    case 'destination': {
      const contains = cidrMatcher(value);
      return ({ packet }, flow) => contains(kind === 'source' ? packet.source : flow.destination) !== negate;
    }
    case 'protocol': {
      const wanted = value.toLowerCase();
      return ({ packet }) => (wanted === 'all' || wanted === packet.protocol.toLowerCase()) !== negate;
    }
    case 'in':
    case 'out': {
      const matches = (name: string | undefined): boolean =>
        name !== undefined && (value.endsWith('+') ? name.startsWith(value.slice(0, -1)) : name === value);
      return ({ packet }) => matches(kind === 'in' ? packet.inInterface : packet.outInterface) !== negate;
    }
  }
}

function matchCondition(match: Extension): { readonly test: Test } | { readonly branch: Branch } {
  const option = (name: string): Option | undefined => match.options.find((candidate) => candidate.name === name);
  const only = (...allowed: string[]): void => {
    const unknown = match.options.find((candidate) => !allowed.includes(candidate.name));
    if (unknown) throw new Error(`-m ${match.name} ${unknown.name} is not supported by the tracer`);
  };
  const deterministic = (test: Test): { test: Test } => ({ test });
  switch (match.name) {
    case 'comment':
    case 'nfacct':
      return deterministic(() => true);
    case 'tcp':
    case 'udp':
    case 'sctp': {
      only('--dport');
      const port = option('--dport');
      const [low, high] = portRange(port?.value);
      return deterministic(({ packet }, flow) => {
        const inRange = flow.destinationPort >= low && flow.destinationPort <= high;
        return packet.protocol.toLowerCase() === match.name && inRange !== (port?.negate ?? false);
      });
    }
    case 'addrtype': {
      only('--dst-type', '--src-type');
      const checks = match.options.map((check) => {
        const types = (check.value ?? '').split(',');
        if (types.some((type) => type !== 'LOCAL')) {
          throw new Error(`addrtype ${check.value ?? ''}: only LOCAL is modelled`);
        }
        return { source: check.name === '--src-type', negate: check.negate };
      });
      return deterministic((context, flow) =>
        checks.every(
          ({ source, negate }) => context.isLocal(source ? context.packet.source : flow.destination) !== negate,
        ),
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
        throw new Error('statistic: only --mode random --probability p is modelled');
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
      throw new Error(`match '${match.name}' is not supported by the tracer`);
  }
}

function recentCondition(match: Extension, option: (name: string) => Option | undefined): Branch {
  const supported = ['--set', '--rcheck', '--update', '--name', '--seconds', '--reap', '--mask', '--rsource'];
  const unknown = match.options.find((candidate) => !supported.includes(candidate.name));
  if (unknown) throw new Error(`-m recent ${unknown.name} is not supported by the tracer`);
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
  const option = (name: string): string | undefined =>
    target.options.find((candidate) => candidate.name === name)?.value;
  switch (target.name) {
    case 'ACCEPT':
    case 'DROP':
    case 'REJECT':
      return { kind: 'verdict', verdict: target.name };
    case 'RETURN':
      return { kind: 'return' };
    case 'MASQUERADE':
      return { kind: 'masquerade' };
    case 'DNAT': {
      const destination = option('--to-destination');
      if (!destination) throw new Error('DNAT without --to-destination');
      return { kind: 'dnat', ...parseAddressPort(destination) };
    }
    case 'MARK':
      return { kind: 'mark', apply: markOperation(target.options) };
    case 'LOG':
      return { kind: 'none' };
    case 'SNAT':
    case 'REDIRECT':
      throw new Error(`target ${target.name} is not supported by the tracer`);
    default:
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
      throw new Error(`MARK ${operation.name} is not supported by the tracer`);
  }
}

/** `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n`; candidates of the other family never match. */
export function cidrMatcher(value: string): (address: string) => boolean {
  const [address = '', prefixText] = value.split('/');
  const network = addressBits(address);
  const width = network?.family === 6 ? 128 : 32;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!network || !Number.isInteger(prefix) || prefix < 0 || prefix > width) {
    throw new Error(`'${value}' is not an address or CIDR`);
  }
  const shift = BigInt(width - prefix);
  const wanted = network.value >> shift;
  return (candidate) => {
    const bits = addressBits(candidate);
    return bits !== undefined && bits.family === network.family && bits.value >> shift === wanted;
  };
}

/** An address as a number; memoised because a trace compares the same few addresses many times. */
const addressCache = new Map<string, { family: 4 | 6; value: bigint } | undefined>();
function addressBits(address: string): { family: 4 | 6; value: bigint } | undefined {
  if (addressCache.has(address)) return addressCache.get(address);
  let result: { family: 4 | 6; value: bigint } | undefined;
  const kind = isIP(address);
  if (kind === 4) {
    result = { family: 4, value: address.split('.').reduce((sum, part) => (sum << 8n) | BigInt(part), 0n) };
  } else if (kind === 6) {
    // Expand `::` and a trailing dotted quad into eight 16-bit groups.
    let text = address.toLowerCase();
    const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
    if (dotted) {
      const [a = 0, b = 0, c = 0, d = 0] = dotted.split('.').map(Number);
      text = `${text.slice(0, -dotted.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
    }
    const [head = '', tail] = text.split('::');
    const headGroups = head === '' ? [] : head.split(':');
    const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
    const zeros = Array.from({ length: 8 - headGroups.length - tailGroups.length }, () => '0');
    const groups = tail === undefined ? headGroups : [...headGroups, ...zeros, ...tailGroups];
    result = { family: 6, value: groups.reduce((sum, group) => (sum << 16n) | BigInt(`0x${group}`), 0n) };
  }
  if (addressCache.size > 10_000) addressCache.clear();
  addressCache.set(address, result);
  return result;
}

function portRange(value: string | undefined): [number, number] {
  if (value === undefined) return [0, 65535];
  const [low = '', high = low] = value.split(':');
  const range: [number, number] = [low === '' ? 0 : Number(low), high === '' ? 65535 : Number(high)];
  if (range.some((port) => !Number.isInteger(port))) throw new Error(`bad port '${value}'`);
  return range;
}

/** `value[/mask]`, hex or decimal; the mask defaults to all ones. */
function markValue(text: string | undefined): [number, number] {
  const [value = '', mask = '0xffffffff'] = (text ?? '').split('/');
  const numbers: [number, number] = [Number(value) >>> 0, Number(mask) >>> 0];
  if (value === '' || Number.isNaN(Number(value)) || Number.isNaN(Number(mask))) {
    throw new Error(`bad mark '${text ?? ''}'`);
  }
  return numbers;
}

/** `1.2.3.4`, `1.2.3.4:80`, `[fd00::1]:80`. */
function parseAddressPort(text: string): { ip: string; port: number | undefined } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const unbracketed = isIP(text) === 6 ? [text, undefined] : text.split(':');
  const [ip, port] = bracketed ? [bracketed[1] ?? '', bracketed[2]] : unbracketed;
  if (ip === undefined || isIP(ip) === 0 || (port !== undefined && !/^\d+$/.test(port))) {
    throw new Error(`bad --to-destination '${text}'`);
  }
  return { ip, port: port === undefined ? undefined : Number(port) };
}

export function formatAddress(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
