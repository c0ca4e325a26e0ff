// Deletes conntrack entries with the `conntrack` tool. "0 flow entries" is success, not an error.

import { conntrackArgs, type ConntrackDeletion } from './plan.js';
import type { IPFamily } from '../ip.js';
import { runProcess, type ProcessRunner } from '../process.js';

export interface ConntrackResult {
  readonly attempted: number;
  readonly failed: readonly { readonly deletion: ConntrackDeletion; readonly message: string }[];
}

export class Conntrack {
  constructor(
    private readonly run: ProcessRunner = runProcess,
    /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests; empty on a real node. */
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'conntrack',
  ) {}

  /** `family`: the model the deletions came from (IPv6 flows are only found with `-f ipv6`). */
  async delete(deletions: readonly ConntrackDeletion[], family: IPFamily = 'IPv4'): Promise<ConntrackResult> {
    const failed: { deletion: ConntrackDeletion; message: string }[] = [];
    for (const deletion of deletions) {
      const argv = [...this.prefix, this.binary, ...conntrackArgs(deletion, family)];
      const [command, ...args] = argv;
      if (command === undefined) continue;
      const output = await this.run(command, args);
      // conntrack exits 1 with "0 flow entries have been deleted" when nothing matched.
      const nothingMatched = /0 flow entries/.test(output.stderr + output.stdout);
      if (output.code !== 0 && !nothingMatched) failed.push({ deletion, message: output.stderr.trim() });
    }
    return { attempted: deletions.length, failed };
  }
}
