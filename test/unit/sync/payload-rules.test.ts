import { describe, expect, it } from 'vitest';
import { rulesWrittenPerTable } from './count-rules.js';

describe('rulesWrittenPerTable', () => {
  it('counts -A and -I lines per table, not declarations, deletions or -X', () => {
    const payload = ['*filter', ':KUBE-SERVICES - [0:0]', '-A KUBE-SERVICES -j REJECT', '-D KUBE-SERVICES -j DROP', 'COMMIT',
      '*nat', ':KUBE-SVC-X - [0:0]', '-A KUBE-SVC-X -j KUBE-SEP-Y', '-I KUBE-SERVICES 1 -j KUBE-SVC-X', '-X KUBE-SEP-Z', 'COMMIT', ''].join('\n');
    expect(rulesWrittenPerTable(payload)).toEqual({ filter: 1, nat: 2 });
    expect(rulesWrittenPerTable('')).toEqual({});
    // The same payload as pieces cut at line ends (SyncPlan.chunks): the table carries over.
    const lines = payload.split(/(?<=\n)/);
    expect(rulesWrittenPerTable(lines)).toEqual({ filter: 1, nat: 2 });
    expect(rulesWrittenPerTable([])).toEqual({});
  });
});
