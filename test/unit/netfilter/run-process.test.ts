import { describe, expect, it } from 'vitest';

import { runProcess } from '../../../src/netfilter/exec.js';

describe('runProcess stdin', () => {
  it('delivers a multi-MB input whole and in order, written in slices', async () => {
    const lines = Array.from({ length: 120_000 }, (_, index) => `-A KUBE-SEP-${index} -m comment --comment "ns/svc-${index}:http" -j DNAT`);
    const input = `${lines.join('\n')}\n`;
    expect(input.length).toBeGreaterThan(5 * 2 ** 20);
    const output = await runProcess('cat', [], input);
    expect(output.code).toBe(0);
    expect(output.stdout.length).toBe(input.length);
    expect(output.stdout === input).toBe(true);
  });

  it('delivers pieces in order as one input', async () => {
    const pieces = ['*nat\n', `${'-A X -j ACCEPT\n'.repeat(200_000)}`, '', 'COMMIT\n'];
    const output = await runProcess('cat', [], pieces);
    expect(output.stdout === pieces.join('')).toBe(true);
  });

  it('delivers small and empty inputs', async () => {
    expect((await runProcess('cat', [], 'one line\n')).stdout).toBe('one line\n');
    expect(await runProcess('cat', [], '')).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('resolves when the reader exits before taking everything', async () => {
    const input = 'x'.repeat(8 * 2 ** 20);
    const output = await runProcess('head', ['-c', '10'], input);
    expect(output).toEqual({ code: 0, stdout: 'xxxxxxxxxx', stderr: '' });
  });
});
