// The one process runner: output as a value, never a throw; a run given a timeout is killed and
// says so (the nftables drift listing relies on it: nft restarts its dump at every commit).

import { describe, expect, it } from 'vitest';
import { TIMED_OUT, runProcess } from '../../src/process.js';

describe('runProcess', () => {
  it('returns the output and exit code of a finished run', async () => {
    expect(await runProcess('sh', ['-c', 'cat; echo err >&2; exit 3'], 'in\n')).toEqual({ code: 3, stdout: 'in\n', stderr: 'err\n' });
  });

  it('kills a run that outlasts its timeout and resolves with TIMED_OUT and what it printed', async () => {
    const started = performance.now();
    const output = await runProcess('sh', ['-c', 'echo begun; exec sleep 30'], undefined, { timeoutMs: 200 });
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(output).toEqual({ code: TIMED_OUT, stdout: 'begun\n', stderr: 'killed after 200 ms' });
  });

  it('resolves with 127 when the program cannot start', async () => {
    expect((await runProcess('/nonexistent/program', [])).code).toBe(127);
  });
});
