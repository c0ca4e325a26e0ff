// Who owns each node port. The apiserver's allocator normally prevents two Services sharing a
// nodePort+protocol, but a restored etcd or a buggy writer can produce one; then the older Service
// (creationTimestamp, tie: ns/name) keeps it and the other's service port is programmed without
// it (its cluster, external and load-balancer IPs keep working), instead of both programming the same
// KUBE-NODEPORTS match and one silently shadowing the other (upstream writes both).
import { deepEqual } from './equal.js';
import type { ParsedService } from './parse.js';
import type { Skipped } from './types.js';

interface Claim {
  readonly serviceKey: string;
  readonly namespace: string;
  readonly name: string;
  readonly createdAt: number;
  readonly portIndex: number;
  readonly nodePort: number;
  readonly protocol: string;
}

export interface LostClaim {
  readonly portIndex: number;
  readonly skipped: Skipped;
}

function claimKey(nodePort: number, protocol: string): string {
  return `${nodePort}/${protocol}`;
}

function precedes(a: Claim, b: Claim): boolean {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt;
  if (a.serviceKey !== b.serviceKey) return a.serviceKey < b.serviceKey;
  return a.portIndex < b.portIndex;
}

export class NodePortClaims {
  private readonly byNodePort = new Map<string, Claim[]>();
  private readonly byService = new Map<string, readonly Claim[]>();

  /**
   * Replaces the claims of `serviceKey` (none when `service` is undefined) and returns the keys of
   * every Service whose outcome may have changed: all claimants of the node ports touched.
   */
  update(serviceKey: string, service: ParsedService | undefined): ReadonlySet<string> {
    const affected = new Set<string>();
    const previous = this.byService.get(serviceKey) ?? [];
    const next: Claim[] = [];
    if (service !== undefined) {
      for (const port of service.ports) {
        if (port.nodePort === 0) continue;
        next.push({
          serviceKey,
          namespace: service.namespace,
          name: service.name,
          // A Service without a timestamp is treated as the newest: it never evicts a dated one.
          createdAt: service.createdAt ?? Number.POSITIVE_INFINITY,
          portIndex: port.index,
          nodePort: port.nodePort,
          protocol: port.protocol,
        });
      }
    }
    // Unchanged claims cannot change anyone else's outcome.
    if (deepEqual(previous, next)) return affected;

    for (const claim of previous) {
      const key = claimKey(claim.nodePort, claim.protocol);
      const remaining = (this.byNodePort.get(key) ?? []).filter((other) => other.serviceKey !== serviceKey);
      if (remaining.length === 0) this.byNodePort.delete(key);
      else this.byNodePort.set(key, remaining);
      for (const other of remaining) affected.add(other.serviceKey);
    }
    for (const claim of next) {
      const key = claimKey(claim.nodePort, claim.protocol);
      const claims = this.byNodePort.get(key) ?? [];
      claims.push(claim);
      this.byNodePort.set(key, claims);
      for (const other of claims) affected.add(other.serviceKey);
    }
    if (next.length === 0) this.byService.delete(serviceKey);
    else this.byService.set(serviceKey, next);
    affected.add(serviceKey);
    return affected;
  }

  /** The service ports of `serviceKey` that lose their node port to another claimant. */
  lost(serviceKey: string): LostClaim[] {
    const result: LostClaim[] = [];
    for (const claim of this.byService.get(serviceKey) ?? []) {
      const claims = this.byNodePort.get(claimKey(claim.nodePort, claim.protocol)) ?? [];
      let winner = claim;
      for (const other of claims) if (precedes(other, winner)) winner = other;
      if (winner === claim) continue;
      const owner = winner.serviceKey === serviceKey ? `spec.ports[${winner.portIndex}]` : winner.serviceKey;
      result.push({
        portIndex: claim.portIndex,
        skipped: {
          kind: 'Service',
          namespace: claim.namespace,
          name: claim.name,
          reason: 'port-clash',
          detail: `spec.ports[${claim.portIndex}].nodePort ${claim.nodePort}/${claim.protocol} is already used by ${owner}; the port is programmed without it`,
        },
      });
    }
    return result;
  }
}
