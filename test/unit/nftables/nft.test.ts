// The nft door never throws and says why it refuses: the version check (upstream's knftables needs
// 1.0.1), a dry run of the features, unexpected output, a missing binary; and the listing parser.

import { describe, expect, it } from 'vitest';
import { Nft, namesInTable, parseNftVersion } from '../../../src/nftables/nft.js';
import { nftFamily } from '../../../src/nftables/vocabulary.js';
import type { ProcessOutput, ProcessRunner } from '../../../src/process.js';

/** A runner that answers `nft --version` and `nft --check -f -` as told. */
function runner(version: ProcessOutput, check: ProcessOutput = { code: 0, stdout: '', stderr: '' }): { run: ProcessRunner; calls: string[][] } {
  const calls: string[][] = [];
  const run: ProcessRunner = async (command, args) => {
    calls.push([command, ...args]);
    return args.includes('--version') ? version : check;
  };
  return { run, calls };
}

const ipv4 = nftFamily('IPv4');

describe('Nft.support', () => {
  it('accepts 1.0.6 once the dry run of every feature passes', async () => {
    const { run, calls } = runner({ code: 0, stdout: 'nftables v1.0.6 (Lester Gooch #5)\n', stderr: '' });
    expect(await new Nft({ run }).support(ipv4)).toEqual({ ok: true, version: '1.0.6' });
    expect(calls[1]).toEqual(['nft', '--check', '-f', '-']);
  });

  it('refuses nft older than 1.0.1, naming both versions', async () => {
    const { run } = runner({ code: 0, stdout: 'nftables v0.9.8 (E.D.S.)\n', stderr: '' });
    const support = await new Nft({ run }).support(ipv4);
    expect(support).toMatchObject({ ok: false, version: '0.9.8' });
    expect(!support.ok && support.reason).toContain('1.0.1 or later');
  });

  it('refuses when the dry run fails, quoting nft', async () => {
    const { run } = runner({ code: 0, stdout: 'nftables v1.0.2\n', stderr: '' }, { code: 1, stdout: '', stderr: 'Error: syntax error, unexpected numgen\n' });
    const support = await new Nft({ run }).support(ipv4);
    expect(!support.ok && support.reason).toContain('unexpected numgen');
  });

  it('refuses output it cannot read and a binary that does not start, without throwing', async () => {
    for (const stdout of ['', 'something else entirely', '\u0000\u0001']) {
      const support = await new Nft({ run: runner({ code: 0, stdout, stderr: '' }).run }).support(ipv4);
      expect(support.ok).toBe(false);
    }
    const missing = await new Nft({ binary: 'nft-does-not-exist' }).support(ipv4);
    expect(missing).toMatchObject({ ok: false, version: undefined });
  });
});

describe('parsing nft output', () => {
  it('reads versions with and without a patch level', () => {
    expect(parseNftVersion('nftables v1.1.1 (Commodore Bullmoose #2)')).toEqual([1, 1, 1]);
    expect(parseNftVersion('nftables v1.0')).toEqual([1, 0, 0]);
    expect(parseNftVersion('v')).toBeUndefined();
  });

  it('names the chains of our table only, in a listing of several tables', () => {
    const listing = ['table ip filter {', '\tchain INPUT {', '\t}', '}', 'table ip kube-proxy {', '\tchain services {', '\t}', '\tchain service-ABCDEFGH-ns/a/tcp/p {', '\t}', '}', 'table ip6 kube-proxy {', '\tchain other {', '\t}', '}'].join('\n');
    expect([...namesInTable(listing, 'chain', ipv4)]).toEqual(['services', 'service-ABCDEFGH-ns/a/tcp/p']);
  });

  it('reports the failing line of a transaction', async () => {
    const run: ProcessRunner = async () => ({ code: 1, stdout: '', stderr: '/dev/stdin:2:1-3: Error: Could not process rule: No such file or directory\nadd x\n^^^\n' });
    expect(await new Nft({ run }).apply(['a', 'b'])).toMatchObject({ ok: false, line: 2 });
  });
});

describe('Nft.listTable', () => {
  it('gives up on a listing that outlasts its timeout (a drift read restarting its dump forever) and says so', async () => {
    // `sh -c 'exec sleep 30' -- nft -t list table ...`: an nft that never answers.
    const nft = new Nft({ prefix: ['sh', '-c', 'exec sleep 30', '--'], listTimeoutMs: 200 });
    const listing = await nft.listTable(nftFamily('IPv4'));
    expect(listing).toEqual({ kind: 'unread', message: 'killed after 200 ms' });
  });
});

