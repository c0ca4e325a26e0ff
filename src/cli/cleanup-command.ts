// `kube-proxy-ts cleanup`: remove every chain and jump we (or kube-proxy in iptables mode) own, in
// both families, and the nftables mode's tables.

import { commandUsage, COMMANDS, DEFAULTS, readCommandLine } from '../config/index.js';
import { ExecNetfilter, ipv6Binaries } from '../netfilter/exec.js';
import { Nft } from '../nftables/nft.js';
import { nftFamily } from '../nftables/vocabulary.js';
import { removeIptablesRulesOfFamilies, removeNftablesTables } from './mode-cleanup.js';
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
  let code = 0;
  const netfilters = { IPv4: new ExecNetfilter({ binaries: backend.binaries }), IPv6: new ExecNetfilter({ binaries: ipv6Binaries(backend.binaries) }) };
  for (const { family, outcome } of await removeIptablesRulesOfFamilies(netfilters)) {
    if (!outcome.ok) {
      process.stderr.write(`cleanup: ${family}: ${outcome.message} (${backend.backend} backend)\n`);
      code = 1;
    } else {
      process.stdout.write(
        outcome.removed === 0 ? `cleanup: ${family}: nothing to remove (${backend.backend} backend)\n` : `cleanup: ${family}: removed ${outcome.removed} chains (${backend.backend} backend)\n`,
      );
    }
  }
  // As kube-proxy's --cleanup: every mode's rules, so the nftables mode's tables too.
  const nft = new Nft();
  if (!(await nft.support(nftFamily('IPv4'))).ok) {
    process.stdout.write('cleanup: no usable nft binary; nftables tables left alone\n');
    return code;
  }
  const nftables = await removeNftablesTables(nft);
  if (!nftables.ok) {
    process.stderr.write(`cleanup: ${nftables.message}\n`);
    return 1;
  }
  process.stdout.write(`cleanup: removed ${nftables.removed} nftables kube-proxy tables\n`);
  return code;
}
