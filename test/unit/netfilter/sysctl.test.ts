import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProcessRunner } from '../../../src/process.js';
import { ensureSysctl, ROUTE_LOCALNET, Sysctl, sysctlName } from '../../../src/netfilter/sysctl.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A stand-in for /proc/sys holding route_localnet. */
function procSys(value: string): string {
  const root = mkdtempSync(join(tmpdir(), 'kpt-sysctl-'));
  roots.push(root);
  mkdirSync(join(root, 'net/ipv4/conf/all'), { recursive: true });
  writeFileSync(join(root, ROUTE_LOCALNET), value);
  return root;
}

describe('Sysctl', () => {
  it('reads and writes the file under /proc/sys directly (no sysctl binary)', async () => {
    const root = procSys('0\n');
    const sysctl = new Sysctl(undefined, [], root);
    expect(await sysctl.get(ROUTE_LOCALNET)).toBe(0);
    await sysctl.set(ROUTE_LOCALNET, 1);
    expect(readFileSync(join(root, ROUTE_LOCALNET), 'utf8')).toBe('1\n');
    expect(await sysctl.get(ROUTE_LOCALNET)).toBe(1);
  });

  it('fails on a missing or non-numeric setting', async () => {
    const root = procSys('yes\n');
    await expect(new Sysctl(undefined, [], root).get(ROUTE_LOCALNET)).rejects.toThrow('not an integer');
    await expect(new Sysctl(undefined, [], root).get('net/nothing')).rejects.toThrow('ENOENT');
  });

  it('with a prefix, reads with cat and writes with tee inside it (a test namespace, never the host)', async () => {
    const calls: Array<{ command: string; args: readonly string[]; input: unknown }> = [];
    const run: ProcessRunner = async (command, args, input) => {
      calls.push({ command, args, input });
      return { code: 0, stdout: args.includes('cat') ? '1\n' : '', stderr: '' };
    };
    const sysctl = new Sysctl(run, ['ip', 'netns', 'exec', 'n1']);
    expect(await sysctl.get(ROUTE_LOCALNET)).toBe(1);
    await sysctl.set(ROUTE_LOCALNET, 1);
    expect(calls).toEqual([
      { command: 'ip', args: ['netns', 'exec', 'n1', 'cat', '/proc/sys/net/ipv4/conf/all/route_localnet'], input: undefined },
      { command: 'ip', args: ['netns', 'exec', 'n1', 'tee', '/proc/sys/net/ipv4/conf/all/route_localnet'], input: '1\n' },
    ]);
    const failing = new Sysctl(async () => ({ code: 1, stdout: '', stderr: 'tee: Read-only file system' }), ['ip', 'netns', 'exec', 'n1']);
    await expect(failing.set(ROUTE_LOCALNET, 1)).rejects.toThrow('Read-only file system');
  });

  it('names settings as people write them', () => {
    expect(sysctlName(ROUTE_LOCALNET)).toBe('net.ipv4.conf.all.route_localnet');
  });
});

describe('ensureSysctl (upstream EnsureSysctl)', () => {
  it('writes only when the value differs', async () => {
    const root = procSys('1\n');
    expect(await ensureSysctl(new Sysctl(undefined, [], root), ROUTE_LOCALNET, 1)).toEqual({ ok: true, changed: false, before: 1 });
    writeFileSync(join(root, ROUTE_LOCALNET), '0\n');
    expect(await ensureSysctl(new Sysctl(undefined, [], root), ROUTE_LOCALNET, 1)).toEqual({ ok: true, changed: true, before: 0 });
    expect(readFileSync(join(root, ROUTE_LOCALNET), 'utf8')).toBe('1\n');
  });

  it('reports a write the kernel refuses', async () => {
    const refusing = { get: async () => 0, set: async () => { throw new Error("EROFS: read-only file system, open '/proc/sys/x'"); } };
    expect(await ensureSysctl(refusing, ROUTE_LOCALNET, 1)).toEqual({ ok: false, before: 0, error: "EROFS: read-only file system, open '/proc/sys/x'" });
  });
});
