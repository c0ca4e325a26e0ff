import { describe, expect, it } from 'vitest';

import { parseRestorePayload } from '../../../src/netfilter/restore-parser.js';
import { joinTokens, ruleTarget, tokenize } from '../../../src/netfilter/vocabulary.js';

describe('tokenize', () => {
  it('groups double-quoted words and keeps escapes inside quotes', () => {
    const result = tokenize('-m comment --comment "ns/svc:p cluster IP"  -j  KUBE-SVC-X --x "a \\"b\\""');
    expect(result).toEqual({
      ok: true,
      tokens: ['-m', 'comment', '--comment', 'ns/svc:p cluster IP', '-j', 'KUBE-SVC-X', '--x', 'a "b"'],
    });
  });

  it('fails on an unterminated quote', () => {
    expect(tokenize('--comment "open')).toEqual({ ok: false, message: 'unterminated quoted string' });
  });

  it('re-joins tokens with minimal quoting, as iptables-save prints them', () => {
    const tokens = ['-m', 'comment', '--comment', 'ns1/svc1:p80 cluster IP', '-d', '10.0.0.1', '--x', ''];
    const text = joinTokens(tokens);
    expect(text).toBe('-m comment --comment "ns1/svc1:p80 cluster IP" -d 10.0.0.1 --x ""');
    expect(tokenize(text)).toEqual({ ok: true, tokens });
  });
});

describe('ruleTarget', () => {
  it('finds -j and -g, skipping comment values', () => {
    expect(ruleTarget(['-m', 'comment', '--comment', '-j', '-j', 'KUBE-A'])).toEqual({ name: 'KUBE-A', goto: false });
    expect(ruleTarget(['-s', '10.0.0.1', '-g', 'KUBE-B'])).toEqual({ name: 'KUBE-B', goto: true });
    expect(ruleTarget(['-m', 'comment', '--comment', 'counts only'])).toBeUndefined();
  });
});

describe('parseRestorePayload', () => {
  it('parses tables, declarations and every command form', () => {
    const payload = [
      '# a comment',
      '*nat',
      ':PREROUTING ACCEPT [12:345]',
      ':KUBE-SERVICES - [0:0]',
      '-A KUBE-SERVICES -m comment --comment "x y" -j ACCEPT',
      '-I KUBE-SERVICES 2 -j RETURN',
      '-I KUBE-SERVICES -j DROP',
      '-D KUBE-SERVICES -j DROP',
      '-D KUBE-SERVICES 1',
      '-N KUBE-NEW',
      '-X KUBE-NEW',
      '-F',
      '-X',
      'COMMIT',
      '',
      '*filter',
      'COMMIT',
    ].join('\n');
    const result = parseRestorePayload(payload);
    expect(result).toEqual({
      ok: true,
      tables: [
        {
          table: 'nat',
          line: 2,
          commands: [
            { kind: 'declare', line: 3, chain: 'PREROUTING', policy: 'ACCEPT' },
            { kind: 'declare', line: 4, chain: 'KUBE-SERVICES', policy: '-' },
            { kind: 'append', line: 5, chain: 'KUBE-SERVICES', args: ['-m', 'comment', '--comment', 'x y', '-j', 'ACCEPT'] },
            { kind: 'insert', line: 6, chain: 'KUBE-SERVICES', position: 2, args: ['-j', 'RETURN'] },
            { kind: 'insert', line: 7, chain: 'KUBE-SERVICES', position: 1, args: ['-j', 'DROP'] },
            { kind: 'delete', line: 8, chain: 'KUBE-SERVICES', args: ['-j', 'DROP'] },
            { kind: 'deleteAt', line: 9, chain: 'KUBE-SERVICES', position: 1 },
            { kind: 'newChain', line: 10, chain: 'KUBE-NEW' },
            { kind: 'deleteChain', line: 11, chain: 'KUBE-NEW' },
            { kind: 'flush', line: 12, chain: undefined },
            { kind: 'deleteChain', line: 13, chain: undefined },
          ],
        },
        { table: 'filter', line: 16, commands: [] },
      ],
    });
  });

  it.each([
    ['a rule outside of a table', '-A FOO -j ACCEPT', 1, /outside of a table/],
    ['a missing COMMIT', '*nat\n:FOO - [0:0]\n', 3, /has no COMMIT/],
    ['a new table before COMMIT', '*nat\n*filter\nCOMMIT', 2, /has no COMMIT/],
    ['COMMIT outside a table', 'COMMIT', 1, /COMMIT outside/],
    ['an unknown command', '*nat\n-Z FOO\nCOMMIT', 2, /unknown command '-Z'/],
    ['an unterminated quote', '*nat\n:FOO - [0:0]\n-A FOO --comment "x\nCOMMIT', 3, /unterminated/],
    ['a malformed declaration', '*nat\n:FOO\nCOMMIT', 2, /without a policy/],
    ['-t inside a payload', '*nat\n-A FOO -t nat -j ACCEPT\nCOMMIT', 2, /-t option/],
    ['rule number 0', '*nat\n-I FOO 0 -j ACCEPT\nCOMMIT', 2, /invalid rule number/],
  ])('fails with the line number on %s', (_, payload, line, message) => {
    const result = parseRestorePayload(payload);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.line).toBe(line);
    expect(result.message).toMatch(message);
  });
});
