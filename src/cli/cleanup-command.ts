// `kube-proxy-ts cleanup`: remove every chain and jump we (or kube-proxy in iptables mode) own.

import { commandUsage, COMMANDS, DEFAULTS, readCommandLine } from '../config/index.js';
import { ExecNetfilter } from '../netfilter/exec.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';
import { cleanupPayload } from '../sync/cleanup.js';
import { resolveIptablesVariant } from './iptables-variant-setup.js';

const usage = commandUsage(COMMANDS.cleanup, [
  'Usage: kube-proxy-ts cleanup [--iptables-backend auto|nft|legacy]',
  '',
  'Removes the KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-*, KUBE-SEP-*, ... chains and the jumps into',
  "them from the nat and filter tables. kubelet's chains are left alone.",
  '',
]);

export async function cleanupCommand(argv: readonly string[]): Promise<number> {
  const line = readCommandLine(COMMANDS.cleanup, argv, process.env, () => '');
  if (line.kind === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  if (line.kind === 'invalid' || line.errors.length > 0) {
    for (const error of line.errors) process.stderr.write(`cleanup: ${error.message}\n`);
    if (line.kind === 'invalid') process.stderr.write(usage);
    return 2;
  }
  const backend = await resolveIptablesVariant(line.values.iptablesBackend ?? DEFAULTS.iptablesBackend);
  const netfilter = new ExecNetfilter({ binaries: backend.binaries });
  const saved = new Map<TableName, string>();
  for (const table of TABLES) {
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
