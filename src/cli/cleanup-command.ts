// `kube-proxy-ts cleanup`: remove every chain and jump we (or kube-proxy in iptables mode) own.

import { commandUsage, COMMANDS, DEFAULTS, readCommandLine } from '../config/index.js';
import { ExecNetfilter, ipv6Binaries } from '../netfilter/exec.js';
import type { Netfilter } from '../netfilter/netfilter.js';
import type { IPFamily } from '../ip.js';
import { TABLES, type TableName } from '../netfilter/vocabulary.js';
import { cleanupPayload } from '../sync/cleanup.js';
import { resolveIptablesVariant } from './iptables-variant-setup.js';

const usage = commandUsage(COMMANDS.cleanup, [
  'Usage: kube-proxy-ts cleanup [--iptables-backend auto|nft|legacy]',
  '',
  'Removes the KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-*, KUBE-SEP-*, ... chains and the jumps into',
  "them from the nat and filter tables of both families (iptables and ip6tables). kubelet's chains are left alone.",
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
  const ipv4 = await cleanupFamily(new ExecNetfilter({ binaries: backend.binaries }), 'IPv4', backend.backend, true);
  // IPv6 rules (a dual-stack node's); a host where ip6tables does not work has none to remove.
  const ipv6 = await cleanupFamily(new ExecNetfilter({ binaries: ipv6Binaries(backend.binaries) }), 'IPv6', backend.backend, false);
  return Math.max(ipv4, ipv6);
}

/** Removes one family's chains; exit code 0 or 1. `required`: an unreadable table is an error. */
async function cleanupFamily(netfilter: Netfilter, family: IPFamily, variant: string, required: boolean): Promise<number> {
  const saved = new Map<TableName, string>();
  for (const table of TABLES) {
    const result = await netfilter.save(table);
    if (!result.ok) {
      if (!required) return 0;
      process.stderr.write(`cleanup: cannot read the ${family} ${table} table (${variant}): ${result.message}\n`);
      return 1;
    }
    saved.set(table, result.text);
  }
  const payload = cleanupPayload(saved);
  if (payload === '') {
    process.stdout.write(`cleanup: ${family}: nothing to remove (${variant} backend)\n`);
    return 0;
  }
  const restored = await netfilter.restore(payload, { noFlush: true });
  if (!restored.ok) {
    process.stderr.write(`cleanup: ${family}: ${family === 'IPv4' ? 'iptables' : 'ip6tables'}-restore failed: ${restored.message}\n`);
    return 1;
  }
  const chains = payload.split('\n').filter((line) => line.startsWith('-X ')).length;
  process.stdout.write(`cleanup: ${family}: removed ${chains} chains (${variant} backend)\n`);
  return 0;
}
