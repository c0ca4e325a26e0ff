import { describe, expect, it } from 'vitest';
import { deletionsWithFlows, parseUdpFlows } from '../../../src/conntrack/entries.js';
import type { ConntrackDeletion } from '../../../src/conntrack/plan.js';

// As conntrack v1.4.7 prints them (a DNATed ClusterIP flow, a NodePort flow, an un-DNATed one).
const listing = [
  'udp      17 29 src=10.244.9.9 dst=10.96.0.10 sport=40053 dport=53 src=10.244.1.2 dst=10.244.9.9 sport=8053 dport=40053 mark=0 use=1',
  'udp      17 99 src=172.30.0.99 dst=172.30.0.10 sport=5000 dport=30053 [UNREPLIED] src=10.244.1.3 dst=172.30.0.10 sport=8053 dport=5000 mark=0 use=1',
  'udp      17 10 src=10.244.9.9 dst=10.96.0.20 sport=1234 dport=53 [UNREPLIED] src=10.96.0.20 dst=10.244.9.9 sport=53 dport=1234 mark=0 zone=1 use=1',
  'tcp      6 431999 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 [ASSURED] mark=0 use=1',
].join('\n');

describe('parseUdpFlows', () => {
  it('reads the original destination and the reply source of each UDP entry', () => {
    expect(parseUdpFlows(listing)).toEqual([
      { originalDestination: '10.96.0.10', originalDestinationPort: 53, replySource: '10.244.1.2' },
      { originalDestination: '172.30.0.10', originalDestinationPort: 30053, replySource: '10.244.1.3' },
      { originalDestination: '10.96.0.20', originalDestinationPort: 53, replySource: '10.96.0.20' },
    ]);
  });
});

describe('deletionsWithFlows', () => {
  it('keeps exactly the filters that match a listed flow', () => {
    const flows = parseUdpFlows(listing);
    const deletions: ConntrackDeletion[] = [
      { kind: 'service-ip-endpoint', serviceIP: '10.96.0.10', port: 53, endpointIP: '10.244.1.2' }, // matches
      { kind: 'service-ip-endpoint', serviceIP: '10.96.0.10', port: 53, endpointIP: '10.244.1.7' }, // no flow to that endpoint
      { kind: 'service-ip-endpoint', serviceIP: '10.96.0.10', port: 54, endpointIP: '10.244.1.2' }, // other port
      { kind: 'node-port-endpoint', nodePort: 30053, endpointIP: '10.244.1.3' }, // matches
      { kind: 'node-port-endpoint', nodePort: 30053, endpointIP: '10.244.1.2' }, // no such NodePort flow
      { kind: 'service-ip', serviceIP: '10.96.0.20', port: 53 }, // matches (the un-DNATed flow)
      { kind: 'service-ip', serviceIP: '10.96.0.30', port: 53 },
      { kind: 'node-port', nodePort: 30053 }, // matches
      { kind: 'node-port', nodePort: 30054 },
    ];
    const kept = deletionsWithFlows(deletions.map((deletion) => ({ deletion })), flows).map((item) => item.deletion);
    expect(kept).toEqual([deletions[0], deletions[3], deletions[5], deletions[7]]);
  });
});

describe('IPv6 flows and deletions', () => {
  const listing6 =
    'udp      17 29 src=fd00:10:244:1::5 dst=fd00:10:96::10 sport=40000 dport=53 src=fd00:10:244:1::7 dst=fd00:10:244:1::5 sport=53 dport=40000 mark=0 use=1\n';

  it('reads an IPv6 listing, and an IPv6 NodePort filter matches only IPv6 flows on that port', () => {
    const flows = parseUdpFlows(listing6, 'IPv6');
    expect(flows).toEqual([{ family: 'IPv6', originalDestination: 'fd00:10:96::10', originalDestinationPort: 53, replySource: 'fd00:10:244:1::7' }]);
    const deletions: ConntrackDeletion[] = [
      { kind: 'service-ip-endpoint', serviceIP: 'fd00:10:96::10', port: 53, endpointIP: 'fd00:10:244:1::7', family: 'IPv6' },
      { kind: 'node-port', nodePort: 53, family: 'IPv6' },
      // The IPv4 filter for the same port has no IPv4 flow to delete.
      { kind: 'node-port', nodePort: 53 },
    ];
    expect(deletionsWithFlows(deletions.map((deletion) => ({ deletion })), flows).map((item) => item.deletion)).toEqual(deletions.slice(0, 2));
  });
});
