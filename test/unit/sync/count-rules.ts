// Counts the -A and -I lines of a payload's text per table: the oracle that the builder's
// SyncStats.rulesWritten is checked against.

import type { TableName } from '../../../src/netfilter/vocabulary.js';

/** The payload as one string or as consecutive pieces that each end with a newline (SyncPlan.chunks). */
export function rulesWrittenPerTable(payload: string | Iterable<string>): Partial<Record<TableName, number>> {
  const counts: Partial<Record<TableName, number>> = {};
  let table: TableName | undefined;
  for (const text of typeof payload === 'string' ? [payload] : payload) {
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const first = text.charCodeAt(start);
      if (first === 42 /* '*' */) {
        const name = text.slice(start + 1, end);
        table = name === 'filter' || name === 'nat' ? name : undefined;
      } else if (first === 45 /* '-' */ && table !== undefined) {
        const flag = text.charCodeAt(start + 1);
        if (flag === 65 /* A */ || flag === 73 /* I */) counts[table] = (counts[table] ?? 0) + 1;
      }
      start = end + 1;
    }
  }
  return counts;
}
