// `kube-proxy-ts run --init-only` (kube-proxy's flag): what the DaemonSet's privileged init
// container does before the unprivileged agent starts.

import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { initOnly } from '../../../src/cli/run-command.js';
import { parseRunArgs, type AgentConfig } from '../../../src/config/index.js';
import { ROUTE_LOCALNET, type SysctlAccess } from '../../../src/netfilter/sysctl.js';

function config(argv: string[]): AgentConfig {
  const result = parseRunArgs(['--hostname-override', 'node1', ...argv], {}, () => '', 'host');
  if (result.kind !== 'ok') throw new Error(JSON.stringify(result));
  return result.config;
}

function capture(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines: () => chunks.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>) };
}

function sysctl(value: number, writable: boolean): SysctlAccess & { writes: number[] } {
  const writes: number[] = [];
  return {
    writes,
    get: async () => value,
    set: async (name, next) => {
      if (!writable) throw new Error(`EROFS: read-only file system, open '/proc/sys/${name}'`);
      expect(name).toBe(ROUTE_LOCALNET);
      writes.push(next);
    },
  };
}

describe('run --init-only', () => {
  it('sets route_localnet=1 and exits 0', async () => {
    const { logger, lines } = capture();
    const proc = sysctl(0, true);
    expect(await initOnly(config([]), proc, logger)).toBe(0);
    expect(proc.writes).toEqual([1]);
    expect(lines().map((line) => line['msg'])).toEqual([expect.stringContaining('set net.ipv4.conf.all.route_localnet=1'), expect.stringContaining('--init-only')]);
  });

  it('exits 1 naming the cause when the container may not write /proc/sys', async () => {
    const { logger, lines } = capture();
    expect(await initOnly(config([]), sysctl(0, false), logger)).toBe(1);
    const [line] = lines();
    expect(line).toMatchObject({ level: 50, component: 'init-only', error: expect.stringContaining('EROFS') });
    expect(line?.['msg']).toContain('privileged');
  });

  it('does nothing, successfully, when localhost NodePorts are off', async () => {
    const { logger, lines } = capture();
    const proc = sysctl(0, false);
    expect(await initOnly(config(['--iptables-localhost-nodeports=false']), proc, logger)).toBe(0);
    expect(proc.writes).toEqual([]);
    expect(lines()[0]?.['msg']).toContain('iptables.localhostNodePorts is false');
  });
});
