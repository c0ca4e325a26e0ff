import { describe, expect, it } from 'vitest';
import { chooseIptablesVariant, detectIptablesVariant } from '../../../src/netfilter/iptables-variant.js';
import { legacyBinaries, nftBinaries } from '../../../src/netfilter/exec.js';
import { type ProcessRunner } from '../../../src/process.js';

const kubeletMangle = '*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n';
const rules = (count: number): string => `*filter\n:INPUT ACCEPT [0:0]\n${'-A INPUT -j ACCEPT\n'.repeat(count)}COMMIT\n`;

describe('chooseIptablesVariant', () => {
  it("prefers nft when kubelet's chains are there", () => {
    expect(chooseIptablesVariant({ nftMangle: kubeletMangle, nftAll: kubeletMangle, legacyAll: rules(50) })).toMatchObject({ backend: 'nft', binaries: nftBinaries });
  });

  it("follows kubelet's chains into legacy", () => {
    expect(chooseIptablesVariant({ nftMangle: '', nftAll: rules(50), legacyAll: kubeletMangle })).toMatchObject({ backend: 'legacy', binaries: legacyBinaries });
  });

  it('otherwise picks the backend with more rules, nft on a tie', () => {
    expect(chooseIptablesVariant({ nftMangle: '', nftAll: rules(2), legacyAll: rules(3) }).backend).toBe('legacy');
    expect(chooseIptablesVariant({ nftMangle: '', nftAll: rules(3), legacyAll: rules(3) }).backend).toBe('nft');
    expect(chooseIptablesVariant({ nftMangle: '', nftAll: '', legacyAll: '' })).toMatchObject({ backend: 'nft', reason: 'no rules in either backend: default' });
  });

  it('does not count comments or chain declarations as rules', () => {
    const noisy = '# Warning: iptables-legacy tables present\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-A - [0:0]\nCOMMIT\n';
    expect(chooseIptablesVariant({ nftMangle: '', nftAll: rules(1), legacyAll: noisy }).backend).toBe('nft');
  });
});

describe('detectIptablesVariant', () => {
  it('never asks iptables-legacy-save for one table (that would create it) and stops at the first hint', async () => {
    const calls: string[] = [];
    const run: ProcessRunner = (command, args) => {
      calls.push([command, ...args].join(' '));
      const stdout = command === 'iptables-legacy-save' ? kubeletMangle : '';
      return Promise.resolve({ code: 0, stdout, stderr: '' });
    };
    expect((await detectIptablesVariant({ run })).backend).toBe('legacy');
    expect(calls).toEqual(['iptables-nft-save -t mangle', 'iptables-legacy-save', 'iptables-nft-save']);
  });

  it('treats a save that fails (binary missing) as empty', async () => {
    const run: ProcessRunner = () => Promise.resolve({ code: 127, stdout: '-A INPUT -j ACCEPT\n', stderr: 'ENOENT' });
    expect((await detectIptablesVariant({ run, prefix: ['ip', 'netns', 'exec', 'x'] })).backend).toBe('nft');
  });
});
