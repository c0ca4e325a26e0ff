// Which chains a service port needs and where each kind of traffic goes, decided the way
// kube-proxy's syncProxyRules decides it (internal/external policy chains, short-circuiting,
// REJECT vs DROP). Everything downstream only reads this plan.

import {
  externallyAccessible as isExternallyAccessible,
  externalPolicyLocal as isExternalPolicyLocal,
  hasUsableEndpoints,
  internalPolicyLocal as isInternalPolicyLocal,
  usesClusterEndpoints as needsClusterEndpoints,
  usesLocalEndpoints as needsLocalEndpoints,
} from '../model/endpoints.js';
import type { ServicePort } from '../model/types.js';
import type { ServicePortChainNames } from './names.js';

export interface TrafficPlan {
  /** Some endpoint anywhere can serve (kube-proxy's hasEndpoints). Without one, only filter REJECTs. */
  readonly hasEndpoints: boolean;
  /** Cluster-IP traffic has somewhere to go (false: internalTrafficPolicy Local, no local endpoint). */
  readonly hasInternalEndpoints: boolean;
  /** Traffic from outside to external destinations has somewhere to go. */
  readonly hasExternalEndpoints: boolean;
  /** NodePort, external IPs or load-balancer IPs. */
  readonly externallyAccessible: boolean;
  readonly externalPolicyLocal: boolean;
  readonly usesClusterPolicyChain: boolean;
  readonly usesLocalPolicyChain: boolean;
  readonly usesExternalTrafficChain: boolean;
  readonly usesFirewallChain: boolean;
  /** KUBE-SVC- or KUBE-SVL-: where cluster-IP traffic is dispatched. */
  readonly internalTrafficChain: string;
  /** KUBE-SVC- or KUBE-SVL-: where KUBE-EXT- finally sends external traffic. */
  readonly externalPolicyChain: string;
  /** KUBE-FW- when source ranges apply, else KUBE-EXT-. */
  readonly loadBalancerTrafficChain: string;
}

export function planTraffic(servicePort: ServicePort, names: ServicePortChainNames): TrafficPlan {
  // The policy predicates are the model's (model/endpoints.ts), one source for every backend.
  const externallyAccessible = isExternallyAccessible(servicePort);
  const internalPolicyLocal = isInternalPolicyLocal(servicePort);
  const externalPolicyLocal = isExternalPolicyLocal(servicePort);
  const usesClusterEndpoints = needsClusterEndpoints(servicePort);
  const usesLocalEndpoints = needsLocalEndpoints(servicePort);

  // As kube-proxy's CategorizeEndpoints: with cluster endpoints in use, the (topology-aware,
  // terminating-fallback) selection is non-empty exactly when something anywhere can serve.
  let hasEndpoints = usesClusterEndpoints && servicePort.clusterEndpoints.length > 0;
  if (!hasEndpoints && usesLocalEndpoints) hasEndpoints = hasUsableEndpoints(servicePort.allEndpoints);

  const hasLocalEndpoints = servicePort.localEndpoints.length > 0;
  const hasInternalEndpoints = hasEndpoints && (!internalPolicyLocal || hasLocalEndpoints);
  const hasExternalEndpoints = hasEndpoints && (!externalPolicyLocal || hasLocalEndpoints);
  const usesFirewallChain =
    hasEndpoints && servicePort.loadBalancerIPs.length > 0 && servicePort.loadBalancerSourceRanges.length > 0;

  return {
    hasEndpoints,
    hasInternalEndpoints,
    hasExternalEndpoints,
    externallyAccessible,
    externalPolicyLocal,
    usesClusterPolicyChain: usesClusterEndpoints && servicePort.clusterEndpoints.length > 0,
    usesLocalPolicyChain: usesLocalEndpoints && hasLocalEndpoints,
    // Even without endpoints for outside traffic, KUBE-EXT- must exist for the short-circuit rules.
    usesExternalTrafficChain: hasEndpoints && externallyAccessible,
    usesFirewallChain,
    internalTrafficChain: internalPolicyLocal ? names.local : names.cluster,
    externalPolicyChain: externalPolicyLocal ? names.local : names.cluster,
    loadBalancerTrafficChain: usesFirewallChain ? names.firewall : names.external,
  };
}
