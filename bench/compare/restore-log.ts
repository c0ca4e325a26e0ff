// Reads what the iptables-restore and nft wrappers recorded (node-netns.ts): one line per call in
// calls.log, the call's input in `<id>.in`. Input files are measured once and deleted, so a long
// run does not fill the disk; the caller asks each new call whether it holds a marker text.

import { closeSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface RestoreCall {
  readonly id: string;
  /** Unix ms. */
  readonly startMs: number;
  readonly endMs: number;
  readonly exitCode: number;
  /** The name the proxy ran, e.g. `iptables-restore`, `ip6tables-restore`, `iptables-nft-restore`, `nft`. */
  readonly binary: string;
  /** ip6tables, or an nft transaction on the `ip6` table. */
  readonly ipv6: boolean;
  readonly bytes: number;
  readonly lines: number;
  /** Whether the input held the marker the reader was asked about when the call was read. */
  readonly matched: boolean;
}

export function isIPv4Call(call: RestoreCall): boolean {
  return !call.ipv6;
}

const IP6_TABLE = Buffer.from(' ip6 kube-proxy');

export class RestoreLog {
  private offset = 0;
  private pending = '';
  readonly calls: RestoreCall[] = [];

  constructor(private readonly captureDir: string) {}

  /**
   * Reads calls logged since the last poll. Each new input is searched for `marker` (if given),
   * measured and deleted.
   */
  poll(marker?: string): RestoreCall[] {
    const path = join(this.captureDir, 'calls.log');
    const size = statSync(path).size;
    if (size <= this.offset) return [];
    const buffer = Buffer.alloc(size - this.offset);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buffer, 0, buffer.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const text = this.pending + buffer.toString('utf8');
    const lines = text.split('\n');
    this.pending = lines.pop() ?? '';
    const fresh: RestoreCall[] = [];
    for (const line of lines) {
      const [id, start, end, code, binary] = line.trim().split(' ');
      if (id === undefined || start === undefined || end === undefined || code === undefined || binary === undefined) continue;
      const inputPath = join(this.captureDir, `${id}.in`);
      let input: Buffer;
      try {
        input = readFileSync(inputPath);
      } catch {
        input = Buffer.alloc(0);
      }
      rmSync(inputPath, { force: true });
      const call: RestoreCall = {
        id,
        startMs: Number(start) * 1000,
        endMs: Number(end) * 1000,
        exitCode: Number(code),
        binary,
        ipv6: binary === 'nft' ? input.includes(IP6_TABLE) : binary.startsWith('ip6tables'),
        bytes: input.length,
        lines: countLines(input),
        matched: marker !== undefined && input.includes(marker),
      };
      this.calls.push(call);
      fresh.push(call);
    }
    return fresh;
  }
}

function countLines(buffer: Buffer): number {
  let count = 0;
  let index = buffer.indexOf(10);
  while (index !== -1) {
    count++;
    index = buffer.indexOf(10, index + 1);
  }
  return count;
}
