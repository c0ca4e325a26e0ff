// The door to the `nft` binary: run a transaction (`nft -f -`), list the names in our table once
// for a full sync, delete the table, and find out at start whether this nft can be used at all
// (its version and the features the ruleset needs). Every outcome is a value; nothing throws,
// whatever nft prints.

import { runProcess, type ProcessRunner, type RunOptions } from '../process.js';
import type { ObservedTable } from './diff.js';
import { KUBE_PROXY_TABLE, MAP, type NftFamily } from './vocabulary.js';

export type NftResult = { readonly ok: true } | { readonly ok: false; readonly message: string; readonly line: number | undefined };

export type NftListing = { readonly kind: 'listed'; readonly text: string } | { readonly kind: 'absent' } | { readonly kind: 'unread'; readonly message: string };

export type NftSupport =
  | { readonly ok: true; readonly version: string }
  | { readonly ok: false; readonly version: string | undefined; readonly reason: string };

/** knftables (and so upstream) refuses nft older than 1.0.1: it parsed every table at start. */
export const MINIMUM_NFT_VERSION: readonly [number, number, number] = [1, 0, 1];

export interface NftOptions {
  readonly binary?: string;
  /** e.g. `['ip', 'netns', 'exec', name]` for tests. */
  readonly prefix?: readonly string[];
  readonly run?: ProcessRunner;
  /** How long a drift listing of the table may take (default LIST_TABLE_TIMEOUT_MS). */
  readonly listTimeoutMs?: number;
}

/** A drift listing running longer is killed (see listTable). */
export const LIST_TABLE_TIMEOUT_MS = 120_000;

export class Nft {
  private readonly binary: string;
  private readonly prefix: readonly string[];
  private readonly run: ProcessRunner;
  private readonly listTimeoutMs: number;

  constructor(options: NftOptions = {}) {
    this.binary = options.binary ?? 'nft';
    this.prefix = options.prefix ?? [];
    this.run = options.run ?? runProcess;
    this.listTimeoutMs = options.listTimeoutMs ?? LIST_TABLE_TIMEOUT_MS;
  }

  private exec(args: readonly string[], input?: string | Iterable<string>, options?: RunOptions): ReturnType<ProcessRunner> {
    const [command, ...rest] = [...this.prefix, this.binary, ...args];
    return this.run(command ?? this.binary, [...rest], input, options);
  }

  /** Runs one transaction: all of it or nothing. */
  async apply(lines: readonly string[]): Promise<NftResult> {
    const output = await this.exec(['-f', '-'], linesAsText(lines));
    if (output.code === 0) return { ok: true };
    return { ok: false, message: firstLines(output.stderr || output.stdout || `nft exited ${output.code}`), line: failedLine(output.stderr) };
  }

  /** The chain and set names in our table; an absent table is empty, undefined when nft cannot say. */
  async observe(family: NftFamily): Promise<ObservedTable | undefined> {
    const chains = await this.exec(['-t', 'list', 'chains', family.table]);
    const sets = await this.exec(['-t', 'list', 'sets', family.table]);
    if (chains.code !== 0 || sets.code !== 0) return undefined;
    return { chains: namesInTable(chains.stdout, 'chain', family), sets: namesInTable(sets.stdout, 'set', family) };
  }

  /** Whether our table of this family exists; undefined when nft cannot say. */
  async tableExists(family: NftFamily): Promise<boolean | undefined> {
    const output = await this.exec(['list', 'tables', family.table]);
    if (output.code !== 0) return undefined;
    return output.stdout.split('\n').some((line) => line.trim() === `table ${family.table} ${KUBE_PROXY_TABLE}`);
  }

  /** Removes our table of this family; an absent table is success. */
  async deleteTable(family: NftFamily): Promise<NftResult> {
    // `add` first: deleting an absent table would fail.
    return this.apply([`add table ${family.table} ${KUBE_PROXY_TABLE}`, `delete table ${family.table} ${KUBE_PROXY_TABLE}`]);
  }

  /**
   * Whether our table is there, judged by its small `firewall-ips` map (a cheap canary; the rules
   * are the drift check's business). Not a chain listing: before listing one chain nft 1.0.6 dumps
   * the elements of every set of the table, one request per anonymous numgen map (measured on a
   * table of 5k Services: `list chain` 9.1 s, `list map` 0.05 s; at 10k it held every periodic sync
   * for 20-30 s).
   */
  async tablePresent(family: NftFamily): Promise<boolean | undefined> {
    const output = await this.exec(['list', 'map', family.table, KUBE_PROXY_TABLE, MAP.firewallIPs]);
    if (output.code === 0) return true;
    return /No such file or directory/.test(output.stderr) ? false : undefined;
  }

  /**
   * Our table without set elements (`-t`): every chain and its rules, as nft prints them. Given
   * up after LIST_TABLE_TIMEOUT_MS: nft restarts its dump whenever another transaction commits,
   * and a listing that takes 24-40 s alone (10k Services) could otherwise restart for as long as
   * the cluster keeps changing, holding a core.
   */
  async listTable(family: NftFamily): Promise<NftListing> {
    const output = await this.exec(['-t', 'list', 'table', family.table, KUBE_PROXY_TABLE], undefined, { timeoutMs: this.listTimeoutMs });
    if (output.code === 0) return { kind: 'listed', text: output.stdout };
    if (/No such file or directory/.test(output.stderr)) return { kind: 'absent' };
    return { kind: 'unread', message: firstLines(output.stderr || output.stdout || `nft exited ${output.code}`) };
  }

  /** The version, then a dry run (`--check`) of a transaction using every feature the ruleset needs. */
  async support(family: NftFamily): Promise<NftSupport> {
    const versionOutput = await this.exec(['--version']);
    if (versionOutput.code !== 0) {
      return { ok: false, version: undefined, reason: `cannot run ${this.binary}: ${firstLines(versionOutput.stderr || `exit ${versionOutput.code}`)}` };
    }
    const version = parseNftVersion(versionOutput.stdout);
    if (version === undefined) {
      return { ok: false, version: undefined, reason: `cannot read the version of ${this.binary} from ${JSON.stringify(firstLines(versionOutput.stdout))}` };
    }
    const text = version.join('.');
    if (compareVersions(version, MINIMUM_NFT_VERSION) < 0) {
      return { ok: false, version: text, reason: `nft ${text} is too old: ${MINIMUM_NFT_VERSION.join('.')} or later is needed` };
    }
    const probe = await this.exec(['--check', '-f', '-'], linesAsText(featureProbe(family)));
    if (probe.code !== 0) {
      return { ok: false, version: text, reason: `nft ${text} rejects rules the nftables mode needs: ${firstLines(probe.stderr || probe.stdout)}` };
    }
    return { ok: true, version: text };
  }
}

/** `nftables v1.0.6 (Lester Gooch #5)` -> [1, 0, 6]. */
export function parseNftVersion(text: string): [number, number, number] | undefined {
  const match = /\bv(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (match === null) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? '0')];
}

export function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let index = 0; index < Math.max(a.length, b.length); index++) {
    const difference = (a[index] ?? 0) - (b[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

/** A throwaway table that uses each construct of the ruleset once; only ever `--check`ed. */
function featureProbe(family: NftFamily): string[] {
  const table = `${family.table} kube-proxy-feature-probe`;
  const address = family.family === 'IPv4' ? '10.0.0.1' : 'fd00::1';
  const destination = family.family === 'IPv4' ? '10.0.0.2:80' : '[fd00::2]:80';
  return [
    `add table ${table} { comment "probe" ; }`,
    `add chain ${table} base { type nat hook prerouting priority -100 ; }`,
    `add chain ${table} target { comment "probe" ; }`,
    `add set ${table} affinity { type ${family.addressType} ; flags dynamic,timeout ; timeout 10800s ; }`,
    `add map ${table} services { type ${family.addressType} . inet_proto . inet_service : verdict ; comment "probe" ; }`,
    `add element ${table} services { ${address} . tcp . 80 comment "probe" : goto target }`,
    `add rule ${table} base ${family.table} daddr . meta l4proto . th dport vmap @services`,
    `add rule ${table} base fib daddr type local ${family.noLocalhost} meta l4proto . th dport vmap { tcp . 30000 : goto target }`,
    `add rule ${table} target update @affinity { ${family.table} saddr }`,
    `add rule ${table} target numgen random mod 2 vmap { 0 : goto target , 1 : goto target }`,
    `add rule ${table} target meta l4proto tcp dnat to ${destination}`,
    `add chain ${table} post { type nat hook postrouting priority 100 ; }`,
    `add rule ${table} post masquerade fully-random`,
  ];
}

function linesAsText(lines: readonly string[]): Iterable<string> {
  // Pieces of ~1 MB: the runner streams them into nft's stdin.
  return (function* pieces(): Generator<string> {
    let buffer: string[] = [];
    let size = 0;
    for (const line of lines) {
      buffer.push(line);
      size += line.length + 1;
      if (size >= 1 << 20) {
        yield `${buffer.join('\n')}\n`;
        buffer = [];
        size = 0;
      }
    }
    if (buffer.length > 0) yield `${buffer.join('\n')}\n`;
  })();
}

/** `/dev/stdin:12:5-20: Error: ...` -> 12. */
function failedLine(stderr: string): number | undefined {
  const match = /^[^:\n]*:(\d+):\d+(?:-\d+)?: Error/m.exec(stderr);
  return match === null ? undefined : Number(match[1]);
}

function firstLines(text: string, count = 3): string {
  return text.trim().split('\n').slice(0, count).join(' | ').slice(0, 600);
}

/** Names of one kind (`chain`, `set`) inside `table <family> kube-proxy { ... }` of a terse listing. */
export function namesInTable(listing: string, kind: 'chain' | 'set', family: NftFamily): Set<string> {
  const names = new Set<string>();
  let inside = false;
  for (const line of listing.split('\n')) {
    const trimmed = line.trim();
    const table = /^table (\S+) (\S+) \{$/.exec(trimmed);
    if (table !== null) {
      inside = table[1] === family.table && table[2] === KUBE_PROXY_TABLE;
      continue;
    }
    if (!inside) continue;
    const object = new RegExp(`^${kind} (\\S+) \\{`).exec(trimmed);
    if (object?.[1] !== undefined) names.add(object[1]);
  }
  return names;
}
