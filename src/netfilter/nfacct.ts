// Extended accounting objects (nfnetlink_acct) with the `nfacct` tool: the packet counters
// kube-proxy attaches to rules with `-m nfacct` and exports as metrics. Where the tool or the kernel
// support is missing, `ensure` says so and the rules go without the match, as upstream's do.

import { runProcess, type ProcessRunner } from '../process.js';

/** kube-proxy's counter on the rule that drops conntrack-INVALID packets in KUBE-FORWARD. */
export const CT_STATE_INVALID_DROPPED_COUNTER = 'ct_state_invalid_dropped_pkts';
/** kube-proxy's counter on the NodePort rules for 127.0.0.0/8 (localhost NodePorts). */
export const LOCALHOST_NODEPORTS_ACCEPTED_COUNTER = 'localhost_nps_accepted_pkts';

export class NfAcct {
  constructor(
    private readonly run: ProcessRunner = runProcess,
    /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests; empty on a real node. */
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'nfacct',
  ) {}

  /**
   * Creates the counter (an existing one stays as it is: `add` then fails, which is fine); false
   * when it cannot be read afterwards (no tool, no kernel support).
   */
  async ensure(name: string): Promise<boolean> {
    await this.exec(['add', name]);
    return (await this.packets(name)) !== undefined;
  }

  /** The counter's packet count; undefined when it cannot be read. */
  async packets(name: string): Promise<number | undefined> {
    const output = await this.exec(['get', name]);
    return output.code === 0 ? parsePackets(output.stdout, name) : undefined;
  }

  private exec(args: readonly string[]): ReturnType<ProcessRunner> {
    const [command = this.binary, ...rest] = [...this.prefix, this.binary, ...args];
    return this.run(command, rest);
  }
}

/** `{ pkts = 00000000000000000042, bytes = 00000000000000004711 } = name;` -> 42. */
export function parsePackets(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^\{\s*pkts\s*=\s*(\d+),\s*bytes\s*=\s*\d+\s*\}\s*=\s*(\S+);$/.exec(line.trim());
    if (match?.[2] === name) return Number(match[1]);
  }
  return undefined;
}
