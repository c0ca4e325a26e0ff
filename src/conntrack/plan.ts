// Which UDP conntrack entries must go after a sync, so UDP clients stop sending to endpoints that
// left and to service IPs that had no endpoints (kube-proxy's stale-UDP cleanup; field failure
// kubernetes #139628: a stale entry blackholed traffic for hours after a scale to zero). Pure.
// Each deletion is one `conntrack -D` filter, and every filter costs the kernel a walk of the whole
// conntrack table, so the plan keeps them few: a service port left without endpoints gets one
// filter per service IP and NodePort, not one per endpoint that left.

import type { IPFamily } from '../ip.js';
import type { DesiredState, ServicePort } from '../model/types.js';

/** One filter; `family` IPv6 for an IPv6 model's flows (absent: IPv4, the tool's default). */
export type ConntrackDeletion = ConntrackFilter & { readonly family?: IPFamily };

type ConntrackFilter =
  /** Flows to a service IP (cluster, external or LB) that were DNATed to a removed endpoint. */
  | { readonly kind: 'service-ip-endpoint'; readonly serviceIP: string; readonly port: number; readonly endpointIP: string }
  /** Flows to a NodePort that were DNATed to a removed endpoint. */
  | { readonly kind: 'node-port-endpoint'; readonly nodePort: number; readonly endpointIP: string }
  /** Every flow to a service IP: it had no endpoints before (its flows were never DNATed), or it has
   * none left (every DNATed flow is stale). */
  | { readonly kind: 'service-ip'; readonly serviceIP: string; readonly port: number }
  /** Every flow to a NodePort, for the same two reasons. */
  | { readonly kind: 'node-port'; readonly nodePort: number };

function serviceIPs(servicePort: ServicePort): string[] {
  return [...servicePort.clusterIPs, ...servicePort.externalIPs, ...servicePort.loadBalancerIPs];
}

function endpointIPs(servicePort: ServicePort | undefined): Set<string> {
  return new Set((servicePort?.reachableEndpoints ?? []).map((endpoint) => endpoint.ip));
}

/**
 * Compares two desired states (before and after a successful sync). Only UDP ports matter:
 * TCP flows to a removed endpoint fail visibly and get reset; UDP ones silently stick.
 */
export function planConntrackCleanup(previous: DesiredState | undefined, next: DesiredState): ConntrackDeletion[] {
  if (previous === undefined) return [];
  const deletions: ConntrackDeletion[] = [];
  const seen = new Set<string>();
  const add = (deletion: ConntrackDeletion): void => {
    const key = JSON.stringify(deletion);
    if (seen.has(key)) return;
    seen.add(key);
    deletions.push(next.family === 'IPv6' ? { ...deletion, family: 'IPv6' } : deletion);
  };
  for (const [key, before] of previous.servicePorts) {
    if (before.protocol !== 'UDP') continue;
    const after = next.servicePorts.get(key);
    if (after === before) continue;
    const kept = endpointIPs(after);
    if (kept.size === 0 && before.reachableEndpoints.length > 0) {
      for (const serviceIP of serviceIPs(before)) add({ kind: 'service-ip', serviceIP, port: before.port });
      if (before.nodePort !== 0) add({ kind: 'node-port', nodePort: before.nodePort });
      continue;
    }
    for (const endpointIP of endpointIPs(before)) {
      if (kept.has(endpointIP)) continue;
      for (const serviceIP of serviceIPs(before)) add({ kind: 'service-ip-endpoint', serviceIP, port: before.port, endpointIP });
      if (before.nodePort !== 0) add({ kind: 'node-port-endpoint', nodePort: before.nodePort, endpointIP });
    }
  }
  for (const [key, after] of next.servicePorts) {
    if (after.protocol !== 'UDP' || after.reachableEndpoints.length === 0) continue;
    const before = previous.servicePorts.get(key);
    if (before !== undefined && before.reachableEndpoints.length > 0) continue;
    for (const serviceIP of serviceIPs(after)) add({ kind: 'service-ip', serviceIP, port: after.port });
    if (after.nodePort !== 0) add({ kind: 'node-port', nodePort: after.nodePort });
  }
  return deletions;
}

/** Identifies a deletion (queues merge repeated ones). */
export function conntrackDeletionKey(deletion: ConntrackDeletion): string {
  return conntrackArgs(deletion).join(' ');
}

/**
 * `conntrack` arguments for one deletion (without the binary and any netns prefix). The endpoint is
 * matched as the reply's source, as upstream's filters do: `--dst-nat` would also require the
 * entry's DNAT status bit.
 */
export function conntrackArgs(deletion: ConntrackDeletion): string[] {
  const args = filterArgs(deletion);
  // The tool reads IPv4 unless told otherwise, as kube-proxy's conntrack calls do for IPv6.
  return deletion.family === 'IPv6' ? [...args, '-f', 'ipv6'] : args;
}

function filterArgs(deletion: ConntrackFilter): string[] {
  switch (deletion.kind) {
    case 'service-ip-endpoint':
      return ['-D', '-p', 'udp', '--orig-dst', deletion.serviceIP, '--dport', String(deletion.port), '--reply-src', deletion.endpointIP];
    case 'node-port-endpoint':
      return ['-D', '-p', 'udp', '--dport', String(deletion.nodePort), '--reply-src', deletion.endpointIP];
    case 'service-ip':
      return ['-D', '-p', 'udp', '--orig-dst', deletion.serviceIP, '--dport', String(deletion.port)];
    case 'node-port':
      return ['-D', '-p', 'udp', '--dport', String(deletion.nodePort)];
    default: {
      const unreachable: never = deletion;
      return unreachable;
    }
  }
}
