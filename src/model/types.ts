// The desired state of one node: which virtual IPs/ports exist and where they lead, after
// endpoint selection. Plain immutable data; the contract between k8s/ (input) and render/ (output).

import type { IPFamily } from '../ip.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type TrafficPolicy = 'Cluster' | 'Local';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export type SessionAffinity =
  | { readonly kind: 'None' }
  | { readonly kind: 'ClientIP'; readonly timeoutSeconds: number };

/** One endpoint of one service port, after merging every EndpointSlice of the Service. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  readonly nodeName: string | undefined;
  readonly zone: string | undefined;
  /** `hints.forZones[].name`; undefined when the slice carries no hints for this endpoint. */
  readonly zoneHints: readonly string[] | undefined;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  /** nodeName equals this node's name. */
  readonly isLocal: boolean;
}

/**
 * One port of one Service, as kube-proxy's ServicePort: everything the renderer needs.
 * `key` is stable and unique: `ns/name:portName/protocol` (portName may be empty).
 */
export interface ServicePort {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  /** kube-proxy's ServicePortName.String(): `ns/name:portName`, or `ns/name` when portName is ''. */
  readonly servicePortName: string;
  readonly protocol: Protocol;
  readonly type: ServiceType;
  /** Cluster IPs of the model's family (the other family's are another proxier's). Never empty for a rendered port. */
  readonly clusterIPs: readonly string[];
  readonly port: number;
  /** 0 when none. */
  readonly nodePort: number;
  readonly externalIPs: readonly string[];
  /** `status.loadBalancer.ingress[].ip` of the model's family. */
  readonly loadBalancerIPs: readonly string[];
  /** Normalised CIDRs of the model's family (`a.b.c.d/n`). Empty = allow all. */
  readonly loadBalancerSourceRanges: readonly string[];
  readonly sessionAffinity: SessionAffinity;
  /** Effective policy (kube-proxy's ExternalPolicyLocal): 'Local' only for NodePort/LoadBalancer
   * Services or Services with externalIPs; otherwise 'Cluster' whatever the spec says. */
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  /** 0 when none (only set for LoadBalancer with externalTrafficPolicy Local, as kube-proxy's NeedsHealthCheck). */
  readonly healthCheckNodePort: number;
  /** Every endpoint for this port, one per `ip:port`, sorted like kube-proxy: by the string `ip:port`
   * (so `10.0.0.10:80` comes before `10.0.0.1:80`). */
  readonly allEndpoints: readonly Endpoint[];
  /** Endpoints that cluster-wide traffic policy uses (ready; else serving+terminating; topology applied). Empty when the port does not use cluster endpoints. */
  readonly clusterEndpoints: readonly Endpoint[];
  /** Node-local endpoints for Local traffic policies (ready local; else serving+terminating local). Empty when the port does not use local endpoints. */
  readonly localEndpoints: readonly Endpoint[];
  /** Union of cluster and local endpoints, in allEndpoints order: the KUBE-SEP chains to render. */
  readonly reachableEndpoints: readonly Endpoint[];
}

/** This node, as the model needs it. */
export interface NodeInfo {
  readonly name: string;
  /** Primary address(es) of the node in the model's family, from config or Node.status.addresses (InternalIP first). */
  readonly ips: readonly string[];
  readonly zone: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
  /** The pod CIDRs of the model's family the Node was given (`spec.podCIDRs`, else `spec.podCIDR`); for detectLocalMode NodeCIDR. */
  readonly podCIDRs: readonly string[];
}

/** Why an input object (or part of one) was not used. Stable values: they label a metric. */
export type SkipReason =
  | 'invalid-name'
  | 'invalid-ip'
  | 'invalid-port'
  | 'unknown-protocol'
  | 'invalid-cidr'
  | 'unsupported-address-type'
  | 'missing-service-name-label'
  | 'invalid-field'
  | 'port-clash';

export interface Skipped {
  readonly kind: 'Service' | 'EndpointSlice' | 'Node';
  readonly namespace: string;
  readonly name: string;
  readonly reason: SkipReason;
  /** Human-readable detail naming the field, e.g. `spec.clusterIPs[0] "10.0.0.999" is not an IPv4 address`. */
  readonly detail: string;
}

/** Desired state for one node. Service ports keep their object identity while unchanged, so
 * downstream caches (the renderer's) can compare by reference. */
export interface DesiredState {
  /** The one address family every IP and CIDR below belongs to. */
  readonly family: IPFamily;
  readonly node: NodeInfo;
  /** Keyed by ServicePort.key. */
  readonly servicePorts: ReadonlyMap<string, ServicePort>;
}
