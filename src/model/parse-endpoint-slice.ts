// Parses an untrusted discovery.k8s.io/v1 EndpointSlice once into what kube-proxy's
// EndpointSliceCache keeps: ports, and per endpoint addresses[0], node, zone, hints and conditions.
import type { V1EndpointSlice } from '@kubernetes/client-node';
import {
  asArray,
  asRecord,
  asString,
  asStringMap,
  asTime,
  hasKey,
  isNamespaceName,
  isObjectName,
  isServiceName,
  isPortName,
  isPortNumber,
  parseProtocol,
  quote,
  SkipCollector,
} from './fields.js';
import { parseIP, type IPFamily } from '../ip.js';
import type { Protocol, Skipped } from './types.js';
import { annotationLastChangeTriggerTime, labelHeadless, labelServiceName, labelServiceProxyName } from './well-known.js';


export interface ParsedSlicePort {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
}

export interface ParsedSliceEndpoint {
  readonly ip: string;
  readonly nodeName: string | undefined;
  readonly zone: string | undefined;
  /** Sorted, deduplicated `hints.forZones[].name`; undefined when there are none. */
  readonly zoneHints: readonly string[] | undefined;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
}

export interface ParsedEndpointSlice {
  readonly namespace: string;
  readonly name: string;
  /** `ns/sliceName`. */
  readonly key: string;
  /** `ns/serviceName`, from the kubernetes.io/service-name label. */
  readonly serviceKey: string;
  readonly ports: readonly ParsedSlicePort[];
  /**
   * One per IP (see preferredDuplicate), sorted so that for any one port they are in kube-proxy's
   * "ip:port" string order: a Service with a single slice then needs no merge work.
   */
  readonly endpoints: readonly ParsedSliceEndpoint[];
}

/** Of two endpoints with the same address, whether `candidate` should replace `existing`. The
 * same address can appear twice: an endpoint moving between slices, or a pod IP reused while the
 * old pod still terminates. Prefer the non-terminating one (upstream does since 1.36, #135593;
 * before that it kept whichever came first in Go map order); otherwise the first seen wins. */
export function preferredDuplicate(existing: { readonly terminating: boolean }, candidate: { readonly terminating: boolean }): boolean {
  return existing.terminating && !candidate.terminating;
}

/** Orders IPs as their "ip:port" strings (`[ip]:port` for IPv6, Go's JoinHostPort) order for any
 * one port: as if each ended in ':' (IPv4) or ']' (IPv6). */
function byAddress(family: IPFamily): (a: ParsedSliceEndpoint, b: ParsedSliceEndpoint) => number {
  const end = family === 'IPv6' ? 93 : 58;
  return (a, b) => {
    const left = a.ip;
    const right = b.ip;
    const length = Math.max(left.length, right.length);
    for (let i = 0; i < length; i++) {
      const l = i < left.length ? left.charCodeAt(i) : end;
      const r = i < right.length ? right.charCodeAt(i) : end;
      if (l !== r) return l - r;
    }
    return 0;
  };
}

/** Why a valid EndpointSlice contributes nothing (not an error). */
/** `ipv6`/`ipv4`: the slice holds the other family's addresses (valid, another proxier's). `fqdn`:
 * valid and for no proxy (upstream ignores them silently too). */
export type SliceIgnoredReason = Lowercase<IPFamily> | 'fqdn' | 'service-proxy-name-label' | 'headless-label';

export type EndpointSliceParse =
  | {
      readonly kind: 'usable';
      readonly slice: ParsedEndpointSlice;
      /** The last-change-trigger-time annotation in ms; kept apart so it never makes a change. */
      readonly triggerTime: number | undefined;
      readonly skipped: readonly Skipped[];
    }
  | { readonly kind: 'ignored'; readonly namespace: string; readonly name: string; readonly why: SliceIgnoredReason }
  | { readonly kind: 'invalid'; readonly namespace: string; readonly name: string; readonly skipped: readonly Skipped[] };

export function parseEndpointSlice(endpointSlice: V1EndpointSlice, family: IPFamily = 'IPv4'): EndpointSliceParse {
  const source = asRecord(endpointSlice);
  const metadata = asRecord(source['metadata']);
  const rawNamespace = asString(metadata['namespace']);
  const rawName = asString(metadata['name']);
  const namespace = rawNamespace ?? '';
  const name = rawName ?? '';
  const skip = new SkipCollector('EndpointSlice', namespace, name);
  const invalid = (): EndpointSliceParse => ({ kind: 'invalid', namespace, name, skipped: skip.entries });

  if (!isNamespaceName(rawNamespace)) {
    skip.add('invalid-name', `metadata.namespace ${quote(rawNamespace)} is not a valid namespace (a DNS label of at most 63 characters)`);
    return invalid();
  }
  if (!isObjectName(rawName)) {
    skip.add('invalid-name', `metadata.name ${quote(rawName)} is not a valid name`);
    return invalid();
  }

  // kube-proxy's informers exclude these labels for Services and EndpointSlices alike.
  const labels = asStringMap(metadata['labels']);
  if (hasKey(labels, labelServiceProxyName)) return { kind: 'ignored', namespace, name, why: 'service-proxy-name-label' };
  if (hasKey(labels, labelHeadless)) return { kind: 'ignored', namespace, name, why: 'headless-label' };

  const addressType = source['addressType'];
  // Slices of the other family are valid, just not this model's: ignored without counting as invalid.
  if (addressType !== family && (addressType === 'IPv4' || addressType === 'IPv6')) {
    return { kind: 'ignored', namespace, name, why: addressType === 'IPv6' ? 'ipv6' : 'ipv4' };
  }
  if (addressType === 'FQDN') return { kind: 'ignored', namespace, name, why: 'fqdn' };
  if (addressType !== family) {
    skip.add('unsupported-address-type', `addressType ${quote(addressType)} is not supported (${family} only)`);
    return invalid();
  }

  const serviceName = labels[labelServiceName];
  if (serviceName === undefined || serviceName === '') {
    skip.add('missing-service-name-label', `metadata.labels["${labelServiceName}"] is missing`);
    return invalid();
  }
  if (!isServiceName(serviceName)) {
    skip.add('invalid-name', `metadata.labels["${labelServiceName}"] ${quote(serviceName)} is not a valid Service name (a DNS-1035 label of at most 63 characters)`);
    return invalid();
  }

  const slice: ParsedEndpointSlice = {
    namespace,
    name,
    key: `${namespace}/${name}`,
    serviceKey: `${namespace}/${serviceName}`,
    ports: parseSlicePorts(source['ports'], skip),
    endpoints: uniqueByAddress(parseSliceEndpoints(source['endpoints'], family, skip).sort(byAddress(family))),
  };
  const triggerTime = asTime(asStringMap(metadata['annotations'])[annotationLastChangeTriggerTime]);
  return { kind: 'usable', slice, triggerTime, skipped: skip.entries };
}

function parseSlicePorts(value: unknown, skip: SkipCollector): ParsedSlicePort[] {
  const ports: ParsedSlicePort[] = [];
  asArray(value).forEach((entry, index) => {
    const record = asRecord(entry);
    const path = `ports[${index}]`;
    const port = record['port'];
    // A nil port means "all ports" in the API; kube-proxy does not support that and ignores it.
    if (port === undefined || port === null) return;
    // Deliberate deviation: kube-proxy ignores a port whose name is nil; the EndpointSlice
    // controller always writes "" for unnamed ports, so we read a missing name as "" too.
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
    if (!isPortNumber(port)) {
      skip.add('invalid-port', `${path}.port ${quote(port)} is not a port number`);
      return;
    }
    ports.push({ name, protocol, port });
  });
  return ports;
}

function parseSliceEndpoints(value: unknown, family: IPFamily, skip: SkipCollector): ParsedSliceEndpoint[] {
  const entries = asArray(value);
  const endpoints: ParsedSliceEndpoint[] = [];
  // A plain loop with few allocations: this runs for every endpoint of every slice.
  for (let index = 0; index < entries.length; index++) {
    const record = asRecord(entries[index]);
    // kube-proxy only ever looks at addresses[0].
    const addresses = record['addresses'];
    const address: unknown = Array.isArray(addresses) ? addresses[0] : undefined;
    if (address === undefined) {
      skip.add('invalid-field', `endpoints[${index}].addresses is empty`);
      continue;
    }
    const ip = typeof address === 'string' ? parseIP(address, family) : undefined;
    if (ip === undefined) {
      skip.add('invalid-ip', `endpoints[${index}].addresses[0] ${quote(address)} is not an ${family} address`);
      continue;
    }
    const conditions = asRecord(record['conditions']);
    const nodeName = asString(record['nodeName']);
    const zone = asString(record['zone']);
    endpoints.push({
      ip,
      nodeName: nodeName === '' ? undefined : nodeName,
      zone: zone === '' ? undefined : zone,
      zoneHints: parseZoneHints(record['hints']),
      // Nil conditions, per the API and kube-proxy: ready and serving mean true, terminating false.
      ready: conditions['ready'] !== false,
      serving: conditions['serving'] !== false,
      terminating: conditions['terminating'] === true,
    });
  }
  return endpoints;
}

/** Drops duplicate IPs from a stably sorted list, where they sit next to each other in input order. */
function uniqueByAddress(sorted: ParsedSliceEndpoint[]): ParsedSliceEndpoint[] {
  const result: ParsedSliceEndpoint[] = [];
  for (const endpoint of sorted) {
    const last = result[result.length - 1];
    if (last === undefined || last.ip !== endpoint.ip) result.push(endpoint);
    else if (preferredDuplicate(last, endpoint)) result[result.length - 1] = endpoint;
  }
  return result;
}

/** Sorted, deduplicated zone names, or undefined when there are none. */
function parseZoneHints(hints: unknown): readonly string[] | undefined {
  if (hints === undefined || hints === null) return undefined;
  const forZones = asArray(asRecord(hints)['forZones']);
  const names: string[] = [];
  for (const hint of forZones) {
    const name = asString(asRecord(hint)['name']);
    if (name !== undefined && name !== '' && !names.includes(name)) names.push(name);
  }
  return names.length > 0 ? names.sort() : undefined;
}
