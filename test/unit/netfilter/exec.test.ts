import { describe, expect, it } from 'vitest';
import { ExecNetfilter, ipv6Binaries, legacyBinaries, nftBinaries, parseRestoreFailure } from '../../../src/netfilter/exec.js';
import { runProcess, type ProcessOutput, type ProcessRunner } from '../../../src/process.js';

interface Call {
  readonly command: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
}

function fakeRunner(reply: (call: Call) => ProcessOutput): { run: ProcessRunner; calls: Call[] } {
  const calls: Call[] = [];
  const run: ProcessRunner = (command, args, input) => {
    const call = { command, args, input: typeof input === 'string' || input === undefined ? input : [...input].join('') };
    calls.push(call);
    return Promise.resolve(reply(call));
  };
  return { run, calls };
}

const ok: ProcessOutput = { code: 0, stdout: '', stderr: '' };

describe('ExecNetfilter', () => {
  it('runs iptables-restore --noflush --wait with the payload on stdin, inside the prefix', async () => {
    const { run, calls } = fakeRunner(() => ok);
    const netfilter = new ExecNetfilter({ binaries: legacyBinaries, prefix: ['ip', 'netns', 'exec', 'n1'], run });
    expect(await netfilter.restore('*nat\nCOMMIT\n', { noFlush: true })).toEqual({ ok: true });
    expect(calls).toEqual([{ command: 'ip', args: ['netns', 'exec', 'n1', 'iptables-legacy-restore', '--noflush', '--wait=5'], input: '*nat\nCOMMIT\n' }]);
  });

  it('defaults to the nft binaries and can restore without --noflush', async () => {
    const { run, calls } = fakeRunner(() => ok);
    await new ExecNetfilter({ run, waitSeconds: 2 }).restore('', { noFlush: false });
    expect(calls[0]).toMatchObject({ command: 'iptables-nft-restore', args: ['--wait=2'] });
  });

  it('returns a failed restore as a value with the payload line', async () => {
    const stderr = 'iptables-restore: line 3 failed\n';
    const { run } = fakeRunner(() => ({ code: 1, stdout: '', stderr }));
    expect(await new ExecNetfilter({ run }).restore('*nat\n:A - [0:0]\n-D A -j RETURN\nCOMMIT\n', { noFlush: true })).toEqual({
      ok: false,
      message: 'iptables-restore: line 3 failed',
      line: 3,
    });
  });

  it('says which binary failed when stderr is empty', async () => {
    const { run } = fakeRunner(() => ({ code: 4, stdout: '', stderr: '' }));
    expect(await new ExecNetfilter({ run }).restore('x', { noFlush: true })).toEqual({
      ok: false,
      message: 'iptables-nft-restore exited with code 4',
      line: undefined,
    });
  });

  it('saves one table', async () => {
    const { run, calls } = fakeRunner(() => ({ code: 0, stdout: '*nat\nCOMMIT\n', stderr: '' }));
    expect(await new ExecNetfilter({ run }).save('nat')).toEqual({ ok: true, text: '*nat\nCOMMIT\n' });
    expect(calls[0]).toMatchObject({ command: 'iptables-nft-save', args: ['-t', 'nat'], input: undefined });
    const failing = fakeRunner(() => ({ code: 1, stdout: '', stderr: "iptables-save: can't initialize\n" }));
    expect(await new ExecNetfilter({ run: failing.run }).save('nat')).toEqual({ ok: false, message: "iptables-save: can't initialize" });
  });

  it('checks a chain: exists, missing (both backends word it differently), or unknown', async () => {
    const answer = (output: ProcessOutput): Promise<boolean | undefined> =>
      new ExecNetfilter({ run: fakeRunner(() => output).run }).chainExists('nat', 'KUBE-PROXY-CANARY');
    expect(await answer({ code: 0, stdout: '-N KUBE-PROXY-CANARY\n', stderr: '' })).toBe(true);
    expect(await answer({ code: 1, stdout: '', stderr: 'iptables: No chain/target/match by that name.\n' })).toBe(false);
    expect(await answer({ code: 1, stdout: '', stderr: "iptables v1.8.9 (nf_tables): chain `KUBE-PROXY-CANARY' in table `nat' is incompatible, use 'nft' tool.\n" })).toBe(false);
    expect(await answer({ code: 4, stdout: '', stderr: 'Another app is currently holding the xtables lock.\n' })).toBeUndefined();
    expect(await answer({ code: 127, stdout: '', stderr: 'spawn iptables-nft ENOENT' })).toBeUndefined();
  });
});

describe('ipv6Binaries', () => {
  it('names the same variant\'s ip6tables binaries', () => {
    expect(ipv6Binaries(nftBinaries)).toEqual({ restore: 'ip6tables-nft-restore', save: 'ip6tables-nft-save', iptables: 'ip6tables-nft' });
    expect(ipv6Binaries(legacyBinaries)).toEqual({ restore: 'ip6tables-legacy-restore', save: 'ip6tables-legacy-save', iptables: 'ip6tables-legacy' });
    expect(ipv6Binaries({ restore: 'iptables-restore', save: 'iptables-save', iptables: 'iptables' })).toEqual({ restore: 'ip6tables-restore', save: 'ip6tables-save', iptables: 'ip6tables' });
  });
});

describe('parseRestoreFailure', () => {
  const payload = ['*filter', 'COMMIT', '*nat', ':KUBE-SVC-A - [0:0]', '-A KUBE-SVC-A -j RETURN', '-A KUBE-SVC-A -j KUBE-SEP-MISSING', 'COMMIT', ''].join('\n');

  it('reads "line N failed" (both backends) and "Error occurred at line: N"', () => {
    expect(parseRestoreFailure('iptables-nft-restore: line 5 failed: No chain/target/match by that name.', payload).line).toBe(5);
    expect(parseRestoreFailure("Bad argument `foo'\nError occurred at line: 6\nTry `iptables-restore -h' for more information.", payload).line).toBe(6);
  });

  it('points an nft "Chain does not exist" at the rule that jumps, not at COMMIT', () => {
    const stderr = "iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-SEP-MISSING' does not exist\nError occurred at line: 7\nTry `iptables-nft-restore -h' or 'iptables-nft-restore --help' for more information.\n";
    expect(parseRestoreFailure(stderr, payload)).toEqual({ message: stderr.trim(), line: 6 });
  });

  it('keeps the reported line when no rule of that table jumps to the chain', () => {
    const stderr = "iptables-nft-restore v1.8.9 (nf_tables): Chain 'KUBE-OTHER' does not exist\nError occurred at line: 7";
    expect(parseRestoreFailure(stderr, payload).line).toBe(7);
  });

  it('has no line when the tool names none', () => {
    expect(parseRestoreFailure('iptables-restore: unable to initialize table', payload)).toEqual({
      message: 'iptables-restore: unable to initialize table',
      line: undefined,
    });
  });
});

describe('runProcess', () => {
  it('feeds stdin and collects stdout', async () => {
    expect(await runProcess('cat', [], 'a\nb\n')).toEqual({ code: 0, stdout: 'a\nb\n', stderr: '' });
  });

  it('resolves with code 127 when the binary does not exist', async () => {
    const output = await runProcess('/nonexistent/iptables-restore', [], 'x');
    expect(output.code).toBe(127);
    expect(output.stderr).toContain('ENOENT');
  });

  it('survives a process that exits without reading a large stdin', async () => {
    const output = await runProcess('sh', ['-c', 'echo nope >&2; exit 2'], 'x'.repeat(8 * 1024 * 1024));
    expect(output).toEqual({ code: 2, stdout: '', stderr: 'nope\n' });
  });
});
