// Picks the iptables variant (nft or legacy: iptables calls it the backend) the host already uses, as iptables-wrappers does:
// writing into the other one leaves two rule sets fighting over the same packets (kubernetes #71305).

import { kubeletVariantHintChains } from './vocabulary.js';
import { legacyBinaries, nftBinaries, type IptablesBinaries } from './exec.js';
import { runProcess, type ProcessRunner } from '../process.js';

export type IptablesVariant = 'nft' | 'legacy';

export interface IptablesVariantDetection {
  readonly backend: IptablesVariant;
  readonly binaries: IptablesBinaries;
  /** Why, for the startup log. */
  readonly reason: string;
}

export function binariesFor(backend: IptablesVariant): IptablesBinaries {
  return backend === 'nft' ? nftBinaries : legacyBinaries;
}

/** What detection looks at; any output that could not be read is ''. */
export interface IptablesVariantEvidence {
  /** `iptables-nft-save -t mangle`. */
  readonly nftMangle: string;
  /** `iptables-nft-save` (all tables). */
  readonly nftAll: string;
  /** `iptables-legacy-save` (all tables: `-t mangle` would make the kernel create the table). */
  readonly legacyAll: string;
}

/**
 * kubelet (1.17+) creates KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY in mangle with the host's
 * backend, so those decide first (nft checked first, as it is the common case). Without them, the
 * backend holding more rules wins; a tie (e.g. an empty node) means nft, the default since iptables 1.8.
 */
export function chooseIptablesVariant(evidence: IptablesVariantEvidence): IptablesVariantDetection {
  if (hasKubeletChains(evidence.nftMangle)) return detection('nft', 'kubelet chains found in iptables-nft');
  if (hasKubeletChains(evidence.legacyAll)) return detection('legacy', 'kubelet chains found in iptables-legacy');
  const legacyRules = countRules(evidence.legacyAll);
  const nftRules = countRules(evidence.nftAll);
  if (legacyRules > nftRules) return detection('legacy', `iptables-legacy has more rules (${legacyRules} > ${nftRules})`);
  return detection('nft', nftRules > 0 ? `iptables-nft has at least as many rules (${nftRules} >= ${legacyRules})` : 'no rules in either backend: default');
}

export interface DetectIptablesVariantOptions {
  readonly run?: ProcessRunner;
  /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests. */
  readonly prefix?: readonly string[];
}

/** Runs the saves (failures count as empty output) and chooses. Never throws. */
export async function detectIptablesVariant(options: DetectIptablesVariantOptions = {}): Promise<IptablesVariantDetection> {
  const run = options.run ?? runProcess;
  const prefix = options.prefix ?? [];
  const read = async (binary: string, args: readonly string[]): Promise<string> => {
    const [command, ...rest] = [...prefix, binary, ...args];
    const output = await run(command ?? binary, rest);
    return output.code === 0 ? output.stdout : '';
  };
  const nftMangle = await read(nftBinaries.save, ['-t', 'mangle']);
  if (hasKubeletChains(nftMangle)) return chooseIptablesVariant({ nftMangle, nftAll: '', legacyAll: '' });
  const legacyAll = await read(legacyBinaries.save, []);
  const nftAll = await read(nftBinaries.save, []);
  return chooseIptablesVariant({ nftMangle, nftAll, legacyAll });
}

function detection(backend: IptablesVariant, reason: string): IptablesVariantDetection {
  return { backend, binaries: binariesFor(backend), reason };
}

function hasKubeletChains(saveText: string): boolean {
  return kubeletVariantHintChains.some((chain) => saveText.includes(`\n:${chain} `) || saveText.startsWith(`:${chain} `));
}

function countRules(saveText: string): number {
  return saveText.match(/^-/gm)?.length ?? 0;
}
