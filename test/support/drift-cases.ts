// Tampering with a node's rules the way people and other agents do, with the real `iptables` and
// `iptables-restore` commands in a network namespace, each with the drift finding it must produce
// (sync/drift.ts). Shared by the kernel test of the drift planner and the agent's fault test.

import { expect } from 'vitest';
import type { IptablesBinaries } from '../../src/netfilter/exec.js';
import type { RuleSet } from '../../src/render/types.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import type { DriftFinding } from '../../src/sync/drift.js';
import type { Netns } from '../harness/netns.js';

export interface DriftCase {
  readonly name: string;
  readonly tamper: () => Promise<void>;
  readonly expected: readonly DriftFinding[];
}

const SHARED = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'KUBE-PROXY-FIREWALL'];

/** One case per kind of drift, on chains of `ruleSet` (it needs a KUBE-SVC- chain with 3 rules and a KUBE-SEP- chain). */
export function driftCases(ruleSet: RuleSet, netns: Netns, binaries: IptablesBinaries): DriftCase[] {
  const chains = [...ruleSet.servicePorts.values()].flatMap((rules) => rules.chains);
  const svc = chains.find((chain) => chain.name.startsWith('KUBE-SVC-') && chain.rules.length >= 3)?.name;
  const sep = chains.find((chain) => chain.name.startsWith('KUBE-SEP-'))?.name;
  if (svc === undefined || sep === undefined) throw new Error('the rule set lacks a KUBE-SVC- chain with 3 rules or a KUBE-SEP- chain');
  const iptables = (table: TableName, ...args: string[]) => async (): Promise<void> => {
    const result = await netns.exec(binaries.iptables, ['-w', '-t', table, ...args]);
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  };
  const restore = (payload: () => Promise<string> | string, noFlush = true) => async (): Promise<void> => {
    const result = await netns.exec(binaries.restore, noFlush ? ['--noflush'] : [], await payload());
    expect(result.code, result.stderr).toBe(0);
  };
  const rulesOf = async (table: TableName, chain: string): Promise<string[]> =>
    (await netns.exec(binaries.iptables, ['-w', '-t', table, '-S', chain])).stdout.split('\n').filter((line) => line.startsWith('-A ')).map((line) => line.slice(`-A ${chain} `.length));
  const nat = (kind: DriftFinding['kind'], chain: string): DriftFinding[] => [{ table: 'nat', chain, kind }];
  return [
    { name: 'service rule deleted from KUBE-SERVICES', tamper: iptables('nat', '-D', 'KUBE-SERVICES', '1'), expected: nat('rule-missing', 'KUBE-SERVICES') },
    { name: 'foreign rule added to KUBE-SERVICES', tamper: iptables('nat', '-I', 'KUBE-SERVICES', '2', '-d', '10.99.0.1/32', '-j', 'ACCEPT'), expected: nat('rule-extra', 'KUBE-SERVICES') },
    { name: 'service rule replaced in KUBE-SERVICES', tamper: iptables('nat', '-R', 'KUBE-SERVICES', '1', '-d', '10.99.0.2/32', '-j', 'RETURN'), expected: nat('rule-changed', 'KUBE-SERVICES') },
    {
      name: 'trailer moved up in KUBE-SERVICES',
      tamper: restore(async () => {
        const trailer = (await rulesOf('nat', 'KUBE-SERVICES')).at(-1) ?? '';
        return `*nat\n-D KUBE-SERVICES ${trailer}\n-I KUBE-SERVICES 1 ${trailer}\nCOMMIT\n`;
      }),
      expected: nat('rules-reordered', 'KUBE-SERVICES'),
    },
    { name: 'rule deleted from a KUBE-SVC- chain', tamper: iptables('nat', '-D', svc, '2'), expected: nat('rule-missing', svc) },
    { name: 'rule appended to a KUBE-SEP- chain', tamper: iptables('nat', '-A', sep, '-j', 'RETURN'), expected: nat('rule-extra', sep) },
    { name: 'rule changed in a KUBE-SVC- chain', tamper: iptables('nat', '-R', svc, '1', '-j', 'RETURN'), expected: nat('rule-changed', svc) },
    {
      name: 'rules of a KUBE-SVC- chain reordered',
      tamper: restore(async () => `*nat\n-D ${svc} 1\n-A ${svc} ${(await rulesOf('nat', svc))[0] ?? ''}\nCOMMIT\n`),
      expected: nat('rules-reordered', svc),
    },
    { name: 'KUBE-SVC- chain flushed', tamper: iptables('nat', '-F', svc), expected: nat('chain-flushed', svc) },
    { name: 'canary chain deleted', tamper: iptables('nat', '-X', 'KUBE-PROXY-CANARY'), expected: nat('chain-missing', 'KUBE-PROXY-CANARY') },
    { name: 'filter KUBE-FORWARD flushed', tamper: iptables('filter', '-F', 'KUBE-FORWARD'), expected: [{ table: 'filter', chain: 'KUBE-FORWARD', kind: 'chain-flushed' }] },
    {
      name: 'jump from PREROUTING deleted',
      tamper: iptables('nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'),
      expected: nat('jump-missing', 'PREROUTING'),
    },
    { name: 'nat table flushed', tamper: restore(() => '*nat\nCOMMIT\n', false), expected: nat('table-flushed', '*') },
    { name: 'filter table flushed', tamper: restore(() => '*filter\nCOMMIT\n', false), expected: [{ table: 'filter', chain: '*', kind: 'table-flushed' }] },
  ];
}

/**
 * Both tables as iptables-save prints them, made comparable: counters dropped, chains and rules
 * grouped by chain in name order, the service rules of shared chains sorted (their order depends
 * on the history of in-place edits) with the trailer kept last.
 */
export function comparableView(saved: ReadonlyMap<TableName, string> | readonly (readonly [TableName, string])[]): string {
  const out: string[] = [];
  for (const [table, text] of saved) {
    const lines = text.split('\n').map((line) => line.replace(/ \[\d+:\d+\]$/, ''));
    const byChain = new Map<string, string[]>();
    for (const line of lines.filter((candidate) => candidate.startsWith('-A '))) {
      const chain = line.split(' ')[1] ?? '';
      byChain.set(chain, [...(byChain.get(chain) ?? []), line]);
    }
    out.push(`*${table}`, ...lines.filter((line) => line.startsWith(':')).sort());
    for (const chain of [...byChain.keys()].sort()) {
      const rules = byChain.get(chain) ?? [];
      out.push(...(SHARED.includes(chain) ? [...rules.slice(0, -1).sort(), ...rules.slice(-1)] : rules));
    }
  }
  return out.join('\n');
}
