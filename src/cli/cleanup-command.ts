// `kube-proxy-ts cleanup`: remove every chain and jump we (or kube-proxy in iptables mode) own, in
// both families, and the nftables mode's tables.

import { commandUsage, COMMANDS, DEFAULTS, readCommandLine } from '../config/index.js';
import { ExecNetfilter, ipv6Binaries } from '../netfilter/exec.js';
import type { Netfilter } from '../netfilter/netfilter.js';
import type { IPFamily } from '../ip.js';
import { Nft } from '../nftables/nft.js';
import { nftFamily } from '../nftables/vocabulary.js';
import { removeIptablesRules, removeNftablesTables } from './mode-cleanup.js';
import { resolveIptablesVariant } from './iptables-variant-setup.js';

const usage = commandUsage(COMMANDS.cleanup, [
  'Usage: kube-proxy-ts cleanup [--iptables-backend auto|nft|legacy]',
  '',
  'Removes the KUBE-SERVICES, KUBE-NODEPORTS, KUBE-SVC-*, KUBE-SEP-*, ... chains and the jumps into',
  "them from the nat and filter tables of both families (iptables and ip6tables; kubelet's chains are",
  "left alone), and the nftables mode's `kube-proxy` tables (ip and ip6).",
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
  // As kube-proxy's --cleanup: every mode's rules, so the nftables mode's tables too.
  const nft = new Nft();
  if (!(await nft.support(nftFamily('IPv4'))).ok) {
    process.stdout.write('cleanup: no usable nft binary; nftables tables left alone\n');
    return Math.max(ipv4, ipv6);
  }
  const nftables = await removeNftablesTables(nft);
  if (!nftables.ok) {
    process.stderr.write(`cleanup: ${nftables.message}\n`);
    return 1;
  }
  process.stdout.write(`cleanup: removed ${nftables.removed} nftables kube-proxy tables\n`);
  return Math.max(ipv4, ipv6);
}

/** Removes one family's chains; exit code 0 or 1. `required`: an unreadable table is an error. */
async function cleanupFamily(netfilter: Netfilter, family: IPFamily, variant: string, required: boolean): Promise<number> {
  const removed = await removeIptablesRules(netfilter);
  if (!removed.ok) {
    if (!required && removed.unreadable) return 0;
    process.stderr.write(`cleanup: ${family}: ${removed.message} (${variant} backend)\n`);
    return 1;
  }
  process.stdout.write(
    removed.removed === 0 ? `cleanup: ${family}: nothing to remove (${variant} backend)\n` : `cleanup: ${family}: removed ${removed.removed} chains (${variant} backend)\n`,
  );
  return 0;
}
