// The cluster's ServiceCIDR objects (networking.k8s.io/v1) as the CIDR list the nftables mode's
// "Drop traffic to unallocated ClusterIPs" rule names. As upstream's ServiceCIDRConfig: every CIDR
// of every object, each proxier taking its own family's. Pure.

import type { V1ServiceCIDR } from '@kubernetes/client-node';
import { parseCidr, type IPFamily } from '../ip.js';

/** The CIDRs of each ServiceCIDR object by name; a new value whenever one changes. */
export class ServiceCIDRIndex {
  private readonly byName = new Map<string, readonly string[]>();

  /** Records an added or updated object; true when the union of CIDRs changed. */
  upsert(object: V1ServiceCIDR): boolean {
    const before = this.all();
    this.byName.set(object.metadata?.name ?? '', [...(object.spec?.cidrs ?? [])]);
    return !sameList(before, this.all());
  }

  /** Forgets a deleted object; true when the union of CIDRs changed. */
  delete(name: string): boolean {
    const before = this.all();
    this.byName.delete(name);
    return !sameList(before, this.all());
  }

  /** Every valid CIDR of every object, once each, sorted. */
  all(): readonly string[] {
    const cidrs = new Set<string>();
    for (const list of this.byName.values()) for (const text of list) if (parseCidr(text) !== undefined) cidrs.add(text);
    return [...cidrs].sort();
  }

  /** The CIDRs of one family (upstream's OnServiceCIDRsChanged). */
  ofFamily(family: IPFamily): readonly string[] {
    return this.all().filter((text) => parseCidr(text)?.family === family);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}
