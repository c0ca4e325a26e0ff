// Where new connections end up, for each kind of Service, from a pod, from the node and from
// outside: the real model and renderer, the full payload in FakeNetfilter, the packet tracer.
// Node node1 (192.168.0.2), cluster CIDR 10.244.0.0/16; 10.244.1.x pods live on node1,
// 10.244.2.x pods on node2.

import { beforeAll, describe, expect, it } from 'vitest';
import { servicePortEndpointChainName } from '../../../src/render/index.js';
import { endpoint, FlowNode, NODE_IP, service, slice, upsert, type Probe } from './harness.js';

const A = '10.244.1.11';
const B = '10.244.2.12';
const NOT_READY = '10.244.2.13';
const a = `ACCEPT ${A}:8080`;
const b = `ACCEPT ${B}:8080`;
const masq = (outcome: string): string => `${outcome} masquerade`;
const both = [a, b];
const bothMasq = [masq(a), masq(b)];
const untouched = ['ACCEPT'];

const objects = [
  // web: ClusterIP, one endpoint here, one on node2, one not ready (never used).
  service('web', { clusterIP: '10.96.0.10' }),
  slice('web', [endpoint(A, 'node1'), endpoint(B, 'node2'), endpoint(NOT_READY, 'node2', 'not-ready')]),
  service('np', { clusterIP: '10.96.0.20', nodePort: 30080 }),
  slice('np', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  // lb: only 203.0.113.0/24 may use the load balancer IP; its NodePort is open to all.
  service('lb', { type: 'LoadBalancer', clusterIP: '10.96.0.30', nodePort: 30081, ingress: ['198.18.0.1'], sourceRanges: ['203.0.113.0/24'] }),
  slice('lb', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  // lb-node: the node's own network is allowed, so the node reaches its LB IP too.
  service('lb-node', { type: 'LoadBalancer', clusterIP: '10.96.0.31', nodePort: 30085, ingress: ['198.18.0.2'], sourceRanges: ['192.168.0.0/24'] }),
  slice('lb-node', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  service('ext', { clusterIP: '10.96.0.40', externalIPs: ['192.0.2.10'] }),
  slice('ext', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  service('etp-local', { clusterIP: '10.96.0.50', nodePort: 30082, externalTrafficPolicy: 'Local' }),
  slice('etp-local', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  // etp-remote: Local policy but every endpoint elsewhere.
  service('etp-remote', { clusterIP: '10.96.0.51', nodePort: 30083, externalTrafficPolicy: 'Local' }),
  slice('etp-remote', [endpoint(B, 'node2')]),
  service('lb-local', {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.52',
    nodePort: 30086,
    ingress: ['198.18.0.3'],
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: 32000,
  }),
  slice('lb-local', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  service('itp-local', { clusterIP: '10.96.0.60', internalTrafficPolicy: 'Local' }),
  slice('itp-local', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  service('itp-remote', { clusterIP: '10.96.0.61', internalTrafficPolicy: 'Local' }),
  slice('itp-remote', [endpoint(B, 'node2')]),
  service('sticky', { clusterIP: '10.96.0.70', affinity: true }),
  slice('sticky', [endpoint(A, 'node1'), endpoint(B, 'node2')]),
  // empty: a NodePort Service whose slice lists nobody.
  service('empty', { clusterIP: '10.96.0.80', nodePort: 30084 }),
  slice('empty', []),
  // draining: only terminating endpoints; the serving one is the fallback.
  service('draining', { clusterIP: '10.96.0.90' }),
  slice('draining', [endpoint(A, 'node1', 'terminating'), endpoint(B, 'node2', 'terminating-not-serving')]),
  service('gone', { clusterIP: '10.96.0.91' }),
  slice('gone', [endpoint(A, 'node1', 'terminating-not-serving'), endpoint(B, 'node2', 'not-ready')]),
  service('dns', { clusterIP: '10.96.0.53', port: 53, protocol: 'UDP' }),
  slice('dns', [endpoint(A, 'node1'), endpoint(B, 'node2')], 'UDP'),
];

type Row = readonly [description: string, probe: Probe, expected: readonly string[]];

const rows: readonly Row[] = [
  // ClusterIP
  ['ClusterIP from a pod: every ready endpoint, source kept', { from: 'pod', to: '10.96.0.10:80' }, both],
  ['ClusterIP from the node: every ready endpoint, masqueraded', { from: 'node', to: '10.96.0.10:80' }, bothMasq],
  ['ClusterIP from outside the cluster CIDR: masqueraded', { from: 'outside', to: '10.96.0.10:80' }, bothMasq],
  ['ClusterIP hairpin: an endpoint reaching itself is masqueraded', { from: 'pod', source: A, to: '10.96.0.10:80' }, [masq(a), b]],
  ['ClusterIP on another port: untouched', { from: 'pod', to: '10.96.0.10:81' }, untouched],
  ['ClusterIP over UDP for a TCP port: untouched', { from: 'pod', to: '10.96.0.10:80', protocol: 'UDP' }, untouched],
  ['UDP ClusterIP from a pod', { from: 'pod', to: '10.96.0.53:53', protocol: 'UDP' }, both],
  ['an address no Service uses: untouched', { from: 'pod', to: '10.96.0.99:80' }, untouched],
  // NodePort
  ['NodePort from outside: masqueraded', { from: 'outside', to: `${NODE_IP}:30080` }, bothMasq],
  ['NodePort from the node: masqueraded', { from: 'node', to: `${NODE_IP}:30080` }, bothMasq],
  ['NodePort from a pod: masqueraded (external destination, Cluster policy)', { from: 'pod', to: `${NODE_IP}:30080` }, bothMasq],
  ['NodePort\'s cluster IP from a pod', { from: 'pod', to: '10.96.0.20:80' }, both],
  // LoadBalancer with source ranges
  ['LB IP from an allowed source', { from: 'outside', source: '203.0.113.7', to: '198.18.0.1:80' }, bothMasq],
  ['LB IP from a source outside the ranges: dropped', { from: 'outside', source: '198.51.100.200', to: '198.18.0.1:80' }, ['DROP']],
  ['LB IP from the node, not in the ranges: dropped', { from: 'node', to: '198.18.0.1:80' }, ['DROP']],
  ['LB IP from a pod, not in the ranges: dropped', { from: 'pod', to: '198.18.0.1:80' }, ['DROP']],
  ['LB NodePort ignores the source ranges', { from: 'outside', source: '198.51.100.200', to: `${NODE_IP}:30081` }, bothMasq],
  ['LB IP from the node when its network is allowed', { from: 'node', to: '198.18.0.2:80' }, bothMasq],
  ['LB IP allowing only the node\'s network, from outside: dropped', { from: 'outside', to: '198.18.0.2:80' }, ['DROP']],
  // externalIPs
  ['external IP from outside: masqueraded', { from: 'outside', to: '192.0.2.10:80' }, bothMasq],
  ['external IP from a pod: masqueraded', { from: 'pod', to: '192.0.2.10:80' }, bothMasq],
  ['external IP on another port: untouched', { from: 'outside', to: '192.0.2.10:443' }, untouched],
  // externalTrafficPolicy Local
  ['ETP Local NodePort from outside: only the local endpoint, source kept', { from: 'outside', to: `${NODE_IP}:30082` }, [a]],
  ['ETP Local NodePort from the node: any endpoint, masqueraded', { from: 'node', to: `${NODE_IP}:30082` }, bothMasq],
  ['ETP Local NodePort from a pod: short-circuited to any endpoint, source kept', { from: 'pod', to: `${NODE_IP}:30082` }, both],
  ['ETP Local without local endpoints, from outside: dropped', { from: 'outside', to: `${NODE_IP}:30083` }, ['DROP']],
  ['ETP Local without local endpoints, from the node: the remote one, masqueraded', { from: 'node', to: `${NODE_IP}:30083` }, [masq(b)]],
  ['ETP Local without local endpoints: its cluster IP still works', { from: 'pod', to: '10.96.0.51:80' }, [b]],
  ['ETP Local LB IP from outside: only the local endpoint, source kept', { from: 'outside', to: '198.18.0.3:80' }, [a]],
  ['ETP Local LB health check port is open', { from: 'outside', to: `${NODE_IP}:32000` }, untouched],
  // internalTrafficPolicy Local
  ['ITP Local from a pod: only the local endpoint', { from: 'pod', to: '10.96.0.60:80' }, [a]],
  ['ITP Local from the node: only the local endpoint, masqueraded', { from: 'node', to: '10.96.0.60:80' }, [masq(a)]],
  ['ITP Local without local endpoints, from a pod: dropped', { from: 'pod', to: '10.96.0.61:80' }, ['DROP']],
  ['ITP Local without local endpoints, from the node: dropped', { from: 'node', to: '10.96.0.61:80' }, ['DROP']],
  // No endpoints
  ['no endpoints, cluster IP from a pod: rejected', { from: 'pod', to: '10.96.0.80:80' }, ['REJECT']],
  ['no endpoints, cluster IP from the node: rejected', { from: 'node', to: '10.96.0.80:80' }, ['REJECT']],
  ['no endpoints, NodePort from outside: rejected', { from: 'outside', to: `${NODE_IP}:30084` }, ['REJECT']],
  // Terminating endpoints
  ['only terminating endpoints: the serving one takes over', { from: 'pod', to: '10.96.0.90:80' }, [a]],
  ['terminating and not serving, or not ready: rejected', { from: 'pod', to: '10.96.0.91:80' }, ['REJECT']],
  // Affinity (history unknown: either endpoint)
  ['ClientIP affinity, no history: either endpoint', { from: 'pod', to: '10.96.0.70:80' }, both],
];

describe('flows through the rendered rules', () => {
  const flowNode = new FlowNode();
  beforeAll(() => {
    flowNode.sync(objects.map(upsert));
  });

  it.each(rows)('%s', (_description, probe, expected) => {
    expect(flowNode.outcomes(probe)).toEqual([...expected].sort());
  });

  it('ClientIP affinity: a client on an endpoint\'s recent list goes back to it', () => {
    const chainOf = (ip: string): string => servicePortEndpointChainName('default/sticky:http', 'TCP', ip, 8080);
    const probe: Probe = { from: 'pod', to: '10.96.0.70:80' };
    expect(flowNode.outcomes(probe, { recentState: { [chainOf(A)]: false, [chainOf(B)]: true } })).toEqual([b]);
    expect(flowNode.outcomes(probe, { recentState: { [chainOf(A)]: true, [chainOf(B)]: false } })).toEqual([a]);
  });

  it('each of n endpoints is picked with probability 1/n', () => {
    const probabilities = flowNode.probabilities({ from: 'pod', to: '10.96.0.10:80' });
    expect(probabilities.get(a)).toBeCloseTo(0.5, 9);
    expect(probabilities.get(b)).toBeCloseTo(0.5, 9);
  });
});
