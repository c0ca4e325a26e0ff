// Settings -> NftContext: upstream's nftables-mode defaults and its local-traffic matches.

import { describe, expect, it } from 'vitest';
import { ServiceCIDRIndex } from '../../../src/model/service-cidrs.js';
import { nftContextFor, type NftSettings } from '../../../src/nftables/context.js';
import { renderStatic } from '../../../src/nftables/render-static.js';
import { nftFamily } from '../../../src/nftables/vocabulary.js';

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
  it('with nodePortAddresses CIDRs, picks the addresses on the node\'s interfaces inside them (as upstream\'s GetNodeIPs), never a loopback one', () => {
    const cidrs = { ...defaults, nodePortAddresses: { kind: 'cidrs', cidrs: ['192.168.7.0/24', '127.0.0.0/8', 'fd00:7::/64'] } } as const;
    const interfaceAddresses = ['127.0.0.1', '::1', '10.252.0.2', '192.168.7.9', '192.168.7.3', '192.168.8.1', 'fd00:7::5', 'fe80::1'];
    expect(nftContextFor(cidrs, node, 'IPv4', { interfaceAddresses }).nodePortIPs).toEqual(['192.168.7.3', '192.168.7.9']);
    expect(nftContextFor(cidrs, node, 'IPv6', { interfaceAddresses }).nodePortIPs).toEqual(['fd00:7::5']);
    // The node IP is inside the CIDRs but not on an interface: not a NodePort address.
    expect(nftContextFor({ ...cidrs, nodePortAddresses: { kind: 'cidrs', cidrs: ['10.252.0.0/16'] } }, node, 'IPv4', { interfaceAddresses: ['192.168.7.9'] }).nodePortIPs).toEqual([]);
    // Unset (primary) stays the node IP, whatever the interfaces hold.
    expect(nftContextFor(defaults, node, 'IPv4', { interfaceAddresses }).nodePortIPs).toEqual(['10.252.0.2']);
  });

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

describe('ServiceCIDRs', () => {
  it('the drop rule names every ServiceCIDR of the family, as upstream unions the objects per proxier', () => {
    const index = new ServiceCIDRIndex();
    expect(index.upsert({ metadata: { name: 'kubernetes' }, spec: { cidrs: ['10.96.0.0/16', 'fd00:10:96::/112'] } })).toBe(true);
    expect(index.upsert({ metadata: { name: 'extra' }, spec: { cidrs: ['10.100.0.0/24', 'not-a-cidr'] } })).toBe(true);
    // The same CIDRs again: nothing to sync.
    expect(index.upsert({ metadata: { name: 'extra' }, spec: { cidrs: ['10.100.0.0/24'] } })).toBe(false);
    expect(nftContextFor(defaults, node, 'IPv4', { serviceCIDRs: index.all() }).serviceCIDRs).toEqual(['10.100.0.0/24', '10.96.0.0/16']);
    expect(nftContextFor(defaults, node, 'IPv6', { serviceCIDRs: index.all() }).serviceCIDRs).toEqual(['fd00:10:96::/112']);
    expect(index.delete('extra')).toBe(true);
    expect(index.ofFamily('IPv4')).toEqual(['10.96.0.0/16']);
    const rules = renderStatic(nftFamily('IPv4'), nftContextFor(defaults, node, 'IPv4', { serviceCIDRs: index.all() })).chains.find((chain) => chain.name === 'cluster-ips-check')?.rules;
    expect(rules).toEqual([
      'ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
      'ip daddr { 10.96.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"',
    ]);
  });
});
