// Deletes conntrack entries with the `conntrack` tool. "0 flow entries" is success, not an error.

import { spawn } from 'node:child_process';
import { conntrackArgs, type ConntrackDeletion } from '../sync/conntrack-plan.js';

export interface CommandOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export type RunCommand = (command: string, args: readonly string[]) => Promise<CommandOutput>;

export const runCommand: RunCommand = (command, args) =>
  new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => resolve({ code: 127, stdout, stderr: stderr + error.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });

export interface ConntrackResult {
  readonly attempted: number;
  readonly failed: readonly { readonly deletion: ConntrackDeletion; readonly message: string }[];
}

export class Conntrack {
  constructor(
    private readonly run: RunCommand = runCommand,
    /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests; empty on a real node. */
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'conntrack',
  ) {}

  async delete(deletions: readonly ConntrackDeletion[]): Promise<ConntrackResult> {
    const failed: { deletion: ConntrackDeletion; message: string }[] = [];
    for (const deletion of deletions) {
      const argv = [...this.prefix, this.binary, ...conntrackArgs(deletion)];
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
