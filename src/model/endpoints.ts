// Endpoint selection for one service port on this node: kube-proxy's CategorizeEndpoints
// (pkg/proxy/topology.go) with its traffic-policy predicates (pkg/proxy/serviceport.go).
//
// Matches kube-proxy 1.33: zone hints are used whenever every ready endpoint has one and one
// matches this node's zone (the topology-mode annotation no longer gates them once
// ServiceTrafficDistribution is GA). Deliberately not implemented: node hints
// (`hints.forNodes`, PreferSameNode), which need the PreferSameTrafficDistribution gate (alpha
// in 1.33, off by default).
import type { Endpoint, ServicePort } from './types.js';

/** The parts of a ServicePort that decide which endpoints it uses. */
export type EndpointSelectionPolicy = Pick<
  ServicePort,
  'internalTrafficPolicy' | 'externalTrafficPolicy' | 'nodePort' | 'externalIPs' | 'loadBalancerIPs'
>;

export interface EndpointSelectionNode {
  readonly name: string;
  readonly zone: string | undefined;
}

export interface EndpointSelection {
  /** Empty when the port never uses Cluster policy. */
  readonly clusterEndpoints: readonly Endpoint[];
  /** Empty when the port never uses Local policy. */
  readonly localEndpoints: readonly Endpoint[];
  /** cluster ∪ local, in input order. */
  readonly reachableEndpoints: readonly Endpoint[];
  /** Some endpoint anywhere is usable (ready, or serving and terminating): DROP rather than REJECT. */
  readonly hasAnyEndpoints: boolean;
}

/** Reachable through something other than its cluster IP (NodePort, external IP, load balancer). */
export function externallyAccessible(policy: EndpointSelectionPolicy): boolean {
  return policy.nodePort !== 0 || policy.loadBalancerIPs.length > 0 || policy.externalIPs.length > 0;
}

/** Cluster endpoints are needed for internal Cluster policy, and for any external traffic (even
 * with external Local, to short-circuit traffic from this node's pods). */
export function usesClusterEndpoints(policy: EndpointSelectionPolicy): boolean {
  return policy.internalTrafficPolicy !== 'Local' || externallyAccessible(policy);
}

/** internalTrafficPolicy Local: cluster-IP traffic goes to node-local endpoints only. */
export function internalPolicyLocal(policy: EndpointSelectionPolicy): boolean {
  return policy.internalTrafficPolicy === 'Local';
}

/** externalTrafficPolicy Local on a port reachable from outside (Local means nothing otherwise). */
export function externalPolicyLocal(policy: EndpointSelectionPolicy): boolean {
  return policy.externalTrafficPolicy === 'Local' && externallyAccessible(policy);
}

export function usesLocalEndpoints(policy: EndpointSelectionPolicy): boolean {
  return internalPolicyLocal(policy) || externalPolicyLocal(policy);
}

function usable(endpoint: Endpoint): boolean {
  return endpoint.ready || (endpoint.serving && endpoint.terminating);
}

/** Whether any endpoint is usable anywhere in the cluster (kube-proxy's hasAnyEndpoints). */
export function hasUsableEndpoints(endpoints: readonly Endpoint[]): boolean {
  return endpoints.some(usable);
}

/** Zone hints apply only when every ready endpoint has one and at least one names our zone. */
export function useZoneHints(endpoints: readonly Endpoint[], zone: string | undefined): boolean {
  if (zone === undefined || zone === '') return false;
  let anyReady = false;
  let anyForZone = false;
  for (const endpoint of endpoints) {
    if (!endpoint.ready) continue;
    anyReady = true;
    if (endpoint.zoneHints === undefined || endpoint.zoneHints.length === 0) return false;
    if (endpoint.zoneHints.includes(zone)) anyForZone = true;
  }
  return anyReady && anyForZone;
}

const none: readonly Endpoint[] = [];

export function selectEndpoints(
  policy: EndpointSelectionPolicy,
  endpoints: readonly Endpoint[],
  node: EndpointSelectionNode,
): EndpointSelection {
  if (endpoints.length === 0) {
    return { clusterEndpoints: none, localEndpoints: none, reachableEndpoints: none, hasAnyEndpoints: false };
  }
  const hasAnyEndpoints = hasUsableEndpoints(endpoints);

  let clusterEndpoints: readonly Endpoint[] = none;
  if (usesClusterEndpoints(policy)) {
    const zone = node.zone;
    const topology = useZoneHints(endpoints, zone);
    clusterEndpoints = endpoints.filter(
      (endpoint) => endpoint.ready && (!topology || (endpoint.zoneHints?.includes(zone as string) ?? false)),
    );
    // No ready endpoint anywhere (topology never empties the list: it is only used when some
    // ready endpoint matches): fall back to serving+terminating ones, ignoring topology.
    if (clusterEndpoints.length === 0) {
      clusterEndpoints = endpoints.filter((endpoint) => endpoint.serving && endpoint.terminating);
    }
  }

  let localEndpoints: readonly Endpoint[] = none;
  if (usesLocalEndpoints(policy)) {
    // Independently of the cluster list: ready local endpoints, else serving+terminating local ones.
    localEndpoints = endpoints.filter((endpoint) => endpoint.isLocal && endpoint.ready);
    if (localEndpoints.length === 0) {
      localEndpoints = endpoints.filter((endpoint) => endpoint.isLocal && endpoint.serving && endpoint.terminating);
    }
  }

  return { clusterEndpoints, localEndpoints, reachableEndpoints: union(endpoints, clusterEndpoints, localEndpoints), hasAnyEndpoints };
}

/** The union in `all` order (upstream builds it through a map, in random order). */
function union(all: readonly Endpoint[], first: readonly Endpoint[], second: readonly Endpoint[]): readonly Endpoint[] {
  if (second.length === 0) return first;
  if (first.length === 0) return second;
  const members = new Set<Endpoint>(first);
  for (const endpoint of second) members.add(endpoint);
  if (members.size === first.length) return first;
  return all.filter((endpoint) => members.has(endpoint));
}
