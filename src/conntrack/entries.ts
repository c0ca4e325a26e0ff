// Reads `conntrack -L -p udp` output and tells which queued deletions have anything to delete.
// Every `conntrack -D` walks the whole conntrack table in the kernel (about 14 ms at 262,144
// buckets here), so one listing (one walk) that drops the filters matching nothing is cheaper than
// running them all; upstream lists once and filters in process too. Pure.

import type { IPFamily } from '../ip.js';
import type { ConntrackDeletion } from './plan.js';

/** The parts of a UDP conntrack entry the deletions look at. */
export interface UdpFlow {
  /** Absent: IPv4. */
  readonly family?: IPFamily;
  readonly originalDestination: string;
  readonly originalDestinationPort: number;
  /** The reply's source: the endpoint a DNATed flow goes to (the destination itself when not DNATed). */
  readonly replySource: string;
}

const TUPLE = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/g;

/** Entries as `conntrack -L` prints them (`udp 17 29 src=.. dst=.. sport=.. dport=.. [UNREPLIED] src=.. ...`). */
export function parseUdpFlows(listing: string, family: IPFamily = 'IPv4'): UdpFlow[] {
  const flows: UdpFlow[] = [];
  for (const line of listing.split('\n')) {
    if (!line.startsWith('udp ')) continue;
    const tuples = [...line.matchAll(TUPLE)];
    const original = tuples[0];
    const reply = tuples[1];
    if (original === undefined || reply === undefined) continue;
    flows.push({ ...(family === 'IPv6' ? { family } : {}), originalDestination: original[2] ?? '', originalDestinationPort: Number(original[4]), replySource: reply[1] ?? '' });
  }
  return flows;
}

/**
 * The deletions whose filter (plan.ts conntrackArgs) matches at least one listed flow, by
 * set lookups (no deletions x flows loop).
 */
export function deletionsWithFlows<T extends { readonly deletion: ConntrackDeletion }>(queued: readonly T[], flows: readonly UdpFlow[]): T[] {
  const byDestination = new Set<string>();
  const byDestinationAndReply = new Set<string>();
  // A NodePort filter names no address, only its family: the port is looked up per family.
  const byPort = new Set<string>();
  const byPortAndReply = new Set<string>();
  for (const flow of flows) {
    const destination = `${flow.originalDestination}:${flow.originalDestinationPort}`;
    byDestination.add(destination);
    byDestinationAndReply.add(`${destination} ${flow.replySource}`);
    byPort.add(`${flow.family ?? 'IPv4'} ${flow.originalDestinationPort}`);
    byPortAndReply.add(`${flow.originalDestinationPort} ${flow.replySource}`);
  }
  return queued.filter(({ deletion }) => {
    switch (deletion.kind) {
      case 'service-ip-endpoint':
        return byDestinationAndReply.has(`${deletion.serviceIP}:${deletion.port} ${deletion.endpointIP}`);
      case 'node-port-endpoint':
        return byPortAndReply.has(`${deletion.nodePort} ${deletion.endpointIP}`);
      case 'service-ip':
        return byDestination.has(`${deletion.serviceIP}:${deletion.port}`);
      case 'node-port':
        return byPort.has(`${deletion.family ?? 'IPv4'} ${deletion.nodePort}`);
      default: {
        const unreachable: never = deletion;
        return unreachable;
      }
    }
  });
}
