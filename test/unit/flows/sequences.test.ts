// Flows across a sequence of partial syncs: each step changes the cluster, the differ's delta is
// applied to the FakeNetfilter left by the previous steps, and the tracer says where connections
// go now. Every step also checks that the fake holds what a fresh node given the full payload
// would (FlowNode.sync).

import { describe, expect, it } from 'vitest';
import type { Endpoint, ServicePort } from '../../../src/model/types.js';
import { servicePortChainNames, servicePortEndpointChainName } from '../../../src/render/index.js';
import { ClusterGenerator } from '../../support/generate.js';
import { endpoint, FlowNode, NODE_IP, service, slice, upsert, type Probe } from './harness.js';

const A = '10.244.1.11';
const B = '10.244.2.12';
const C = '10.244.2.13';
const clusterIP: Probe = { from: 'pod', to: '10.96.0.10:80' };
const nodePort: Probe = { from: 'outside', to: `${NODE_IP}:30080` };
const fromNode: Probe = { from: 'node', to: `${NODE_IP}:30080` };
const webChains = servicePortChainNames('default/web:http', 'TCP');

interface Step {
  readonly description: string;
  readonly changes: Parameters<FlowNode['sync']>[0];
  readonly expect: readonly (readonly [Probe, readonly string[]])[];
  /** Chains the partial payload must not write (unchanged parts stay untouched). */
  readonly untouched?: readonly string[];
  /** The rules come out the same, so the partial sync writes nothing. */
  readonly noPayload?: boolean;
}

const steps: readonly Step[] = [
  {
    description: 'web with two ready endpoints',
    changes: [upsert(service('web', { clusterIP: '10.96.0.10' })), upsert(slice('web', [endpoint(A, 'node1'), endpoint(B, 'node2')]))],
    expect: [[clusterIP, [`ACCEPT ${A}:8080`, `ACCEPT ${B}:8080`]]],
  },
  {
    description: 'B stops being ready',
    changes: [upsert(slice('web', [endpoint(A, 'node1'), endpoint(B, 'node2', 'not-ready')]))],
    expect: [[clusterIP, [`ACCEPT ${A}:8080`]]],
  },
  {
    description: 'A terminates but still serves, B still not ready: A is the fallback, the same rules',
    changes: [upsert(slice('web', [endpoint(A, 'node1', 'terminating'), endpoint(B, 'node2', 'not-ready')]))],
    expect: [[clusterIP, [`ACCEPT ${A}:8080`]]],
    noPayload: true,
  },
  {
    description: 'scaled to zero',
    changes: [upsert(slice('web', []))],
    expect: [[clusterIP, ['REJECT']]],
  },
  {
    description: 'a new endpoint C on node2',
    changes: [upsert(slice('web', [endpoint(C, 'node2')]))],
    expect: [[clusterIP, [`ACCEPT ${C}:8080`]]],
  },
  {
    description: 'an unrelated Service comes and leaves web alone',
    changes: [upsert(service('other', { clusterIP: '10.96.0.20' })), upsert(slice('other', [endpoint(A, 'node1')]))],
    expect: [
      [clusterIP, [`ACCEPT ${C}:8080`]],
      [{ from: 'pod', to: '10.96.0.20:80' }, [`ACCEPT ${A}:8080`]],
    ],
    untouched: [webChains.cluster, servicePortEndpointChainName('default/web:http', 'TCP', C, 8080)],
  },
  {
    description: 'web becomes a NodePort',
    changes: [upsert(service('web', { clusterIP: '10.96.0.10', nodePort: 30080 }))],
    expect: [
      [nodePort, [`ACCEPT ${C}:8080 masquerade`]],
      [clusterIP, [`ACCEPT ${C}:8080`]],
    ],
  },
  {
    description: 'externalTrafficPolicy Local while C is on node2: outside traffic dropped, the node still gets through',
    changes: [upsert(service('web', { clusterIP: '10.96.0.10', nodePort: 30080, externalTrafficPolicy: 'Local' }))],
    expect: [
      [nodePort, ['DROP']],
      [fromNode, [`ACCEPT ${C}:8080 masquerade`]],
    ],
  },
  {
    description: 'C moves to node1: outside traffic reaches it with its source kept',
    changes: [upsert(slice('web', [endpoint(C, 'node1')]))],
    expect: [
      [nodePort, [`ACCEPT ${C}:8080`]],
      [clusterIP, [`ACCEPT ${C}:8080`]],
    ],
  },
  {
    description: 'ClientIP affinity on, a second endpoint',
    changes: [
      upsert(service('web', { clusterIP: '10.96.0.10', nodePort: 30080, externalTrafficPolicy: 'Local', affinity: true })),
      upsert(slice('web', [endpoint(C, 'node1'), endpoint(B, 'node2')])),
    ],
    expect: [
      [clusterIP, [`ACCEPT ${B}:8080`, `ACCEPT ${C}:8080`]],
      [nodePort, [`ACCEPT ${C}:8080`]],
    ],
  },
  {
    description: 'web is deleted (Service first, then its slice)',
    changes: [
      { kind: 'deleteService', namespace: 'default', name: 'web' },
      { kind: 'deleteEndpointSlice', namespace: 'default', name: 'web-slice' },
    ],
    expect: [
      [clusterIP, ['ACCEPT']],
      [nodePort, ['ACCEPT']],
      [{ from: 'pod', to: '10.96.0.20:80' }, [`ACCEPT ${A}:8080`]],
    ],
  },
];

describe('flows across partial syncs', () => {
  it('each step changes exactly the flows it should', () => {
    const flowNode = new FlowNode();
    for (const [index, step] of steps.entries()) {
      const label = `step ${index}: ${step.description}`;
      const plan = flowNode.sync(step.changes, label);
      if (index > 0 && step.noPayload === true) expect(plan?.payload, label).toBe('');
      else if (index > 0) expect(plan?.payload, label).not.toBe('');
      for (const chain of step.untouched ?? []) {
        expect(plan?.payload ?? '', label).not.toContain(`:${chain}`);
      }
      for (const [probe, expected] of step.expect) {
        expect({ label, probe, outcomes: flowNode.outcomes(probe) }).toEqual({ label, probe, outcomes: [...expected].sort() });
      }
    }
    // Nothing of web is left behind.
    const natChains = flowNode.fake.chains('nat').filter((chain) => /^KUBE-(SVC|SVL|EXT|FW|SEP)-/.test(chain));
    expect(natChains.length).toBe(2); // other's KUBE-SVC- and its one KUBE-SEP-
  });

  it('a sync with no change writes nothing', () => {
    const flowNode = new FlowNode();
    flowNode.sync([upsert(service('web', { clusterIP: '10.96.0.10' })), upsert(slice('web', [endpoint(A, 'node1')]))]);
    expect(flowNode.sync([upsert(service('web', { clusterIP: '10.96.0.10' }))])?.payload).toBe('');
  });
});

/** Where the model says a pod's connection to this cluster IP may go. */
function expectedFromPod(servicePort: ServicePort): string[] {
  const endpoints: readonly Endpoint[] =
    servicePort.internalTrafficPolicy === 'Local' ? servicePort.localEndpoints : servicePort.clusterEndpoints;
  if (endpoints.length > 0) return [...new Set(endpoints.map((ep) => `ACCEPT ${ep.ip}:${ep.port}`))].sort();
  const anyServing = servicePort.allEndpoints.some((ep) => ep.ready || (ep.serving && ep.terminating));
  // ITP Local with endpoints only elsewhere: DROP; nothing anywhere: REJECT.
  return [anyServing && servicePort.internalTrafficPolicy === 'Local' ? 'DROP' : 'REJECT'];
}

describe('generated sequences on the fake', () => {
  it.each(Array.from({ length: 12 }, (_, index) => index + 101))('seed %i: deltas converge and every cluster IP leads where the model says', (seed) => {
    const generator = new ClusterGenerator({ seed, nodeName: 'node1', maxServices: 16, featureRate: 0.35, sctp: true });
    const flowNode = new FlowNode();
    flowNode.sync(generator.populate(10), `seed ${seed} initial`);
    for (let step = 0; step < 25; step++) {
      const mutations = generator.mutate(1 + (step % 3));
      const label = `seed ${seed} step ${step}: ${mutations.map((mutation) => mutation.description).join('; ')}`;
      flowNode.sync(mutations.flatMap((mutation) => mutation.changes), label);
      for (const servicePort of flowNode.store.snapshot().state.servicePorts.values()) {
        const clusterIPAddress = servicePort.clusterIPs[0] ?? '';
        // A pod that is no endpoint (the generator's pod IPs count up from 10.244.0.1): no hairpin
        // masquerade in the way.
        const probe: Probe = { from: 'pod', source: '10.244.250.1', to: `${clusterIPAddress}:${servicePort.port}`, protocol: servicePort.protocol };
        expect({ label, key: servicePort.key, outcomes: flowNode.outcomes(probe) }).toEqual({
          label,
          key: servicePort.key,
          outcomes: expectedFromPod(servicePort),
        });
      }
    }
  });
});
