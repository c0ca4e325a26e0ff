// Parses an iptables-restore payload into table blocks of commands, so the fake (and anything
// else that wants to read a payload) does not re-implement iptables' line syntax. Syntax only:
// whether a chain exists or a jump is valid is the fake's business.

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

export type TokenizeResult =
  | { readonly ok: true; readonly tokens: readonly string[] }
  | { readonly ok: false; readonly message: string };

/** Where a rule sends a matching packet: `-j TARGET` (jump) or `-g CHAIN` (goto). */
export interface RuleTarget {
  readonly name: string;
  readonly goto: boolean;
}

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

/**
 * Splits a line like iptables-restore does: whitespace separates words, double quotes group
 * (a backslash inside quotes escapes the next character), quotes may sit inside a word.
 */
export function tokenize(text: string): TokenizeResult {
  // Most lines quote nothing: plain splitting is several times faster on large payloads and dumps.
  if (!text.includes('"')) return { ok: true, tokens: text.split(/[ \t]+/).filter((token) => token !== '') };
  const tokens: string[] = [];
  let current = '';
  let inWord = false;
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const char = text.charAt(index);
    if (quoted) {
      if (char === '\\' && index + 1 < text.length) {
        index++;
        current += text.charAt(index);
      } else if (char === '"') {
        quoted = false;
      } else {
        current += char;
      }
    } else if (char === '"') {
      quoted = true;
      inWord = true;
    } else if (char === ' ' || char === '\t') {
      if (inWord) tokens.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (quoted) return { ok: false, message: 'unterminated quoted string' };
  if (inWord) tokens.push(current);
  return { ok: true, tokens };
}

/** Inverse of `tokenize` for one word: quotes only when needed, as iptables-save does. */
export function quoteToken(token: string): string {
  if (token !== '' && !/[\s"\\]/.test(token)) return token;
  return `"${token.replace(/(["\\])/g, '\\$1')}"`;
}

/** The canonical text of a rule spec: tokens re-joined with minimal quoting. */
export function joinTokens(tokens: readonly string[]): string {
  return tokens.map(quoteToken).join(' ');
}

/**
 * The `-j`/`-g` target of a rule spec, or undefined for a rule without one (it only counts).
 * Skips the value of `--comment` so a comment that reads "-j" cannot fool it.
 */
export function ruleTarget(args: readonly string[]): RuleTarget | undefined {
  for (let index = 0; index < args.length - 1; index++) {
    const token = args[index];
    const next = args[index + 1];
    if (next === undefined) break;
    if (token === '--comment') index++;
    else if (token === '-j' || token === '--jump') return { name: next, goto: false };
    else if (token === '-g' || token === '--goto') return { name: next, goto: true };
  }
  return undefined;
}

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
