import { describe, expect, it } from 'vitest';
import {
  externallyAccessible,
  selectEndpoints,
  usesClusterEndpoints,
  usesLocalEndpoints,
  type EndpointSelectionPolicy,
} from '../../../src/model/endpoints.js';
import { mergeEndpoints } from '../../../src/model/merge-endpoints.js';
import { parseEndpointSlice, type ParsedEndpointSlice } from '../../../src/model/parse.js';
import type { Endpoint } from '../../../src/model/types.js';
import { addresses, makeEndpoint, makeSlice } from './fixtures.js';

interface EndpointSpec {
  readonly local?: boolean;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
  readonly hints?: readonly string[];
}

function endpoint(ip: string, spec: EndpointSpec = {}): Endpoint {
  const ready = spec.ready ?? true;
  return {
    ip,
    port: 80,
    nodeName: spec.local === true ? 'me' : 'other',
    zone: undefined,
    zoneHints: spec.hints,
    ready,
    serving: spec.serving ?? ready,
    terminating: spec.terminating ?? false,
    isLocal: spec.local === true,
  };
}

const clusterIPOnly: EndpointSelectionPolicy = {
  internalTrafficPolicy: 'Cluster',
  externalTrafficPolicy: 'Cluster',
  nodePort: 0,
  externalIPs: [],
  loadBalancerIPs: [],
};
const internalLocal: EndpointSelectionPolicy = { ...clusterIPOnly, internalTrafficPolicy: 'Local' };
const externalLocalNodePort: EndpointSelectionPolicy = { ...clusterIPOnly, externalTrafficPolicy: 'Local', nodePort: 30080 };
const bothLocalNodePort: EndpointSelectionPolicy = { ...externalLocalNodePort, internalTrafficPolicy: 'Local' };

const me = { name: 'me', zone: 'zone-a' };
const ips = (list: readonly Endpoint[]): string[] => list.map((entry) => entry.ip);

describe('traffic policy predicates', () => {
  it.each([
    ['ClusterIP, Cluster', clusterIPOnly, false, true, false],
    ['ClusterIP, internal Local', internalLocal, false, false, true],
    ['NodePort, external Local', externalLocalNodePort, true, true, true],
    ['external IP, external Local', { ...clusterIPOnly, externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.1'] }, true, true, true],
    ['load balancer, external Local', { ...clusterIPOnly, externalTrafficPolicy: 'Local', loadBalancerIPs: ['203.0.113.1'] }, true, true, true],
    ['not externally accessible: external Local is moot', { ...clusterIPOnly, externalTrafficPolicy: 'Local' }, false, true, false],
    ['NodePort, internal Local (external still needs cluster)', { ...internalLocal, nodePort: 30080 }, true, true, true],
  ] as const)('%s', (_label, policy, accessible, cluster, local) => {
    expect([externallyAccessible(policy), usesClusterEndpoints(policy), usesLocalEndpoints(policy)]).toEqual([accessible, cluster, local]);
  });
});

describe('selectEndpoints', () => {
  const remoteReady = endpoint('10.0.0.1');
  const localReady = endpoint('10.0.0.2', { local: true });
  const remoteNotReady = endpoint('10.0.0.3', { ready: false });
  const remoteTerminating = endpoint('10.0.0.4', { ready: false, serving: true, terminating: true });
  const localTerminating = endpoint('10.0.0.5', { local: true, ready: false, serving: true, terminating: true });
  const localTerminatingNotServing = endpoint('10.0.0.6', { local: true, ready: false, serving: false, terminating: true });

  it.each([
    // label, policy, endpoints, cluster, local, reachable, hasAny
    ['no endpoints', clusterIPOnly, [], [], [], [], false],
    ['Cluster: ready endpoints only', clusterIPOnly, [remoteReady, localReady, remoteNotReady, remoteTerminating], ['10.0.0.1', '10.0.0.2'], [], ['10.0.0.1', '10.0.0.2'], true],
    ['Cluster: falls back to serving+terminating', clusterIPOnly, [remoteNotReady, remoteTerminating, localTerminating, localTerminatingNotServing], ['10.0.0.4', '10.0.0.5'], [], ['10.0.0.4', '10.0.0.5'], true],
    ['Cluster: nothing usable', clusterIPOnly, [remoteNotReady, localTerminatingNotServing], [], [], [], false],
    ['internal Local: only local ready', internalLocal, [remoteReady, localReady, localTerminating], [], ['10.0.0.2'], ['10.0.0.2'], true],
    ['internal Local: falls back to local serving+terminating', internalLocal, [remoteReady, localTerminating, localTerminatingNotServing], [], ['10.0.0.5'], ['10.0.0.5'], true],
    ['internal Local: no local endpoint, but remote ones exist', internalLocal, [remoteReady], [], [], [], true],
    ['external Local: cluster for internal, local for external', externalLocalNodePort, [remoteReady, localReady], ['10.0.0.1', '10.0.0.2'], ['10.0.0.2'], ['10.0.0.1', '10.0.0.2'], true],
    ['external Local: local terminating fallback joins the remote ready ones', externalLocalNodePort, [remoteReady, localTerminating], ['10.0.0.1'], ['10.0.0.5'], ['10.0.0.1', '10.0.0.5'], true],
    ['both Local', bothLocalNodePort, [remoteReady, localReady], ['10.0.0.1', '10.0.0.2'], ['10.0.0.2'], ['10.0.0.1', '10.0.0.2'], true],
  ] as const)('%s', (_label, policy, endpoints, cluster, local, reachable, hasAny) => {
    const selection = selectEndpoints(policy, endpoints, me);
    expect({
      cluster: ips(selection.clusterEndpoints),
      local: ips(selection.localEndpoints),
      reachable: ips(selection.reachableEndpoints),
      hasAny: selection.hasAnyEndpoints,
    }).toEqual({ cluster, local, reachable, hasAny });
  });

  describe('topology hints', () => {
    const hinted = (ip: string, zone: string, spec: EndpointSpec = {}): Endpoint => endpoint(ip, { ...spec, hints: [zone] });

    it.each([
      ['used when every ready endpoint has a hint and one is for our zone', me, [hinted('10.0.0.1', 'zone-a'), hinted('10.0.0.2', 'zone-b')], ['10.0.0.1']],
      ['a not-ready endpoint without hints does not disable them', me, [hinted('10.0.0.1', 'zone-a'), hinted('10.0.0.2', 'zone-b'), endpoint('10.0.0.3', { ready: false })], ['10.0.0.1']],
      ['ignored when one ready endpoint lacks a hint', me, [hinted('10.0.0.1', 'zone-a'), endpoint('10.0.0.2')], ['10.0.0.1', '10.0.0.2']],
      ['ignored when no hint names our zone', me, [hinted('10.0.0.1', 'zone-b'), hinted('10.0.0.2', 'zone-c')], ['10.0.0.1', '10.0.0.2']],
      ['ignored when the node has no zone', { name: 'me', zone: undefined }, [hinted('10.0.0.1', 'zone-a'), hinted('10.0.0.2', 'zone-b')], ['10.0.0.1', '10.0.0.2']],
      ['an endpoint hinted for several zones', me, [endpoint('10.0.0.1', { hints: ['zone-b', 'zone-a'] }), hinted('10.0.0.2', 'zone-b')], ['10.0.0.1']],
      // The hint for our zone is on a terminating endpoint only: no ready endpoint matches, so
      // topology is off and the ready ones all serve.
      ['only ready endpoints count towards "one for our zone"', me, [hinted('10.0.0.1', 'zone-a', { ready: false, serving: true, terminating: true }), hinted('10.0.0.2', 'zone-b')], ['10.0.0.2']],
    ] as const)('%s', (_label, node, endpoints, cluster) => {
      expect(ips(selectEndpoints(clusterIPOnly, endpoints, node).clusterEndpoints)).toEqual(cluster);
    });

    it('do not restrict local endpoints; reachable is the union in input order', () => {
      const endpoints = [hinted('10.0.0.1', 'zone-a'), hinted('10.0.0.2', 'zone-b', { local: true }), hinted('10.0.0.3', 'zone-a')];
      const selection = selectEndpoints(externalLocalNodePort, endpoints, me);
      expect(ips(selection.clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.3']);
      expect(ips(selection.localEndpoints)).toEqual(['10.0.0.2']);
      expect(ips(selection.reachableEndpoints)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    });

    it('the terminating fallback ignores hints', () => {
      const endpoints = [
        hinted('10.0.0.1', 'zone-a', { ready: false, serving: true, terminating: true }),
        hinted('10.0.0.2', 'zone-b', { ready: false, serving: true, terminating: true }),
      ];
      expect(ips(selectEndpoints(clusterIPOnly, endpoints, me).clusterEndpoints)).toEqual(['10.0.0.1', '10.0.0.2']);
    });
  });
});

describe('mergeEndpoints (every slice of a Service into one service port)', () => {
  function parsed(...slices: ReturnType<typeof makeSlice>[]): ParsedEndpointSlice[] {
    return slices.map((slice) => {
      const result = parseEndpointSlice(slice);
      if (result.kind !== 'usable') throw new Error('fixture slice not usable');
      return result.slice;
    });
  }

  it('merges slices, sorts by the "ip:port" string like kube-proxy, and marks local endpoints', () => {
    const slices = parsed(
      makeSlice('ns', 's-a', 's', [makeEndpoint('10.0.0.2', { node: 'me' }), makeEndpoint('10.0.0.1')]),
      makeSlice('ns', 's-b', 's', [makeEndpoint('10.0.0.10')]),
    );
    const merged = mergeEndpoints(slices, 'http', 'TCP', 'me');
    expect(addresses(merged)).toEqual(['10.0.0.10:8080', '10.0.0.1:8080', '10.0.0.2:8080']);
    expect(merged.map((entry) => entry.isLocal)).toEqual([false, false, true]);
  });

  it('keeps one endpoint per ip:port across slices: the non-terminating one, else the first slice', () => {
    const slices = parsed(
      makeSlice('ns', 's-a', 's', [makeEndpoint('10.0.0.1', { node: 'ghost', ready: false, serving: false, terminating: true }), makeEndpoint('10.0.0.2', { node: 'first' })]),
      makeSlice('ns', 's-b', 's', [makeEndpoint('10.0.0.1', { node: 'fresh' }), makeEndpoint('10.0.0.2', { node: 'second' })]),
    );
    expect(mergeEndpoints(slices, 'http', 'TCP', 'me').map((entry) => `${entry.ip}@${entry.nodeName ?? ''}`)).toEqual(['10.0.0.1@fresh', '10.0.0.2@first']);
  });

  it('matches slice ports by name and protocol; different port numbers give different endpoints', () => {
    const slices = parsed(
      makeSlice('ns', 's-a', 's', [makeEndpoint('10.0.0.1')], [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53, protocol: 'TCP' }]),
      makeSlice('ns', 's-b', 's', [makeEndpoint('10.0.0.1')], [{ name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns', port: 53, protocol: 'TCP' }]),
    );
    expect(addresses(mergeEndpoints(slices, 'dns', 'UDP', 'me'))).toEqual(['10.0.0.1:53', '10.0.0.1:5353']);
    expect(addresses(mergeEndpoints(slices, 'dns', 'TCP', 'me'))).toEqual(['10.0.0.1:53']);
    expect(addresses(mergeEndpoints(slices, 'metrics', 'TCP', 'me'))).toEqual([]);
  });

  it('reads a missing slice port name as the unnamed port', () => {
    const slices = parsed(makeSlice('ns', 's-a', 's', [makeEndpoint('10.0.0.1')], [{ port: 9000 }]));
    expect(addresses(mergeEndpoints(slices, '', 'TCP', 'me'))).toEqual(['10.0.0.1:9000']);
  });
});
