// Settings -> NftContext: upstream's nftables-mode defaults and its local-traffic matches.

import { describe, expect, it } from 'vitest';
import { nftContextFor, type NftSettings } from '../../../src/nftables/context.js';

const node = { name: 'node1', ips: ['10.252.0.2'], zone: undefined, labels: {}, podCIDRs: ['10.244.1.0/24'] };
const defaults: NftSettings = {
  nodeIPs: [],
  masqueradeBit: 14,
  masqueradeAll: false,
  detectLocal: { mode: 'ClusterCIDR' },
  clusterCIDRs: ['10.244.0.0/16'],
  nodePortAddresses: { kind: 'all' },
};

describe('nftContextFor', () => {
  it('defaults NodePorts to the primary node IP, as upstream does in nftables mode; /0 opens every address', () => {
    expect(nftContextFor(defaults, node, 'IPv4').nodePortIPs).toEqual(['10.252.0.2']);
    expect(nftContextFor({ ...defaults, nodePortAddresses: { kind: 'cidrs', cidrs: ['0.0.0.0/0'] } }, node, 'IPv4').nodePortIPs).toBe('all');
    expect(nftContextFor({ ...defaults, nodePortAddresses: { kind: 'cidrs', cidrs: ['192.168.0.0/16'] } }, node, 'IPv4').nodePortIPs).toEqual([]);
  });

  it('formats the mark as kube-proxy does and speaks nft for each local-traffic detector', () => {
    expect(nftContextFor(defaults, node, 'IPv4')).toMatchObject({
      masqueradeMark: '0x00004000',
      localTraffic: { ifLocal: 'ip saddr 10.244.0.0/16', ifNotLocal: 'ip saddr != 10.244.0.0/16' },
    });
    expect(nftContextFor({ ...defaults, detectLocal: { mode: 'NodeCIDR' } }, node, 'IPv4').localTraffic?.ifNotLocal).toBe('ip saddr != 10.244.1.0/24');
    expect(nftContextFor({ ...defaults, detectLocal: { mode: 'InterfaceNamePrefix', interfaceNamePrefix: 'veth' } }, node, 'IPv4').localTraffic).toEqual({
      ifLocal: 'iifname veth*',
      ifNotLocal: 'iifname != veth*',
    });
    expect(nftContextFor({ ...defaults, clusterCIDRs: [] }, node, 'IPv4').localTraffic).toBeUndefined();
  });
});
