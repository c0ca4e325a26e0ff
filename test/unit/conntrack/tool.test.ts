import { describe, expect, it } from 'vitest';
import { Conntrack } from '../../../src/conntrack/tool.js';
import type { ProcessOutput, ProcessRunner } from '../../../src/process.js';

const deletion = { kind: 'service-ip', serviceIP: '10.96.0.10', port: 53 } as const;

function answering(output: ProcessOutput): { conntrack: Conntrack; calls: string[][] } {
  const calls: string[][] = [];
  const run: ProcessRunner = async (command, args) => {
    calls.push([command, ...args]);
    return output;
  };
  return { conntrack: new Conntrack(run, ['ip', 'netns', 'exec', 'n1']), calls };
}

describe('Conntrack.delete', () => {
  it('runs one process per filter and reads how many entries went', async () => {
    const { conntrack, calls } = answering({ code: 0, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 12 flow entries have been deleted.\n' });
    expect(await conntrack.delete(deletion)).toEqual({ ok: true, entriesDeleted: 12 });
    expect(calls).toEqual([['ip', 'netns', 'exec', 'n1', 'conntrack', '-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dport', '53']]);
  });

  it('takes "0 flow entries" (exit 1) as success', async () => {
    const { conntrack } = answering({ code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n' });
    expect(await conntrack.delete(deletion)).toEqual({ ok: true, entriesDeleted: 0 });
  });

  it('tells a missing binary from other failures', async () => {
    expect(await answering({ code: 127, stdout: '', stderr: 'spawn conntrack ENOENT' }).conntrack.delete(deletion)).toMatchObject({ ok: false, reason: 'binary-missing' });
    expect(await answering({ code: 1, stdout: '', stderr: 'exec of "conntrack" failed: No such file or directory' }).conntrack.delete(deletion)).toMatchObject({ ok: false, reason: 'binary-missing' });
    expect(await answering({ code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted' }).conntrack.delete(deletion)).toMatchObject({
      ok: false,
      reason: 'failed',
      message: 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted',
    });
  });
});
