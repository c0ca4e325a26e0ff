// The only door to the kernel's netfilter tables. A real implementation spawns iptables-restore /
// iptables-save; a stateful fake stands in for unit tests.

import type { TableName } from './vocabulary.js';

export type RestoreResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** stderr of iptables-restore, trimmed. */
      readonly message: string;
      /** 1-based payload line that failed when the tool says so. */
      readonly line: number | undefined;
    };

export type SaveResult =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly message: string };

export interface Netfilter {
  /** `iptables-save -t <table>` output. */
  save(table: TableName): Promise<SaveResult>;
  /** `iptables-restore [--noflush] --wait`, payload on stdin (one string, or consecutive pieces of it). */
  restore(payload: string | Iterable<string>, options: { readonly noFlush: boolean }): Promise<RestoreResult>;
  /** Whether a chain exists (`iptables -t <table> -S <chain>`): the cheap canary check.
   * undefined when the check itself failed (treated as "not known to exist"). */
  chainExists(table: TableName, chain: string): Promise<boolean | undefined>;
}
