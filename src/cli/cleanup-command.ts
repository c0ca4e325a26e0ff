// `kube-proxy-ts cleanup`: remove every chain and jump we (or kube-proxy in iptables mode) own.

import { parseArgs } from 'node:util';
import { ExecNetfilter } from '../netfilter/exec.js';
import type { TableName } from '../render/types.js';
import { cleanupPayload } from '../sync/cleanup.js';
import { parseBackendFlag, resolveBackend } from './netfilter-setup.js';
import { messageOf } from '../values.js';

const usage = `Usage: kube-proxy-ts cleanup [--iptables-backend auto|nft|legacy]

Removes the KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-*, KUBE-SEP-*, ... chains and the jumps into
them from the nat and filter tables. kubelet's chains are left alone.
`;

export async function cleanupCommand(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { 'iptables-backend': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error: unknown) {
    process.stderr.write(`cleanup: ${messageOf(error)}\n${usage}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(usage);
    return 0;
  }
  const configured = parseBackendFlag(values['iptables-backend'] ?? process.env['KUBE_PROXY_TS_IPTABLES_BACKEND']);
  if (configured === undefined) {
    process.stderr.write(`cleanup: --iptables-backend must be auto, nft or legacy\n`);
    return 2;
  }
  const backend = await resolveBackend(configured);
  const netfilter = new ExecNetfilter({ binaries: backend.binaries });
  const saved = new Map<TableName, string>();
  for (const table of ['filter', 'nat'] as const) {
    const result = await netfilter.save(table);
    if (!result.ok) {
      process.stderr.write(`cleanup: cannot read the ${table} table (${backend.backend}): ${result.message}\n`);
      return 1;
    }
    saved.set(table, result.text);
  }
  const payload = cleanupPayload(saved);
  if (payload === '') {
    process.stdout.write(`cleanup: nothing to remove (${backend.backend} backend)\n`);
    return 0;
  }
  const restored = await netfilter.restore(payload, { noFlush: true });
  if (!restored.ok) {
    process.stderr.write(`cleanup: iptables-restore failed: ${restored.message}\n`);
    return 1;
  }
  const chains = payload.split('\n').filter((line) => line.startsWith('-X ')).length;
  process.stdout.write(`cleanup: removed ${chains} chains (${backend.backend} backend)\n`);
  return 0;
}
