// Parses an untrusted V1Service once into the precise values the model needs, following kube-proxy's
// newBaseServiceInfo / ShouldSkipService semantics, or into Skipped entries naming the bad field.
// One bad field skips the smallest thing it can: an IP, a port, and only then the whole Service.
import type { V1Service } from '@kubernetes/client-node';
import {
  asArray,
  asRecord,
  asString,
  asStringMap,
  asTime,
  hasKey,
  isNamespaceName,
  isServiceName,
  isPortName,
  isPortNumber,
  parseProtocol,
  quote,
  SkipCollector,
} from './fields.js';
import { familyOf, parseCidr, type IPFamily } from '../ip.js';
import type { Protocol, ServiceType, SessionAffinity, Skipped, TrafficPolicy } from './types.js';
import { labelHeadless, labelServiceProxyName } from './well-known.js';

export { parseEndpointSlice } from './parse-endpoint-slice.js';
export type { EndpointSliceParse, ParsedEndpointSlice, ParsedSliceEndpoint, ParsedSlicePort } from './parse-endpoint-slice.js';

export const defaultSessionAffinityTimeoutSeconds = 10800;
const maxSessionAffinityTimeoutSeconds = 86400;

export interface ParsedServicePort {
  /** Position in spec.ports, for details that name the field. */
  readonly index: number;
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** 0 when none; only NodePort and LoadBalancer Services have one. */
  readonly nodePort: number;
}

/** A Service that kube-proxy would program. Policies are the effective ones (see parseService). */
export interface ParsedService {
  readonly namespace: string;
  readonly name: string;
  /** `ns/name`. */
  readonly key: string;
  /** metadata.creationTimestamp in ms; decides node port clashes. */
  readonly createdAt: number | undefined;
  readonly type: ServiceType;
  readonly clusterIPs: readonly string[];
  readonly ports: readonly ParsedServicePort[];
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly loadBalancerSourceRanges: readonly string[];
  readonly sessionAffinity: SessionAffinity;
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly healthCheckNodePort: number;
}

/** Why a valid Service gets no data-plane state. Not an error, so not a SkipReason. */
export type NotProxiedReason =
  | 'headless'
  | 'external-name'
  | 'no-cluster-ip'
  /** No cluster IP of the family this model serves (e.g. an IPv6-only Service for the IPv4 proxier). */
  | `no-${Lowercase<IPFamily>}-cluster-ip`
  | 'service-proxy-name-label'
  | 'headless-label';

export type ServiceParse =
  | { readonly kind: 'proxied'; readonly service: ParsedService; readonly skipped: readonly Skipped[] }
  | { readonly kind: 'not-proxied'; readonly namespace: string; readonly name: string; readonly why: NotProxiedReason }
  | { readonly kind: 'invalid'; readonly namespace: string; readonly name: string; readonly skipped: readonly Skipped[] };

/** Reads the addresses of `family` only; the other family's are valid, just not this model's. */
export function parseService(service: V1Service, family: IPFamily = 'IPv4'): ServiceParse {
  const metadata = asRecord(service.metadata);
  const spec = asRecord(service.spec);
  const rawNamespace = asString(metadata['namespace']);
  const rawName = asString(metadata['name']);
  const namespace = rawNamespace ?? '';
  const name = rawName ?? '';
  const skip = new SkipCollector('Service', namespace, name);
  const invalid = (): ServiceParse => ({ kind: 'invalid', namespace, name, skipped: skip.entries });
  const notProxied = (why: NotProxiedReason): ServiceParse => ({ kind: 'not-proxied', namespace, name, why });

  if (!isNamespaceName(rawNamespace)) {
    skip.add('invalid-name', `metadata.namespace ${quote(rawNamespace)} is not a valid namespace (a DNS label of at most 63 characters)`);
    return invalid();
  }
  if (!isServiceName(rawName)) {
    skip.add('invalid-name', `metadata.name ${quote(rawName)} is not a valid Service name (a DNS-1035 label of at most 63 characters)`);
    return invalid();
  }

  const labels = asStringMap(metadata['labels']);
  if (hasKey(labels, labelServiceProxyName)) return notProxied('service-proxy-name-label');
  if (hasKey(labels, labelHeadless)) return notProxied('headless-label');

  const rawType = spec['type'];
  let type: ServiceType;
  if (rawType === undefined || rawType === null) type = 'ClusterIP';
  else if (rawType === 'ExternalName') return notProxied('external-name');
  else if (rawType === 'ClusterIP' || rawType === 'NodePort' || rawType === 'LoadBalancer') type = rawType;
  else {
    skip.add('invalid-field', `spec.type ${quote(rawType)} is not a known Service type`);
    return invalid();
  }

  // kube-proxy reads clusterIPs by family, falling back to clusterIP for old objects.
  const clusterIPsField = asArray(spec['clusterIPs']);
  const clusterIPsPath = clusterIPsField.length > 0 ? 'spec.clusterIPs' : 'spec.clusterIP';
  const rawClusterIPs = clusterIPsField.length > 0 ? clusterIPsField : spec['clusterIP'] === undefined ? [] : [spec['clusterIP']];
  const first = rawClusterIPs[0];
  if (first === 'None') return notProxied('headless');
  if (first === undefined || first === null || first === '') return notProxied('no-cluster-ip');
  const clusterIPs: string[] = [];
  rawClusterIPs.forEach((value, index) => {
    const path = clusterIPsField.length > 0 ? `${clusterIPsPath}[${index}]` : clusterIPsPath;
    const found = typeof value === 'string' ? familyOf(value) : undefined;
    if (found === family) clusterIPs.push(value as string);
    else if (found === undefined) skip.add('invalid-ip', `${path} ${quote(value)} is not an IP address`);
  });
  if (clusterIPs.length === 0) return skip.entries.length > 0 ? invalid() : notProxied(family === 'IPv4' ? 'no-ipv4-cluster-ip' : 'no-ipv6-cluster-ip');

  const sessionAffinity = parseSessionAffinity(spec, skip);
  if (sessionAffinity === undefined) return invalid();

  const rawExternalTrafficPolicy = parsePolicy(spec['externalTrafficPolicy'], 'spec.externalTrafficPolicy', skip);
  const rawInternalTrafficPolicy = parsePolicy(spec['internalTrafficPolicy'], 'spec.internalTrafficPolicy', skip);
  if (rawExternalTrafficPolicy === undefined || rawInternalTrafficPolicy === undefined) return invalid();

  const rawExternalIPs = asArray(spec['externalIPs']);
  // apiservice.ExternalPolicyLocal: Local only counts for Services reachable from outside, and
  // it counts every spec.externalIPs entry (any family), as upstream does.
  const externallyAccessibleType =
    type === 'NodePort' || type === 'LoadBalancer' || (type === 'ClusterIP' && rawExternalIPs.length > 0);
  const externalTrafficPolicy: TrafficPolicy =
    externallyAccessibleType && rawExternalTrafficPolicy === 'Local' ? 'Local' : 'Cluster';

  const externalIPs = parseIPList(rawExternalIPs, 'spec.externalIPs', family, skip);
  const loadBalancerIPs = type === 'LoadBalancer' ? parseLoadBalancerIPs(service, family, skip) : [];
  const sourceRanges = parseSourceRanges(spec, family, skip);
  const healthCheckNodePort =
    type === 'LoadBalancer' && externalTrafficPolicy === 'Local' ? parseHealthCheckNodePort(spec, skip) : 0;

  const parsed: ParsedService = {
    namespace,
    name,
    key: `${namespace}/${name}`,
    createdAt: asTime(metadata['creationTimestamp']),
    type,
    clusterIPs,
    ports: parsePorts(spec, type, skip),
    externalIPs,
    // A source range we could not read must not widen access to "everyone" (an empty list means
    // allow all), so such a Service loses its load-balancer IPs instead: fail closed.
    loadBalancerIPs: sourceRanges.anyInvalid ? [] : loadBalancerIPs,
    loadBalancerSourceRanges: sourceRanges.cidrs,
    sessionAffinity,
    externalTrafficPolicy,
    internalTrafficPolicy: rawInternalTrafficPolicy,
    healthCheckNodePort,
  };
  return { kind: 'proxied', service: parsed, skipped: skip.entries };
}

function parseSessionAffinity(spec: Readonly<Record<string, unknown>>, skip: SkipCollector): SessionAffinity | undefined {
  const value = spec['sessionAffinity'];
  if (value === undefined || value === null || value === 'None') return { kind: 'None' };
  if (value !== 'ClientIP') {
    skip.add('invalid-field', `spec.sessionAffinity ${quote(value)} is not None or ClientIP`);
    return undefined;
  }
  const timeout = asRecord(asRecord(spec['sessionAffinityConfig'])['clientIP'])['timeoutSeconds'];
  if (timeout === undefined || timeout === null) return { kind: 'ClientIP', timeoutSeconds: defaultSessionAffinityTimeoutSeconds };
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > maxSessionAffinityTimeoutSeconds) {
    skip.add(
      'invalid-field',
      `spec.sessionAffinityConfig.clientIP.timeoutSeconds ${quote(timeout)} is not an integer in 1..${maxSessionAffinityTimeoutSeconds}`,
    );
    return undefined;
  }
  return { kind: 'ClientIP', timeoutSeconds: timeout };
}

function parsePolicy(value: unknown, path: string, skip: SkipCollector): TrafficPolicy | undefined {
  if (value === undefined || value === null || value === 'Cluster') return 'Cluster';
  if (value === 'Local') return 'Local';
  skip.add('invalid-field', `${path} ${quote(value)} is not Cluster or Local`);
  return undefined;
}

/** Entries of `family` in order, deduplicated; the other family's are ignored, invalid ones reported. */
function parseIPList(values: readonly unknown[], path: string, family: IPFamily, skip: SkipCollector): string[] {
  const result: string[] = [];
  values.forEach((value, index) => {
    const found = typeof value === 'string' ? familyOf(value) : undefined;
    if (found === family) {
      if (!result.includes(value as string)) result.push(value as string);
    } else if (found === undefined) {
      skip.add('invalid-ip', `${path}[${index}] ${quote(value)} is not an IP address`);
    }
  });
  return result;
}

function parseLoadBalancerIPs(service: V1Service, family: IPFamily, skip: SkipCollector): string[] {
  const ingress = asArray(asRecord(asRecord(service.status)['loadBalancer'])['ingress']);
  const result: string[] = [];
  ingress.forEach((entry, index) => {
    const record = asRecord(entry);
    const ip = record['ip'];
    // Hostname-only ingress has nothing to program; ipMode Proxy means the load balancer
    // terminates traffic itself, so kube-proxy (IsVIPMode) programs nothing for it either.
    if (ip === undefined || ip === null || ip === '' || record['ipMode'] === 'Proxy') return;
    const found = typeof ip === 'string' ? familyOf(ip) : undefined;
    if (found === family) {
      if (!result.includes(ip as string)) result.push(ip as string);
    } else if (found === undefined) {
      skip.add('invalid-ip', `status.loadBalancer.ingress[${index}].ip ${quote(ip)} is not an IP address`);
    }
  });
  return result;
}

/**
 * spec.loadBalancerSourceRanges, trimmed (validation lets whitespace through, kube-proxy trims it)
 * and normalised. Like kube-proxy (1.2x+), the `service.beta.kubernetes.io/load-balancer-source-ranges`
 * annotation is NOT read: only cloud providers use it.
 */
function parseSourceRanges(
  spec: Readonly<Record<string, unknown>>,
  family: IPFamily,
  skip: SkipCollector,
): { cidrs: string[]; anyInvalid: boolean } {
  const cidrs: string[] = [];
  let anyInvalid = false;
  asArray(spec['loadBalancerSourceRanges']).forEach((value, index) => {
    const parsed = typeof value === 'string' ? parseCidr(value) : undefined;
    if (parsed?.family === family) {
      if (!cidrs.includes(parsed.text)) cidrs.push(parsed.text);
    } else if (parsed === undefined) {
      anyInvalid = true;
      skip.add('invalid-cidr', `spec.loadBalancerSourceRanges[${index}] ${quote(value)} is not a CIDR; load-balancer IPs dropped`);
    }
  });
  return { cidrs, anyInvalid };
}

function parseHealthCheckNodePort(spec: Readonly<Record<string, unknown>>, skip: SkipCollector): number {
  const value = spec['healthCheckNodePort'];
  if (value === undefined || value === null || value === 0) return 0;
  if (isPortNumber(value)) return value;
  skip.add('invalid-port', `spec.healthCheckNodePort ${quote(value)} is not a port number`);
  return 0;
}

function parsePorts(spec: Readonly<Record<string, unknown>>, type: ServiceType, skip: SkipCollector): ParsedServicePort[] {
  const ports: ParsedServicePort[] = [];
  const seen = new Set<string>();
  asArray(spec['ports']).forEach((entry, index) => {
    const record = asRecord(entry);
    const path = `spec.ports[${index}]`;
    const rawName = record['name'];
    const name = rawName === undefined || rawName === null ? '' : rawName;
    if (typeof name !== 'string' || !isPortName(name)) {
      skip.add('invalid-name', `${path}.name ${quote(rawName)} is not a valid port name`);
      return;
    }
    const protocol = parseProtocol(record['protocol']);
    if (protocol === null) {
      skip.add('unknown-protocol', `${path}.protocol ${quote(record['protocol'])} is not TCP, UDP or SCTP`);
      return;
    }
    const port = record['port'];
    if (!isPortNumber(port)) {
      skip.add('invalid-port', `${path}.port ${quote(port)} is not a port number`);
      return;
    }
    let nodePort = 0;
    if (type === 'NodePort' || type === 'LoadBalancer') {
      const rawNodePort = record['nodePort'];
      // LoadBalancer Services may have none (allocateLoadBalancerNodePorts: false).
      if (rawNodePort !== undefined && rawNodePort !== null && rawNodePort !== 0) {
        if (!isPortNumber(rawNodePort)) {
          skip.add('invalid-port', `${path}.nodePort ${quote(rawNodePort)} is not a port number`);
          return;
        }
        nodePort = rawNodePort;
      }
    }
    const identity = `${name}/${protocol}`;
    if (seen.has(identity)) {
      skip.add('invalid-field', `${path} duplicates port name ${quote(name)} with protocol ${protocol}`);
      return;
    }
    seen.add(identity);
    ports.push({ index, name, protocol, port, nodePort });
  });
  return ports;
}
