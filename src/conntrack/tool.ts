// Deletes conntrack entries with the `conntrack` tool, one filter per process. "0 flow entries" is
// success, not an error; a missing binary is told apart from other failures.

import { conntrackArgs, type ConntrackDeletion } from './plan.js';
import { parseUdpFlows, type UdpFlow } from './entries.js';
import { runProcess, type ProcessOutput, type ProcessRunner } from '../process.js';

export type ConntrackDeleteResult =
  | { readonly ok: true; readonly entriesDeleted: number }
  | { readonly ok: false; readonly reason: 'binary-missing' | 'failed'; readonly message: string };

export type ConntrackListResult =
  | { readonly ok: true; readonly flows: readonly UdpFlow[] }
  | { readonly ok: false; readonly reason: 'binary-missing' | 'failed'; readonly message: string };

/** What the agent's cleanup needs from the kernel side (a fake stands in for unit tests). */
export interface ConntrackDeleter {
  delete(deletion: ConntrackDeletion): Promise<ConntrackDeleteResult>;
  /** Every UDP flow (one walk of the table), to skip filters that would match nothing. */
  listUdp?(): Promise<ConntrackListResult>;
}

export class Conntrack implements ConntrackDeleter {
  constructor(
    private readonly run: ProcessRunner = runProcess,
    /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests; empty on a real node. */
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'conntrack',
  ) {}

  /** UDP flows of both families (`-L` shows IPv4 only unless told `-f ipv6`). */
  async listUdp(): Promise<ConntrackListResult> {
    const flows: UdpFlow[] = [];
    for (const family of ['IPv4', 'IPv6'] as const) {
      const output = await this.exec(['-L', '-p', 'udp', ...(family === 'IPv6' ? ['-f', 'ipv6'] : [])]);
      if (output.code !== 0) {
        return { ok: false, reason: missingBinary(output) ? 'binary-missing' : 'failed', message: output.stderr.trim() || `exit code ${output.code}` };
      }
      flows.push(...parseUdpFlows(output.stdout, family));
    }
    return { ok: true, flows };
  }

  async delete(deletion: ConntrackDeletion): Promise<ConntrackDeleteResult> {
    const output = await this.exec(conntrackArgs(deletion));
    const text = `${output.stderr}${output.stdout}`;
    const deleted = /(\d+) flow entries have been deleted/.exec(text);
    // conntrack exits 1 with "0 flow entries have been deleted" when nothing matched.
    if (deleted !== null) return { ok: true, entriesDeleted: Number(deleted[1]) };
    if (output.code === 0) return { ok: true, entriesDeleted: 0 };
    return { ok: false, reason: missingBinary(output) ? 'binary-missing' : 'failed', message: text.trim() || `exit code ${output.code}` };
  }

  private exec(args: readonly string[]): Promise<ProcessOutput> {
    const [command, ...rest] = [...this.prefix, this.binary, ...args];
    return this.run(command ?? this.binary, rest);
  }
}

/** Spawn ENOENT (code 127), or `ip netns exec` failing to exec it. */
function missingBinary(output: ProcessOutput): boolean {
  return output.code === 127 || /ENOENT|No such file or directory|not found/i.test(output.stderr);
}
