import { describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../../src/model/build.js';
import { conntrackArgs, planConntrackCleanup } from '../../../src/conntrack/plan.js';
import { service, slice } from '../agent/fixtures.js';

const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
const state = (services: ReturnType<typeof service>[], slices: ReturnType<typeof slice>[]) =>
  buildDesiredState({ services, endpointSlices: slices, node }).state;

describe('planConntrackCleanup', () => {
  it('deletes UDP flows DNATed to a removed endpoint, for the cluster IP and the NodePort', () => {
    const dns = service('dns', '10.96.0.10', { protocol: 'UDP', port: 53, nodePort: 30053 });
    const before = state([dns], [slice('dns', ['10.244.1.1', '10.244.1.2'], { protocol: 'UDP' })]);
    const after = state([dns], [slice('dns', ['10.244.1.1'], { protocol: 'UDP' })]);
    expect(planConntrackCleanup(before, after).map(conntrackArgs)).toEqual([
      ['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dport', '53', '--reply-src', '10.244.1.2'],
      ['-D', '-p', 'udp', '--dport', '30053', '--reply-src', '10.244.1.2'],
    ]);
  });

  it('clears flows to a UDP service IP that had no endpoints once it gets one (scale from zero)', () => {
    const dns = service('dns', '10.96.0.10', { protocol: 'UDP', port: 53 });
    const before = state([dns], []);
    const after = state([dns], [slice('dns', ['10.244.1.1'], { protocol: 'UDP' })]);
    expect(planConntrackCleanup(before, after).map((deletion) => conntrackArgs(deletion))).toEqual([['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dport', '53']]);
  });

  it('a service port left without endpoints costs one filter per service IP and NodePort, however many endpoints left', () => {
    const dns = service('dns', '10.96.0.10', { protocol: 'UDP', port: 53, nodePort: 30053 });
    const many = Array.from({ length: 1000 }, (_, index) => `10.244.${Math.floor(index / 250)}.${(index % 250) + 1}`);
    const before = state([dns], [slice('dns', many, { protocol: 'UDP' })]);
    const after = state([dns], []);
    expect(planConntrackCleanup(before, after).map(conntrackArgs)).toEqual([
      ['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dport', '53'],
      ['-D', '-p', 'udp', '--dport', '30053'],
    ]);
    // The Service deleted along with its endpoints: the same two filters.
    expect(planConntrackCleanup(before, state([], [])).map(conntrackArgs)).toEqual([
      ['-D', '-p', 'udp', '--orig-dst', '10.96.0.10', '--dport', '53'],
      ['-D', '-p', 'udp', '--dport', '30053'],
    ]);
  });

  it('ignores TCP services, unchanged services and the first sync', () => {
    const web = service('web', '10.96.0.20');
    const before = state([web], [slice('web', ['10.244.1.1', '10.244.1.2'])]);
    const after = state([web], [slice('web', ['10.244.1.1'])]);
    expect(planConntrackCleanup(before, after)).toEqual([]);
    expect(planConntrackCleanup(undefined, after)).toEqual([]);
    expect(planConntrackCleanup(after, after)).toEqual([]);
  });
});

describe('planConntrackCleanup of an IPv6 model', () => {
  it('names the family, so the tool is told -f ipv6', () => {
    const node6 = { name: 'node1', ips: ['fd00:30::10'], zone: undefined, labels: {}, podCIDRs: [] };
    const dns = { ...service('dns', 'fd00:10:96::10', { protocol: 'UDP', port: 53 }) };
    const sliceOf = (ips: string[]) => ({ ...slice('dns', ips, { protocol: 'UDP' }), addressType: 'IPv6' });
    const before = buildDesiredState({ services: [dns], endpointSlices: [sliceOf(['fd00:10:244::1', 'fd00:10:244::2'])], node: node6, family: 'IPv6' }).state;
    const after = buildDesiredState({ services: [dns], endpointSlices: [sliceOf(['fd00:10:244::1'])], node: node6, family: 'IPv6' }).state;
    expect(planConntrackCleanup(before, after).map(conntrackArgs)).toEqual([
      ['-D', '-p', 'udp', '--orig-dst', 'fd00:10:96::10', '--dport', '53', '--reply-src', 'fd00:10:244::2', '-f', 'ipv6'],
    ]);
  });
});
