import { describe, expect, it } from 'vitest';
import { healthCheckAddresses, renderContextFor } from '../../../src/agent/context.js';
import { parseRunArgs, type AgentConfig } from '../../../src/config/index.js';
import type { NodeInfo } from '../../../src/model/types.js';

function config(argv: string[]): AgentConfig {
  const result = parseRunArgs(['--hostname-override', 'node1', ...argv], {}, () => '', 'host');
  if (result.kind !== 'ok') throw new Error(JSON.stringify(result));
  return result.config;
}

const node: NodeInfo = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };

describe('renderContextFor', () => {
  it('uses the node IPs from the Node object unless nodeIP overrides them', () => {
    expect(renderContextFor(config([]), node).nodeIPs).toEqual(['172.30.0.10']);
    expect(renderContextFor(config(['--node-ip', '192.0.2.7']), node).nodeIPs).toEqual(['192.0.2.7']);
  });

  it('localhost NodePorts: the setting (default on), unless the probe of the node turned them off; their nfacct counter', () => {
    expect(renderContextFor(config([]), node).localhostNodePorts).toBe(true);
    expect(renderContextFor(config(['--iptables-localhost-nodeports=false']), node).localhostNodePorts).toBe(false);
    // route_localnet could not be set: off, whatever the setting says.
    expect(renderContextFor(config([]), node, { localhostNodePorts: false }).localhostNodePorts).toBe(false);
    expect(renderContextFor(config([]), node, { localhostNodePorts: true }).localhostNodePortsCounter).toBeUndefined();
    expect(renderContextFor(config([]), node, { localhostNodePortsCounter: 'localhost_nps_accepted_pkts' }).localhostNodePortsCounter).toBe('localhost_nps_accepted_pkts');
  });

  it('maps nodePortAddresses: all -> [], primary -> node IP /32, CIDRs as given', () => {
    expect(renderContextFor(config([]), node).nodePortAddresses).toEqual([]);
    expect(renderContextFor(config(['--nodeport-addresses', 'primary']), node).nodePortAddresses).toEqual(['172.30.0.10/32']);
    expect(renderContextFor(config(['--nodeport-addresses', '172.30.0.0/24']), node).nodePortAddresses).toEqual(['172.30.0.0/24']);
  });

  it('detects pod traffic as detectLocalMode says, and masquerades all with masqueradeAll', () => {
    const local = (argv: string[], on: NodeInfo = node): unknown => renderContextFor(config(argv), on).localTraffic;
    expect(local(['--cluster-cidr', '10.244.0.0/16'])).toEqual({ ifLocal: '-s 10.244.0.0/16', ifNotLocal: '! -s 10.244.0.0/16' });
    expect(local([])).toBeUndefined();
    // NodeCIDR: the Node's podCIDR, not clusterCIDR; none until the Node has one.
    const withPodCIDR = { ...node, podCIDRs: ['10.244.3.0/24'] };
    expect(local(['--detect-local-mode', 'NodeCIDR', '--cluster-cidr', '10.244.0.0/16'], withPodCIDR)).toEqual({ ifLocal: '-s 10.244.3.0/24', ifNotLocal: '! -s 10.244.3.0/24' });
    expect(local(['--detect-local-mode', 'NodeCIDR', '--cluster-cidr', '10.244.0.0/16'])).toBeUndefined();
    expect(local(['--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0'])).toEqual({ ifLocal: '-i cbr0', ifNotLocal: '! -i cbr0' });
    expect(local(['--detect-local-mode', 'InterfaceNamePrefix', '--pod-interface-name-prefix', 'cali'])).toEqual({ ifLocal: '-i cali+', ifNotLocal: '! -i cali+' });
    expect(renderContextFor(config(['--masquerade-all']), node).masqueradeAll).toBe(true);
    expect(renderContextFor(config([]), node).masqueradeAll).toBe(false);
  });

  it('binds healthCheckNodePort servers to matching node IPs only when nodePortAddresses is set', () => {
    expect(healthCheckAddresses(config([]), node)).toEqual(['0.0.0.0']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', '172.30.0.0/24']), node)).toEqual(['172.30.0.10']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', 'primary']), node)).toEqual(['172.30.0.10']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', '172.30.0.0/24,127.0.0.0/8']), node)).toEqual(['172.30.0.10', '127.0.0.1']);
    // Before the Node is known (or when nothing matches): nowhere, not every address.
    expect(healthCheckAddresses(config(['--nodeport-addresses', '172.30.0.0/24']), { ...node, ips: [] })).toEqual([]);
    expect(healthCheckAddresses(config(['--nodeport-addresses', '10.0.0.0/8']), node)).toEqual([]);
  });

  it('binds the IPv6 family to every IPv6 address, or to its node IPs (and ::1) that nodePortAddresses matches', () => {
    const ipv6Node: NodeInfo = { ...node, ips: ['fd00:30::10'] };
    expect(healthCheckAddresses(config([]), ipv6Node, 'IPv6')).toEqual(['::']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', '172.30.0.0/24,fd00:30::/64']), ipv6Node, 'IPv6')).toEqual(['fd00:30::10']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', 'primary']), ipv6Node, 'IPv6')).toEqual(['fd00:30::10']);
    expect(healthCheckAddresses(config(['--nodeport-addresses', 'fd00:30::/64,::1/128']), ipv6Node, 'IPv6')).toEqual(['fd00:30::10', '::1']);
    // An IPv4-only list opens the IPv6 family's NodePorts on every IPv6 address (kube-proxy's
    // matchAll; render/static.ts familyCidrs), so its healthcheck servers listen there too.
    expect(healthCheckAddresses(config(['--nodeport-addresses', '172.30.0.0/24']), ipv6Node, 'IPv6')).toEqual(['::']);
    // And the other way round.
    expect(healthCheckAddresses(config(['--nodeport-addresses', 'fd00:30::/64']), node, 'IPv4')).toEqual(['0.0.0.0']);
  });
});
