// One identity for a rule spec, equal for the rule as we write it and as iptables-save prints it
// back. The kernel rewrites what it stores: header matches move first (`-s -d -i -o -p`), implied
// modules appear (`-p tcp --dport` -> `-p tcp -m tcp --dport`), addresses gain `/32`, marks are
// printed as `--set-xmark value/mask` in short hex, probabilities with 11 decimals of the kernel's
// 31-bit fraction, and some defaults are spelled out (`--reject-with icmp-port-unreachable`,
// `recent --mask 255.255.255.255 --rsource`). The canonical form is the sorted list of the rule's
// option groups (`[!] option values...`) with those rewrites undone and module names dropped.
// The order of matches inside one rule is lost on purpose: for kube-proxy's rules it never changes
// what a rule does. Pure.

import { tokenize } from '../netfilter/vocabulary.js';

/** Long spellings of header options, as `iptables` accepts them. */
const ALIASES: Readonly<Record<string, string>> = {
  '--source': '-s',
  '--src': '-s',
  '--destination': '-d',
  '--dst': '-d',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--protocol': '-p',
  '--jump': '-j',
  '--goto': '-g',
  '--match': '-m',
};

/** Options that take no value. */
const FLAGS: ReadonlySet<string> = new Set(['--set', '--rcheck', '--update', '--remove', '--reap', '--rsource', '--rdest', '--random', '--random-fully', '--persistent']);

/** Groups iptables-save adds although they are the default; dropped on both sides. */
const DEFAULT_GROUPS: ReadonlySet<string> = new Set(['--reject-with icmp-port-unreachable', '--mask 255.255.255.255', '--rsource']);

const SEPARATOR = '\u0001';
const FRACTION = 0x80000000;

/** The canonical identity of a rule spec (without `-A <chain>`). */
export function canonicalRule(rule: string): string {
  const parsed = tokenize(rule);
  // An unparsable spec is its own identity: it can only equal itself.
  if (!parsed.ok) return `!unparsable ${rule}`;
  const tokens = parsed.tokens;
  const groups: string[] = [];
  let negate = false;
  for (let index = 0; index < tokens.length; index++) {
    const raw = tokens[index] ?? '';
    if (raw === '!') {
      negate = true;
      continue;
    }
    const option = ALIASES[raw] ?? raw;
    if (option === '-m') {
      // Module names are implied by their options (and added by iptables-save when implied).
      index++;
      continue;
    }
    const values: string[] = [];
    if (!FLAGS.has(option)) {
      while (index + 1 < tokens.length) {
        const next = tokens[index + 1] ?? '';
        if (next === '!' || (next.startsWith('-') && next.length > 1 && !/^-\d/.test(next))) break;
        values.push(next);
        index++;
      }
    }
    for (const group of rewrite(option, values)) {
      const text = negate ? `! ${group}` : group;
      if (!DEFAULT_GROUPS.has(text)) groups.push(text);
    }
    negate = false;
  }
  return groups.sort().join(SEPARATOR);
}

/** The group(s) one option stands for, in the form iptables-save prints. */
function rewrite(option: string, values: readonly string[]): string[] {
  const value = values[0] ?? '';
  switch (option) {
    case '-s':
    case '-d':
      return [`${option} ${value.endsWith('/32') ? value.slice(0, -3) : value}`];
    case '-p':
      return [`-p ${value.toLowerCase()}`];
    case '--mark':
      return [`--mark ${markPair(value)}`];
    case '--set-xmark':
      return [`--set-xmark ${markPair(value)}`];
    case '--or-mark':
      return [`--set-xmark ${hex(value)}/${hex(value)}`];
    case '--xor-mark':
      return [`--set-xmark ${hex(value)}/0x0`];
    case '--and-mark':
      return [`--set-xmark 0x0/${hex(String(~Number(value) >>> 0))}`];
    case '--set-mark':
      return [`--set-xmark ${value.includes('/') ? markPair(value) : `${hex(value)}/0xffffffff`}`];
    case '--probability':
      return [`--probability ${Math.round(Number(value) * FRACTION)}`];
    case '--ctstate':
    case '--state':
      return [`${option} ${value.split(',').sort().join(',')}`];
    default:
      return [values.length === 0 ? option : `${option} ${values.join(' ')}`];
  }
}

function markPair(value: string): string {
  const [mark, mask] = value.split('/');
  return mask === undefined ? hex(mark ?? '') : `${hex(mark ?? '')}/${hex(mask)}`;
}

/** `0x00004000` and `16384` as iptables-save prints them: `0x4000`. */
function hex(value: string): string {
  const number = Number(value);
  return Number.isFinite(number) ? `0x${(number >>> 0).toString(16)}` : value;
}
