import { describe, expect, it } from 'vitest';
import type { ProcessOutput, ProcessRunner } from '../../../src/process.js';
import { NfAcct, parsePackets } from '../../../src/netfilter/nfacct.js';

const line = (packets: number, name: string): string => `{ pkts = ${String(packets).padStart(20, '0')}, bytes = 00000000000000004711 } = ${name};\n`;

/** A stand-in `nfacct` keeping counters in a map; `missing` behaves as an absent tool. */
function fakeNfacct(counters: Map<string, number>, missing = false): { run: ProcessRunner; calls: string[][] } {
  const calls: string[][] = [];
  const run: ProcessRunner = async (command, args) => {
    calls.push([command, ...args]);
    const out = (code: number, stdout = '', stderr = ''): ProcessOutput => ({ code, stdout, stderr });
    if (missing) return out(127, '', 'spawn nfacct ENOENT');
    const [verb, name = ''] = args.slice(args.indexOf('nfacct') + 1);
    if (verb === 'get') return counters.has(name) ? out(0, line(counters.get(name) ?? 0, name)) : out(1, '', 'nfacct v1.0.2: error: No such file or directory');
    if (verb === 'add') {
      if (counters.has(name)) return out(1, '', 'nfacct v1.0.2: error: Device or resource busy');
      counters.set(name, 0);
      return out(0);
    }
    return out(1, '', 'unknown');
  };
  return { run, calls };
}

describe('NfAcct', () => {
  it('creates a missing counter, keeps an existing one, and reads its packets', async () => {
    const counters = new Map<string, number>();
    const { run, calls } = fakeNfacct(counters);
    const nfacct = new NfAcct(run, ['ip', 'netns', 'exec', 'node1']);
    expect(await nfacct.ensure('ct_state_invalid_dropped_pkts')).toBe(true);
    expect(calls.map((call) => call.slice(4).join(' '))).toEqual(['nfacct add ct_state_invalid_dropped_pkts', 'nfacct get ct_state_invalid_dropped_pkts']);
    expect(calls[0]?.slice(0, 4)).toEqual(['ip', 'netns', 'exec', 'node1']);
    counters.set('ct_state_invalid_dropped_pkts', 42);
    // Ensuring it again keeps its count (a restarted agent must not reset the kernel's counter).
    expect(await nfacct.ensure('ct_state_invalid_dropped_pkts')).toBe(true);
    expect(await nfacct.packets('ct_state_invalid_dropped_pkts')).toBe(42);
  });

  it('says no when the tool (or the kernel support) is missing', async () => {
    const nfacct = new NfAcct(fakeNfacct(new Map(), true).run);
    expect(await nfacct.ensure('ct_state_invalid_dropped_pkts')).toBe(false);
    expect(await nfacct.packets('ct_state_invalid_dropped_pkts')).toBeUndefined();
  });

  it("parses nfacct's line for the named counter only", () => {
    expect(parsePackets(line(7, 'a') + line(9, 'b'), 'b')).toBe(9);
    expect(parsePackets(line(7, 'a'), 'b')).toBeUndefined();
    expect(parsePackets('garbage', 'a')).toBeUndefined();
  });
});
