// The start-up check of `run`: does iptables work on this node? As kube-proxy, the agent refuses
// to start without it instead of retrying forever: each binary of the chosen backend must run, and
// the kernel must have the filter and nat tables (`iptables -t nat -S POSTROUTING` fails with
// "Table does not exist (do you need to insmod?)" when a module is missing). A held xtables lock
// (exit 4) says nothing about support and does not fail the check.

import type { ProcessRunner } from '../process.js';
import type { IptablesBinaries } from './exec.js';

export type PreflightResult = { readonly ok: true } | { readonly ok: false; readonly message: string };

/** Exit status of iptables for "resource problem" (another app holds the xtables lock). */
const RESOURCE_PROBLEM = 4;

export async function checkIptables(binaries: IptablesBinaries, run: ProcessRunner, prefix: readonly string[] = []): Promise<PreflightResult> {
  const exec = (binary: string, args: readonly string[]): ReturnType<ProcessRunner> => {
    const [command, ...rest] = [...prefix, binary, ...args];
    return run(command ?? binary, rest);
  };
  for (const binary of [binaries.restore, binaries.save, binaries.iptables]) {
    const output = await exec(binary, ['--version']);
    if (output.code === 127 || /ENOENT|not found/i.test(output.stderr)) {
      return { ok: false, message: `${binary} is not installed or not on PATH (${firstLine(output.stderr) || `exit ${output.code}`})` };
    }
    if (output.code !== 0) return { ok: false, message: `${binary} --version failed: ${firstLine(output.stderr) || `exit ${output.code}`}` };
  }
  for (const [table, chain] of [['filter', 'FORWARD'], ['nat', 'POSTROUTING']] as const) {
    const output = await exec(binaries.iptables, ['--wait=5', '-t', table, '-S', chain]);
    if (output.code === 0 || output.code === RESOURCE_PROBLEM) continue;
    return {
      ok: false,
      message: `the kernel does not provide the ${table} table to ${binaries.iptables} (${firstLine(output.stderr) || `exit ${output.code}`}): ` +
        'load the iptables kernel modules (ip_tables/iptable_filter/iptable_nat for legacy, nf_tables for nft) or choose the other backend with --iptables-backend',
    };
  }
  return { ok: true };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}
