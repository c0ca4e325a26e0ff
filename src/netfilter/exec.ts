// The real Netfilter: spawns iptables-restore / iptables-save / iptables of one backend, optionally
// inside a network namespace (tests). Expected failures come back as values, never as throws.

import { runProcess, type ProcessOutput, type ProcessRunner } from '../process.js';
import { jumpTarget, type TableName } from './vocabulary.js';
import type { Netfilter, RestoreResult, SaveResult } from './netfilter.js';


/** The three binaries of one iptables backend. */
export interface IptablesBinaries {
  readonly restore: string;
  readonly save: string;
  readonly iptables: string;
}

export const nftBinaries: IptablesBinaries = { restore: 'iptables-nft-restore', save: 'iptables-nft-save', iptables: 'iptables-nft' };
export const legacyBinaries: IptablesBinaries = {
  restore: 'iptables-legacy-restore',
  save: 'iptables-legacy-save',
  iptables: 'iptables-legacy',
};

/** The same variant's binaries for IPv6 rules (`ip6tables-nft-restore`, ...): one Netfilter per family. */
export function ipv6Binaries(binaries: IptablesBinaries): IptablesBinaries {
  const six = (name: string): string => (name.startsWith('iptables') ? `ip6${name.slice('ip'.length)}` : name);
  return { restore: six(binaries.restore), save: six(binaries.save), iptables: six(binaries.iptables) };
}

export interface ExecNetfilterOptions {
  /** Default: the nft backend (see backend.ts to detect the host's). */
  readonly binaries?: IptablesBinaries;
  /** Prepended to every command, e.g. ['ip', 'netns', 'exec', 'node1'] in tests. */
  readonly prefix?: readonly string[];
  readonly run?: ProcessRunner;
  /** How long to wait for the xtables lock (kube-proxy waits 5 s). */
  readonly waitSeconds?: number;
}

export class ExecNetfilter implements Netfilter {
  private readonly binaries: IptablesBinaries;
  private readonly prefix: readonly string[];
  private readonly run: ProcessRunner;
  private readonly wait: string;

  constructor(options: ExecNetfilterOptions = {}) {
    this.binaries = options.binaries ?? nftBinaries;
    this.prefix = options.prefix ?? [];
    this.run = options.run ?? runProcess;
    // `--wait=N`, not `--wait N`: iptables-restore would otherwise read N as an input file name.
    this.wait = `--wait=${options.waitSeconds ?? 5}`;
  }

  async save(table: TableName): Promise<SaveResult> {
    const output = await this.exec(this.binaries.save, ['-t', table]);
    if (output.code !== 0) return { ok: false, message: describeFailure(this.binaries.save, output) };
    return { ok: true, text: output.stdout };
  }

  async restore(payload: string | Iterable<string>, options: { readonly noFlush: boolean }): Promise<RestoreResult> {
    const args = options.noFlush ? ['--noflush', this.wait] : [this.wait];
    const output = await this.exec(this.binaries.restore, args, payload);
    if (output.code === 0) return { ok: true };
    const failure = parseRestoreFailure(output.stderr, typeof payload === 'string' ? payload : [...payload].join(''));
    return { ok: false, message: failure.message === '' ? describeFailure(this.binaries.restore, output) : failure.message, line: failure.line };
  }

  async chainExists(table: TableName, chain: string): Promise<boolean | undefined> {
    const output = await this.exec(this.binaries.iptables, [this.wait, '-t', table, '-S', chain]);
    if (output.code === 0) return true;
    // legacy: "No chain/target/match by that name"; nft 1.8.9 says a missing chain "is incompatible".
    if (output.code === 1 && /No chain\/target\/match|does not exist|is incompatible/.test(output.stderr)) return false;
    return undefined;
  }

  private exec(binary: string, args: readonly string[], input?: string | Iterable<string>): Promise<ProcessOutput> {
    const [command, ...rest] = [...this.prefix, binary, ...args];
    return this.run(command ?? binary, rest, input);
  }
}

function describeFailure(binary: string, output: ProcessOutput): string {
  const stderr = output.stderr.trim();
  return stderr === '' ? `${binary} exited with code ${output.code}` : stderr;
}

/**
 * The message and the failing payload line from iptables-restore's stderr. Both backends say
 * "line N failed" or "Error occurred at line: N". iptables-nft checks jumps only at COMMIT and then
 * names the COMMIT line; the line that jumps to the missing chain is more useful, so it is looked up.
 */
export function parseRestoreFailure(stderr: string, payload: string): { message: string; line: number | undefined } {
  const message = stderr.trim();
  const match = /line (\d+) failed/.exec(message) ?? /Error occurred at line: (\d+)/.exec(message);
  if (match?.[1] === undefined) return { message, line: undefined };
  const line = Number(match[1]);
  const missingChain = /Chain '([^']+)' does not exist/.exec(message)?.[1];
  if (missingChain === undefined) return { message, line };
  return { message, line: lineJumpingTo(payload, line, missingChain) ?? line };
}

/** Searches the table section that ends at `commitLine` (1-based) for a rule jumping to `chain`. */
function lineJumpingTo(payload: string, commitLine: number, chain: string): number | undefined {
  const lines = payload.split('\n');
  if (lines[commitLine - 1]?.trim() !== 'COMMIT') return undefined;
  let start = commitLine - 2;
  while (start >= 0 && !(lines[start] ?? '').startsWith('*')) start--;
  for (let index = start + 1; index < commitLine - 1; index++) {
    const text = lines[index] ?? '';
    if ((text.startsWith('-A ') || text.startsWith('-I ')) && jumpTarget(text) === chain) return index + 1;
  }
  return undefined;
}
