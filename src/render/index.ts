// The pure renderer: desired state + node context -> kube-proxy's iptables layout (nat and
// filter), split into node-wide chains and per-service-port contributions so the differ can
// compare unchanged services by reference.

import type { DesiredState } from '../model/types.js';
import { RenderCache } from './cache.js';
import { resolveContext, servicePortContext } from './context.js';
import type { RenderContext, RuleSet } from './types.js';

export function renderRuleSet(state: DesiredState, ctx: RenderContext, cache: RenderCache = new RenderCache()): RuleSet {
  const resolved = resolveContext(ctx, state);

  // kube-proxy counts every endpoint of every service port (not only the usable ones) to decide
  // whether per-endpoint comments are worth their 40% of the payload.
  const largeClusterMode = cache.endpointTotal(state.servicePorts) > resolved.largeClusterEndpointsThreshold;

  const nodeWide = cache.nodeWideRules(resolved);
  cache.beginServicePorts(servicePortContext(resolved, largeClusterMode));
  const servicePorts = cache.servicePortRulesMap(state.servicePorts);
  cache.endServicePorts();

  return {
    staticChains: nodeWide.staticChains,
    sharedChains: nodeWide.sharedChains,
    servicePorts,
    jumps: nodeWide.jumps,
    ensuredChains: nodeWide.ensuredChains,
  };
}

export { RenderCache, type RenderStats } from './cache.js';
export { hash16, servicePortChainNames, servicePortEndpointChainName, type ServicePortChainNames } from './names.js';
export { isServicePortChain } from '../netfilter/vocabulary.js';
export { probability } from './chains.js';
