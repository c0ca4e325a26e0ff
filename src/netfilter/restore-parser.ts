// Parses an iptables-restore payload into table blocks of commands, so the fake (and anything
// else that wants to read a payload) does not re-implement iptables' line syntax. Syntax only:
// whether a chain exists or a jump is valid is the fake's business. Words and quoting are the
// vocabulary's (one tokenizer for the whole project).

import { tokenize } from './vocabulary.js';

export type RestoreCommand =
  /** `:NAME POLICY [packets:bytes]`; policy is `-` for user chains. */
  | { readonly kind: 'declare'; readonly line: number; readonly chain: string; readonly policy: string }
  | { readonly kind: 'append'; readonly line: number; readonly chain: string; readonly args: readonly string[] }
  /** `-I CHAIN [n] rule`; position is 1-based and defaults to 1. */
  | {
      readonly kind: 'insert';
      readonly line: number;
      readonly chain: string;
      readonly position: number;
      readonly args: readonly string[];
    }
  /** `-D CHAIN rule`. */
  | { readonly kind: 'delete'; readonly line: number; readonly chain: string; readonly args: readonly string[] }
  /** `-D CHAIN n` (1-based). */
  | { readonly kind: 'deleteAt'; readonly line: number; readonly chain: string; readonly position: number }
  | { readonly kind: 'newChain'; readonly line: number; readonly chain: string }
  /** `-X [CHAIN]`; no chain = every user chain of the table. */
  | { readonly kind: 'deleteChain'; readonly line: number; readonly chain: string | undefined }
  /** `-F [CHAIN]`; no chain = every chain of the table. */
  | { readonly kind: 'flush'; readonly line: number; readonly chain: string | undefined };

export interface RestoreTableBlock {
  readonly table: string;
  /** Line of the `*table` header. */
  readonly line: number;
  readonly commands: readonly RestoreCommand[];
}

export type ParseRestoreResult =
  | { readonly ok: true; readonly tables: readonly RestoreTableBlock[] }
  | { readonly ok: false; readonly message: string; readonly line: number };

const commandAliases: Readonly<Record<string, RestoreCommand['kind'] | 'insertOrAt'>> = {
  '-A': 'append',
  '--append': 'append',
  '-I': 'insertOrAt',
  '--insert': 'insertOrAt',
  '-D': 'delete',
  '--delete': 'delete',
  '-N': 'newChain',
  '--new-chain': 'newChain',
  '--new': 'newChain',
  '-X': 'deleteChain',
  '--delete-chain': 'deleteChain',
  '-F': 'flush',
  '--flush': 'flush',
};

/** Parses a whole payload; the first error wins and carries its 1-based line. */
export function parseRestorePayload(payload: string): ParseRestoreResult {
  const tables: RestoreTableBlock[] = [];
  let open: { table: string; line: number; commands: RestoreCommand[] } | undefined;
  const lines = payload.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = index + 1;
    const text = (lines[index] ?? '').trim();
    if (text === '' || text.startsWith('#')) continue;
    const fail = (message: string): ParseRestoreResult => ({ ok: false, message, line });

    if (text.startsWith('*')) {
      if (open) return fail(`table '${open.table}' (line ${open.line}) has no COMMIT before '${text}'`);
      const table = text.slice(1).trim();
      if (table === '') return fail('empty table name');
      open = { table, line, commands: [] };
      continue;
    }
    if (text === 'COMMIT') {
      if (!open) return fail('COMMIT outside of a table');
      tables.push(open);
      open = undefined;
      continue;
    }
    if (!open) return fail(`'${text}' outside of a table (expected '*table')`);

    if (text.startsWith(':')) {
      const declaration = parseDeclaration(text, line);
      if ('message' in declaration) return fail(declaration.message);
      open.commands.push(declaration);
      continue;
    }

    const tokenized = tokenize(text);
    if (!tokenized.ok) return fail(tokenized.message);
    const command = parseCommand(tokenized.tokens, line);
    if ('message' in command) return fail(command.message);
    open.commands.push(command);
  }
  if (open) return { ok: false, message: `table '${open.table}' has no COMMIT`, line: lines.length };
  return { ok: true, tables };
}

function parseDeclaration(text: string, line: number): RestoreCommand | { message: string } {
  const words = text.slice(1).trim().split(/\s+/);
  const [chain, policy, counters, ...rest] = words;
  if (chain === undefined || chain === '') return { message: 'chain declaration without a name' };
  if (policy === undefined) return { message: `chain declaration '${chain}' without a policy` };
  if (rest.length > 0 || (counters !== undefined && !/^\[\d+:\d+\]$/.test(counters))) {
    return { message: `malformed chain declaration '${text}'` };
  }
  return { kind: 'declare', line, chain, policy };
}

function parseCommand(tokens: readonly string[], line: number): RestoreCommand | { message: string } {
  const [flag, chain, ...rest] = tokens;
  const kind = flag === undefined ? undefined : commandAliases[flag];
  if (flag === undefined || kind === undefined) return { message: `unknown command '${flag ?? ''}'` };
  if (rest.includes('-t') || rest.includes('--table')) {
    return { message: 'the -t option cannot be used in iptables-restore' };
  }
  if (kind === 'deleteChain' || kind === 'flush') {
    if (rest.length > 0) return { message: `${flag} takes at most one chain` };
    return { kind, line, chain };
  }
  if (chain === undefined) return { message: `${flag} needs a chain` };
  switch (kind) {
    case 'newChain':
      if (rest.length > 0) return { message: `${flag} takes exactly one chain` };
      return { kind, line, chain };
    case 'append':
      return { kind, line, chain, args: rest };
    case 'insertOrAt': {
      const [first, ...spec] = rest;
      if (first !== undefined && /^\d+$/.test(first)) {
        const position = Number(first);
        if (position < 1) return { message: `invalid rule number '${first}'` };
        return { kind: 'insert', line, chain, position, args: spec };
      }
      return { kind: 'insert', line, chain, position: 1, args: rest };
    }
    case 'delete': {
      const [only] = rest;
      if (rest.length === 1 && only !== undefined && /^\d+$/.test(only)) {
        const position = Number(only);
        if (position < 1) return { message: `invalid rule number '${only}'` };
        return { kind: 'deleteAt', line, chain, position };
      }
      if (rest.length === 0) return { message: `${flag} needs a rule or a rule number` };
      return { kind, line, chain, args: rest };
    }
    default:
      return { message: `unexpected command '${flag}'` };
  }
}
