// Deletes conntrack entries with the `conntrack` tool, one filter per process. "0 flow entries" is
// success, not an error; a missing binary is told apart from other failures.

import { conntrackArgs, type ConntrackDeletion } from '../sync/conntrack-plan.js';
import { runProcess, type ProcessRunner } from './exec.js';

export type ConntrackDeleteResult =
  | { readonly ok: true; readonly entriesDeleted: number }
  | { readonly ok: false; readonly reason: 'binary-missing' | 'failed'; readonly message: string };

/** What the agent's cleanup needs from the kernel side (a fake stands in for unit tests). */
export interface ConntrackDeleter {
  delete(deletion: ConntrackDeletion): Promise<ConntrackDeleteResult>;
}

export class Conntrack implements ConntrackDeleter {
  constructor(
    private readonly run: ProcessRunner = runProcess,
    /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests; empty on a real node. */
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'conntrack',
  ) {}

  async delete(deletion: ConntrackDeletion): Promise<ConntrackDeleteResult> {
    const [command, ...args] = [...this.prefix, this.binary, ...conntrackArgs(deletion)];
    if (command === undefined) return { ok: false, reason: 'failed', message: 'no command' };
    const output = await this.run(command, args);
    const text = `${output.stderr}${output.stdout}`;
    const deleted = /(\d+) flow entries have been deleted/.exec(text);
    // conntrack exits 1 with "0 flow entries have been deleted" when nothing matched.
    if (deleted !== null) return { ok: true, entriesDeleted: Number(deleted[1]) };
    if (output.code === 0) return { ok: true, entriesDeleted: 0 };
    // Spawn ENOENT (code 127), or `ip netns exec` failing to exec it.
    const missing = output.code === 127 || /ENOENT|No such file or directory|not found/i.test(text);
    return { ok: false, reason: missing ? 'binary-missing' : 'failed', message: text.trim() || `exit code ${output.code}` };
  }
}
