import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseEndpointSlice, parseService, type ParsedService } from '../../../src/model/parse.js';
import { makeEndpoint, makeService, makeSlice } from './fixtures.js';

function proxied(service: V1Service): { service: ParsedService; skipped: readonly { reason: string; detail: string }[] } {
  const result = parseService(service);
  if (result.kind !== 'proxied') throw new Error(`expected proxied, got ${result.kind}`);
  return result;
}

describe('parseService: Services that get no data-plane state', () => {
  it.each([
    ['headless (clusterIP None)', makeService('ns', 's', { clusterIP: 'None', clusterIPs: ['None'] }), 'headless'],
    ['ExternalName', makeService('ns', 's', { type: 'ExternalName', clusterIP: '', clusterIPs: [], externalName: 'x.example' }), 'external-name'],
    ['no cluster IP at all', makeService('ns', 's', { clusterIP: undefined, clusterIPs: [] }), 'no-cluster-ip'],
    ['IPv6-only cluster IPs', makeService('ns', 's', { clusterIPs: ['fd00::10'] }), 'no-ipv4-cluster-ip'],
    ['service-proxy-name label', makeService('ns', 's', {}, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }), 'service-proxy-name-label'],
    ['service-proxy-name label, empty value', makeService('ns', 's', {}, { labels: { 'service.kubernetes.io/service-proxy-name': '' } }), 'service-proxy-name-label'],
    ['headless label', makeService('ns', 's', {}, { labels: { 'service.kubernetes.io/headless': '' } }), 'headless-label'],
  ])('%s', (_label, service, why) => {
    expect(parseService(service)).toEqual({ kind: 'not-proxied', namespace: 'ns', name: 's', why });
  });
});

describe('parseService: fields', () => {
  it('keeps IPv4 cluster IPs of a dual-stack Service and ignores the IPv6 one', () => {
    const { service, skipped } = proxied(makeService('ns', 's', { clusterIPs: ['fd00::10', '10.96.0.20'] }));
    expect(service.clusterIPs).toEqual(['10.96.0.20']);
    expect(skipped).toEqual([]);
  });

  it('falls back to spec.clusterIP when clusterIPs is absent', () => {
    expect(proxied(makeService('ns', 's', { clusterIP: '10.96.0.30' })).service.clusterIPs).toEqual(['10.96.0.30']);
  });

  it('defaults: ClusterIP type, TCP, no node port, no affinity, Cluster policies', () => {
    const { service } = proxied(makeService('ns', 's', { type: undefined, ports: [{ port: 53, nodePort: 30053 }] }));
    expect(service).toMatchObject({
      type: 'ClusterIP',
      ports: [{ index: 0, name: '', protocol: 'TCP', port: 53, nodePort: 0 }],
      sessionAffinity: { kind: 'None' },
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      healthCheckNodePort: 0,
      loadBalancerIPs: [],
    });
  });

  it.each([
    [undefined, 10800],
    [{ clientIP: {} }, 10800],
    [{ clientIP: { timeoutSeconds: 60 } }, 60],
  ])('ClientIP session affinity with config %j -> timeout %i', (sessionAffinityConfig, timeoutSeconds) => {
    const { service } = proxied(makeService('ns', 's', { sessionAffinity: 'ClientIP', sessionAffinityConfig }));
    expect(service.sessionAffinity).toEqual({ kind: 'ClientIP', timeoutSeconds });
  });

  it('NodePort keeps node ports; LoadBalancer reads ingress IPs, skipping hostnames and ipMode Proxy', () => {
    const { service } = proxied(
      makeService(
        'ns',
        's',
        { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
        {
          loadBalancerIngress: [
            { ip: '203.0.113.1' },
            { hostname: 'lb.example' },
            { ip: '203.0.113.2', ipMode: 'Proxy' },
            { ip: '203.0.113.3', ipMode: 'VIP' },
            { ip: '2001:db8::1' },
          ],
        },
      ),
    );
    expect(service.ports[0]?.nodePort).toBe(30080);
    expect(service.loadBalancerIPs).toEqual(['203.0.113.1', '203.0.113.3']);
  });

  it('ignores load-balancer ingress on a non-LoadBalancer Service', () => {
    const { service } = proxied(makeService('ns', 's', { type: 'NodePort' }, { loadBalancerIngress: [{ ip: '203.0.113.1' }] }));
    expect(service.loadBalancerIPs).toEqual([]);
  });

  it('normalises and trims load-balancer source ranges, ignores IPv6 ones, and never reads the annotation', () => {
    const { service } = proxied(
      makeService(
        'ns',
        's',
        { type: 'LoadBalancer', loadBalancerSourceRanges: [' 10.1.2.3/8 ', '192.168.1.0/24', '2001:db8::/32', '10.0.0.0/8'] },
        { annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '172.16.0.0/12' } },
      ),
    );
    expect(service.loadBalancerSourceRanges).toEqual(['10.0.0.0/8', '192.168.1.0/24']);
    const annotationOnly = proxied(
      makeService('ns', 's', { type: 'LoadBalancer' }, { annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '172.16.0.0/12' } }),
    );
    expect(annotationOnly.service.loadBalancerSourceRanges).toEqual([]);
  });

  it('an unreadable source range fails closed: reported, and the load-balancer IPs are dropped', () => {
    const { service, skipped } = proxied(
      makeService('ns', 's', { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0/33'] }, { loadBalancerIngress: [{ ip: '203.0.113.1' }] }),
    );
    expect(service.loadBalancerIPs).toEqual([]);
    expect(skipped).toEqual([expect.objectContaining({ reason: 'invalid-cidr', detail: expect.stringContaining('spec.loadBalancerSourceRanges[0]') })]);
  });

  it.each([
    // [type, externalIPs, externalTrafficPolicy in spec, effective policy]
    ['NodePort', [], 'Local', 'Local'],
    ['LoadBalancer', [], 'Local', 'Local'],
    ['ClusterIP', ['192.0.2.1'], 'Local', 'Local'],
    ['ClusterIP', [], 'Local', 'Cluster'],
    ['NodePort', [], 'Cluster', 'Cluster'],
    ['NodePort', [], undefined, 'Cluster'],
  ] as const)('type %s with externalIPs %j and ETP %s is effectively %s', (type, externalIPs, policy, expected) => {
    const { service } = proxied(makeService('ns', 's', { type, externalIPs: [...externalIPs], externalTrafficPolicy: policy }));
    expect(service.externalTrafficPolicy).toBe(expected);
  });

  it('healthCheckNodePort only for LoadBalancer with external Local', () => {
    const lb = proxied(makeService('ns', 's', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }));
    expect(lb.service.healthCheckNodePort).toBe(32000);
    const nodePort = proxied(makeService('ns', 's', { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }));
    expect(nodePort.service.healthCheckNodePort).toBe(0);
  });

  it('internal traffic policy Local', () => {
    expect(proxied(makeService('ns', 's', { internalTrafficPolicy: 'Local' })).service.internalTrafficPolicy).toBe('Local');
  });
});

describe('parseService: invalid input is skipped with a reason naming the field', () => {
  it.each([
    ['bad cluster IP', { clusterIPs: ['10.0.0.999'] }, 'invalid-ip', 'spec.clusterIPs[0] "10.0.0.999" is not an IP address'],
    ['leading zeros in cluster IP', { clusterIPs: ['010.0.0.1'] }, 'invalid-ip', 'spec.clusterIPs[0] "010.0.0.1" is not an IP address'],
    ['unknown type', { type: 'Weird' }, 'invalid-field', 'spec.type "Weird" is not a known Service type'],
    ['unknown affinity', { sessionAffinity: 'Sticky' }, 'invalid-field', 'spec.sessionAffinity "Sticky" is not None or ClientIP'],
    ['affinity timeout out of range', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }, 'invalid-field', expect.stringContaining('timeoutSeconds 0')],
    ['unknown traffic policy', { internalTrafficPolicy: 'Nearby' }, 'invalid-field', 'spec.internalTrafficPolicy "Nearby" is not Cluster or Local'],
  ] as const)('%s: the whole Service', (_label, spec, reason, detail) => {
    const result = parseService(makeService('ns', 's', spec as Record<string, unknown>));
    expect(result).toEqual({ kind: 'invalid', namespace: 'ns', name: 's', skipped: [{ kind: 'Service', namespace: 'ns', name: 's', reason, detail }] });
  });

  it('a bad name skips the Service', () => {
    const result = parseService(makeService('ns', 'Not_A_Name'));
    expect(result.kind).toBe('invalid');
    expect(result.kind === 'invalid' && result.skipped[0]?.reason).toBe('invalid-name');
  });

  it('keeps the Service when one of its cluster IPs is bad but an IPv4 one remains', () => {
    const { service, skipped } = proxied(makeService('ns', 's', { clusterIPs: ['10.96.0.5', 'bogus'] }));
    expect(service.clusterIPs).toEqual(['10.96.0.5']);
    expect(skipped.map((entry) => entry.reason)).toEqual(['invalid-ip']);
  });

  it('skips one bad port, keeps the others', () => {
    const { service, skipped } = proxied(
      makeService('ns', 's', {
        type: 'NodePort',
        ports: [
          { name: 'a', port: 80 },
          { name: 'b', port: 70000 },
          { name: 'c', port: 81, protocol: 'QUIC' },
          { name: 'd', port: 82, nodePort: -1 },
          { name: 'e', port: 83, protocol: 'UDP' },
          { name: 'a', port: 84 },
        ],
      }),
    );
    expect(service.ports.map((port) => `${port.name}/${port.protocol}`)).toEqual(['a/TCP', 'e/UDP']);
    expect(skipped).toEqual([
      expect.objectContaining({ reason: 'invalid-port', detail: 'spec.ports[1].port 70000 is not a port number' }),
      expect.objectContaining({ reason: 'unknown-protocol', detail: 'spec.ports[2].protocol "QUIC" is not TCP, UDP or SCTP' }),
      expect.objectContaining({ reason: 'invalid-port', detail: 'spec.ports[3].nodePort -1 is not a port number' }),
      expect.objectContaining({ reason: 'invalid-field', detail: 'spec.ports[5] duplicates port name "a" with protocol TCP' }),
    ]);
  });

  it('skips a bad external IP, ignores IPv6 ones, keeps the Service', () => {
    const { service, skipped } = proxied(makeService('ns', 's', { externalIPs: ['192.0.2.1', '2001:db8::1', '192.0.2.300', '192.0.2.1'] }));
    expect(service.externalIPs).toEqual(['192.0.2.1']);
    expect(skipped).toEqual([expect.objectContaining({ reason: 'invalid-ip', detail: 'spec.externalIPs[2] "192.0.2.300" is not an IP address' })]);
  });

  it('survives garbage in typed fields', () => {
    const garbage = { metadata: { namespace: 'ns', name: 's' }, spec: { clusterIPs: [42], ports: 'nope' } } as unknown as V1Service;
    expect(parseService(garbage).kind).toBe('invalid');
    expect(parseService({} as V1Service).kind).toBe('invalid');
  });
});

describe('parseEndpointSlice', () => {
  it('reads addresses[0], conditions with API defaults, zone hints, ports and the trigger time', () => {
    const slice = makeSlice(
      'ns',
      's-1',
      's',
      [
        { ...makeEndpoint('10.0.0.2', { node: 'n1', zone: 'z1', hints: ['z2', 'z1', 'z1'] }), addresses: ['10.0.0.2', '10.0.0.99'] },
        makeEndpoint('10.0.0.1', { ready: false, terminating: true }),
      ],
      [{ name: 'http', port: 8080 }],
      { annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2024-05-01T10:00:00Z' } },
    );
    const result = parseEndpointSlice(slice);
    expect(result).toEqual({
      kind: 'usable',
      slice: {
        namespace: 'ns',
        name: 's-1',
        key: 'ns/s-1',
        serviceKey: 'ns/s',
        ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
        endpoints: [
          { ip: '10.0.0.1', nodeName: undefined, zone: undefined, zoneHints: undefined, ready: false, serving: true, terminating: true },
          { ip: '10.0.0.2', nodeName: 'n1', zone: 'z1', zoneHints: ['z1', 'z2'], ready: true, serving: true, terminating: false },
        ],
      },
      triggerTime: Date.parse('2024-05-01T10:00:00Z'),
      skipped: [],
    });
  });

  it.each([
    ['IPv6 slices', makeSlice('ns', 'x', 's', [], undefined, { addressType: 'IPv6' }), 'ipv6'],
    // As upstream: FQDN slices are valid and for no proxy, so not counted as skipped.
    ['FQDN slices', makeSlice('ns', 'x', 's', [], undefined, { addressType: 'FQDN' }), 'fqdn'],
    ['service-proxy-name label', makeSlice('ns', 'x', 's', [], undefined, { labels: { 'service.kubernetes.io/service-proxy-name': 'o' } }), 'service-proxy-name-label'],
    ['headless label', makeSlice('ns', 'x', 's', [], undefined, { labels: { 'service.kubernetes.io/headless': '' } }), 'headless-label'],
  ])('ignores %s without reporting them', (_label, slice, why) => {
    expect(parseEndpointSlice(slice)).toEqual({ kind: 'ignored', namespace: 'ns', name: 'x', why });
  });

  it.each([
    ['slices of an unknown address type', makeSlice('ns', 'x', 's', [], undefined, { addressType: 'IPX' }), 'unsupported-address-type'],
    ['a slice without the service-name label', makeSlice('ns', 'x', undefined, []), 'missing-service-name-label'],
  ])('skips %s with a reason', (_label, slice, reason) => {
    const result = parseEndpointSlice(slice);
    expect(result.kind).toBe('invalid');
    expect(result.kind === 'invalid' && result.skipped.map((entry) => entry.reason)).toEqual([reason]);
  });

  it('skips bad endpoints and ports individually', () => {
    const slice = makeSlice(
      'ns',
      'x',
      's',
      [makeEndpoint('10.0.0.1'), makeEndpoint('10.0.0.256'), { addresses: [] }],
      [{ name: 'a', port: 1 }, { name: 'b', port: 0 }, { name: 'c', port: 2, protocol: 'ICMP' }, { name: 'all' }],
    );
    const result = parseEndpointSlice(slice);
    if (result.kind !== 'usable') throw new Error('expected usable');
    expect(result.slice.endpoints.map((endpoint) => endpoint.ip)).toEqual(['10.0.0.1']);
    expect(result.slice.ports.map((port) => port.name)).toEqual(['a']);
    expect(result.skipped.map((entry) => `${entry.reason}: ${entry.detail}`)).toEqual([
      'invalid-port: ports[1].port 0 is not a port number',
      'unknown-protocol: ports[2].protocol "ICMP" is not TCP, UDP or SCTP',
      'invalid-ip: endpoints[1].addresses[0] "10.0.0.256" is not an IPv4 address',
      'invalid-field: endpoints[2].addresses is empty',
    ]);
  });

  it('deduplicates an IP within a slice, preferring the non-terminating endpoint', () => {
    const slice = makeSlice('ns', 'x', 's', [
      makeEndpoint('10.0.0.1', { node: 'old', ready: false, serving: false, terminating: true }),
      makeEndpoint('10.0.0.1', { node: 'new' }),
      makeEndpoint('10.0.0.1', { node: 'newer' }),
    ]);
    const result = parseEndpointSlice(slice);
    expect(result.kind === 'usable' && result.slice.endpoints.map((endpoint) => endpoint.nodeName)).toEqual(['new']);
  });
});
