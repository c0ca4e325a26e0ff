import { describe, expect, it } from 'vitest';

import { runProcess } from '../../../src/process.js';

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

  it('pulls pieces from an iterable only as the pipe takes them', async () => {
    let pulled = 0;
    function* pieces(): Generator<string> {
      for (let index = 0; index < 64; index++) {
        pulled++;
        yield `${'-A KUBE-SVC-X -j KUBE-SEP-Y\n'.repeat(10_000)}`;
      }
    }
    // `head` takes 1 kB and exits: the writer stops pulling once the pipe is gone.
    const output = await runProcess('head', ['-c', '1000'], pieces());
    expect(output.stdout.length).toBe(1000);
    expect(pulled).toBeLessThan(64);
    const whole = await runProcess('wc', ['-c'], pieces());
    expect(Number(whole.stdout.trim())).toBe(64 * 10_000 * 28);
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
