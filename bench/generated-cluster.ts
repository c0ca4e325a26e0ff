// The generated cluster the pure benches share: one node, its render context, and a generator of
// Services and EndpointSlices with a realistic mix (mostly ClusterIP; the NodePort pool is 2,768).

import type { NodeInfo } from '../src/model/types.js';
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext } from '../src/render/types.js';
import { ClusterGenerator } from '../test/support/generate.js';

export const benchNode: NodeInfo = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };

export const benchContext: RenderContext = {
  ...defaultRenderContext,
  localTraffic: localTrafficFromCIDR('10.244.0.0/14'),
  nodeIPs: benchNode.ips,
  localhostNodePorts: false,
};

export function benchGenerator(options: { seed: number; endpoints: number; unreadyRate: number }): ClusterGenerator {
  return new ClusterGenerator({
    seed: options.seed,
    nodeName: benchNode.name,
    otherNodes: Array.from({ length: 49 }, (_, index) => `node${index + 2}`),
    endpoints: options.endpoints,
    mix: { ClusterIP: 85, NodePort: 8, LoadBalancer: 7 },
    featureRate: 0.1,
    unreadyRate: options.unreadyRate,
  });
}
