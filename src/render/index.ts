// The pure renderer: desired state + node context -> kube-proxy's iptables layout (nat and
// filter), split into node-wide chains and per-service-port contributions so the differ can
// compare unchanged services by reference.

import type { DesiredState } from '../model/types.js';
import { RenderCache } from './cache.js';
import { resolveContext, servicePortContext } from './context.js';
import type { RenderContext, RuleSet, ServicePortRules } from './types.js';

export function renderRuleSet(state: DesiredState, ctx: RenderContext, cache: RenderCache = new RenderCache()): RuleSet {
  const resolved = resolveContext(ctx, state);

  // kube-proxy counts every endpoint of every service port (not only the usable ones) to decide
  // whether per-endpoint comments are worth their 40% of the payload.
  let totalEndpoints = 0;
  for (const servicePort of state.servicePorts.values()) totalEndpoints += servicePort.allEndpoints.length;
  const largeClusterMode = totalEndpoints > resolved.largeClusterEndpointsThreshold;

  const nodeWide = cache.nodeWideRules(resolved);
  cache.beginServicePorts(servicePortContext(resolved, largeClusterMode));
  const servicePorts = new Map<string, ServicePortRules>();
  for (const [key, servicePort] of state.servicePorts) {
    servicePorts.set(key, cache.servicePortRules(servicePort));
  }
  cache.endServicePorts();

  return {
    staticChains: nodeWide.staticChains,
    sharedChains: nodeWide.sharedChains,
    servicePorts,
    jumps: nodeWide.jumps,
  };
}

export { RenderCache, type RenderStats } from './cache.js';
export {
  hash16,
  isServicePortChain,
  servicePortChainNames,
  servicePortEndpointChainName,
  type ServicePortChainNames,
} from './names.js';
export {
  kubeExternalServicesChain,
  kubeForwardChain,
  kubeMarkMasqChain,
  kubeNodePortsChain,
  kubePostroutingChain,
  kubeProxyCanaryChain,
  kubeProxyFirewallChain,
  kubeServicesChain,
  kubeletFirewallChain,
} from './static.js';
export { probability } from './chains.js';
