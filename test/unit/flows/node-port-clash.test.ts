// Two Services claiming one NodePort (a restored etcd, a buggy writer): the older keeps the
// NodePort; the other loses only that NodePort, not its cluster IP (upstream programs both
// Services' cluster IPs too). The clash is reported as a skipped part of the loser.

import { describe, expect, it } from 'vitest';
import { ModelStore } from '../../../src/model/store.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { context, endpoint, freshNode, node, NODE_IP, outcomes, service, slice } from './harness.js';

const A = '10.244.1.11';
const B = '10.244.2.12';

describe('a NodePort clash', () => {
  it('the loser keeps its cluster IP; the NodePort goes to the winner; the clash is reported', () => {
    const store = new ModelStore(node);
    // Same creation time (none): the lexically first ns/name wins.
    store.upsertService(service('alpha', { clusterIP: '10.96.0.10', nodePort: 30080 }));
    store.upsertEndpointSlice(slice('alpha', [endpoint(A, 'node1')]));
    store.upsertService(service('zeta', { clusterIP: '10.96.0.20', nodePort: 30080, externalIPs: ['192.0.2.20'] }));
    store.upsertEndpointSlice(slice('zeta', [endpoint(B, 'node2')]));
    const snapshot = store.snapshot();
    const fake = freshNode(renderRuleSet(snapshot.state, context));

    expect(outcomes(fake, { from: 'outside', to: `${NODE_IP}:30080` })).toEqual([`ACCEPT ${A}:8080 masquerade`]);
    expect(outcomes(fake, { from: 'pod', to: '10.96.0.20:80' })).toEqual([`ACCEPT ${B}:8080`]);
    expect(outcomes(fake, { from: 'outside', to: '192.0.2.20:80' })).toEqual([`ACCEPT ${B}:8080 masquerade`]);
    expect(snapshot.state.servicePorts.get('default/zeta:http/TCP')?.nodePort).toBe(0);
    expect(snapshot.skipped).toEqual([
      {
        kind: 'Service',
        namespace: 'default',
        name: 'zeta',
        reason: 'port-clash',
        detail: 'spec.ports[0].nodePort 30080/TCP is already used by default/alpha; the port is programmed without it',
      },
    ]);
  });
});
