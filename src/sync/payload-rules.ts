// Counts the rules a payload writes per table (`kubeproxy_sync_proxy_rules_iptables_last`). Pure.

import type { TableName } from '../render/types.js';

export function rulesWrittenPerTable(payload: string): Partial<Record<TableName, number>> {
  const counts: Partial<Record<TableName, number>> = {};
  let table: TableName | undefined;
  let start = 0;
  while (start < payload.length) {
    let end = payload.indexOf('\n', start);
    if (end < 0) end = payload.length;
    const first = payload.charCodeAt(start);
    if (first === 42 /* '*' */) {
      const name = payload.slice(start + 1, end);
      table = name === 'filter' || name === 'nat' ? name : undefined;
    } else if (first === 45 /* '-' */ && table !== undefined) {
      const flag = payload.charCodeAt(start + 1);
      if (flag === 65 /* A */ || flag === 73 /* I */) counts[table] = (counts[table] ?? 0) + 1;
    }
    start = end + 1;
  }
  return counts;
}
