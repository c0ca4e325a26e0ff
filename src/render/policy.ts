// Which chains a service port needs and where each kind of traffic goes, decided the way
// kube-proxy's syncProxyRules decides it (internal/external policy chains, short-circuiting,
// REJECT vs DROP). Everything downstream only reads this plan.

import type { Endpoint, ServicePort } from '../model/types.js';
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

/** Serving endpoints count even when terminating: kube-proxy falls back to them. */
function usable(endpoint: Endpoint): boolean {
  return endpoint.ready || (endpoint.serving && endpoint.terminating);
}

export function planTraffic(servicePort: ServicePort, names: ServicePortChainNames): TrafficPlan {
  const externallyAccessible =
    servicePort.nodePort !== 0 || servicePort.externalIPs.length > 0 || servicePort.loadBalancerIPs.length > 0;
  const internalPolicyLocal = servicePort.internalTrafficPolicy === 'Local';
  const externalPolicyLocal = externallyAccessible && servicePort.externalTrafficPolicy === 'Local';
  // Cluster endpoints are needed for Cluster internal policy, and for any external access: even
  // with Local external policy, pod and host traffic is short-circuited to them.
  const usesClusterEndpoints = !internalPolicyLocal || externallyAccessible;
  const usesLocalEndpoints = internalPolicyLocal || externalPolicyLocal;

  // As kube-proxy's CategorizeEndpoints: with cluster endpoints in use, the (topology-aware,
  // terminating-fallback) selection is non-empty exactly when something anywhere can serve.
  let hasEndpoints = usesClusterEndpoints && servicePort.clusterEndpoints.length > 0;
  if (!hasEndpoints && usesLocalEndpoints) hasEndpoints = servicePort.allEndpoints.some(usable);

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
