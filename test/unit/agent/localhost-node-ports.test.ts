// NodePorts on 127.0.0.1: which configurations want them, and what happens to the sysctl they need
// (upstream's NewProxier: off unless nodePortAddresses covers the loopback, then EnsureSysctl of
// route_localnet; where kube-proxy would exit on failure, the agent runs on with them off).

import { describe, expect, it } from 'vitest';
import { localhostNodePortsWanted, prepareLocalhostNodePorts } from '../../../src/agent/localhost-node-ports.js';
import { parseRunArgs, type AgentConfig } from '../../../src/config/index.js';
import { ROUTE_LOCALNET, type SysctlAccess } from '../../../src/netfilter/sysctl.js';

function config(argv: string[]): AgentConfig {
  const result = parseRunArgs(['--hostname-override', 'node1', ...argv], {}, () => '', 'host');
  if (result.kind !== 'ok') throw new Error(JSON.stringify(result));
  return result.config;
}

/** A /proc/sys with one setting; `writable` false behaves like an unprivileged container's. */
function fakeSysctl(value: number | undefined, writable = true): SysctlAccess & { writes: Array<[string, number]>; value: number | undefined } {
  const fake = {
    value,
    writes: [] as Array<[string, number]>,
    async get(name: string): Promise<number> {
      if (name !== ROUTE_LOCALNET || fake.value === undefined) throw new Error(`ENOENT: /proc/sys/${name}`);
      return fake.value;
    },
    async set(name: string, next: number): Promise<void> {
      if (!writable) throw new Error(`EROFS: read-only file system, open '/proc/sys/${name}'`);
      fake.writes.push([name, next]);
      fake.value = next;
    },
  };
  return fake;
}

describe('localhostNodePortsWanted', () => {
  it('wants them by default; not when switched off or when nodePortAddresses leaves out the loopback', () => {
    expect(localhostNodePortsWanted(config([]))).toBeUndefined();
    expect(localhostNodePortsWanted(config(['--iptables-localhost-nodeports=false']))).toBe('config');
    expect(localhostNodePortsWanted(config(['--nodeport-addresses', 'primary']))).toBe('nodePortAddresses');
    expect(localhostNodePortsWanted(config(['--nodeport-addresses', '10.0.0.0/8']))).toBe('nodePortAddresses');
    expect(localhostNodePortsWanted(config(['--nodeport-addresses', '10.0.0.0/8,127.0.0.0/8']))).toBeUndefined();
    expect(localhostNodePortsWanted(config(['--nodeport-addresses', '127.0.0.2/32']))).toBeUndefined();
  });
});

describe('prepareLocalhostNodePorts', () => {
  it('sets route_localnet=1 when it is 0, and says so', async () => {
    const sysctl = fakeSysctl(0);
    const result = await prepareLocalhostNodePorts(config([]), sysctl);
    expect(result).toMatchObject({ enabled: true, off: undefined, level: 'info', fields: { sysctl: 'net.ipv4.conf.all.route_localnet', before: 0, after: 1 } });
    expect(result.message).toContain('set net.ipv4.conf.all.route_localnet=1');
    expect(sysctl.writes).toEqual([[ROUTE_LOCALNET, 1]]);
  });

  it('leaves it alone when it is 1 already: a read-only /proc/sys (the unprivileged agent after the init container) is fine', async () => {
    const sysctl = fakeSysctl(1, false);
    const result = await prepareLocalhostNodePorts(config([]), sysctl);
    expect(result).toMatchObject({ enabled: true, off: undefined, level: 'info' });
    expect(result.message).toContain('route_localnet is 1');
    expect(sysctl.writes).toEqual([]);
  });

  it('turns them off, loudly, when route_localnet is 0 and cannot be set (kube-proxy would exit)', async () => {
    const sysctl = fakeSysctl(0, false);
    const result = await prepareLocalhostNodePorts(config([]), sysctl);
    expect(result).toMatchObject({ enabled: false, off: 'route_localnet', level: 'error', fields: { before: 0 } });
    expect(result.message).toContain('cannot be set to 1 (EROFS');
    expect(result.message).toContain('--init-only');
    expect(result.message).toContain('iptables.localhostNodePorts: false');
  });

  it('tries to set a setting it cannot read, as upstream EnsureSysctl', async () => {
    const sysctl = fakeSysctl(undefined);
    expect(await prepareLocalhostNodePorts(config([]), sysctl)).toMatchObject({ enabled: true, fields: { before: null, after: 1 } });
    expect(sysctl.writes).toEqual([[ROUTE_LOCALNET, 1]]);
  });

  it('never touches the sysctl when they are not wanted, and says why they are off', async () => {
    for (const [argv, off, why] of [
      [['--iptables-localhost-nodeports=false'], 'config', 'iptables.localhostNodePorts is false'],
      [['--nodeport-addresses', '192.168.0.0/16'], 'nodePortAddresses', 'nodePortAddresses does not include 127.0.0.1'],
    ] as const) {
      const sysctl = fakeSysctl(0);
      const result = await prepareLocalhostNodePorts(config([...argv]), sysctl);
      expect(result).toMatchObject({ enabled: false, off, level: 'info' });
      expect(result.message).toContain(why);
      expect(sysctl.writes).toEqual([]);
    }
  });

  it('without sysctl access the configuration alone decides', async () => {
    expect(await prepareLocalhostNodePorts(config([]), undefined)).toMatchObject({ enabled: true });
    expect(await prepareLocalhostNodePorts(config(['--iptables-localhost-nodeports=false']), undefined)).toMatchObject({ enabled: false, off: 'config' });
  });
});
