// Whether the proxy is keeping up, as kube-proxy's /healthz defines it: health means staleness.
// A change that has waited longer than 2 x syncPeriod for a successful sync makes the proxy
// unhealthy; /healthz additionally fails while this Node is being deleted or drained by the
// cluster autoscaler, so load balancers stop sending traffic here first. Pure: the clock is
// injected and nothing here does IO.

import type { IPFamily } from '../ip.js';

/** The taint the cluster autoscaler puts on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** The parts of a Node that eligibility depends on; a client-node V1Node fits as is. */
export interface NodeEligibilityInput {
  readonly metadata?: { readonly deletionTimestamp?: Date | string | null } | undefined;
  readonly spec?: { readonly taints?: readonly { readonly key: string }[] | undefined } | undefined;
}

/** One family's proxier (kube-proxy's ProxierHealth in the `status` map). */
export interface FamilyHealth {
  readonly healthy: boolean;
  /** Its last successful sync (ms since epoch); undefined before the first one. */
  readonly lastUpdatedMs: number | undefined;
}

export interface ProxierHealthSnapshot {
  /** Every proxier (what /livez and healthCheckNodePorts use); node eligibility excluded. */
  readonly healthy: boolean;
  /** The most recent successful sync of any family (ms since epoch); undefined before the first one. */
  readonly lastUpdatedMs: number | undefined;
  readonly currentTimeMs: number;
  /** Node known, not being deleted and not tainted for deletion. */
  readonly nodeEligible: boolean;
  /** Per family, for the families that have synced once (kube-proxy's `status`). */
  readonly families: Readonly<Partial<Record<IPFamily, FamilyHealth>>>;
}

export interface ProxierHealthOptions {
  readonly syncPeriodMs: number;
  /** Milliseconds since the epoch. */
  readonly clock: () => number;
}

/**
 * Health of every family's proxier, as kube-proxy's ProxyHealthServer keeps it: per family the
 * last successful sync and the oldest change no sync has applied; the proxy is healthy when every
 * family is. A family that fails cannot hide behind the other one's successes.
 */
export class ProxierHealth {
  /** kube-proxy allows two sync periods: one may legitimately pass before a periodic sync. */
  readonly healthTimeoutMs: number;
  private readonly clock: () => number;
  private readonly lastUpdatedMs = new Map<IPFamily, number>();
  private readonly oldestPendingMs = new Map<IPFamily, number>();
  // Unknown until the Node object arrives; kube-proxy reports a missing node as ineligible.
  private eligible = false;

  constructor(options: ProxierHealthOptions) {
    this.healthTimeoutMs = 2 * options.syncPeriodMs;
    this.clock = options.clock;
  }

  /** Changes arrived that `family`'s proxier has not applied yet. Only the oldest pending change counts. */
  queued(atMs: number = this.clock(), family: IPFamily = 'IPv4'): void {
    if (!this.oldestPendingMs.has(family)) this.oldestPendingMs.set(family, atMs);
  }

  /** `family`'s sync succeeded: nothing of it is pending any more. */
  updated(atMs: number = this.clock(), family: IPFamily = 'IPv4'): void {
    this.oldestPendingMs.delete(family);
    this.lastUpdatedMs.set(family, atMs);
  }

  /** The Node object as last seen; undefined when it is gone or not known. */
  syncNode(node: NodeEligibilityInput | undefined): void {
    const deletionTimestamp = node?.metadata?.deletionTimestamp;
    this.eligible =
      node !== undefined &&
      (deletionTimestamp === undefined || deletionTimestamp === null) &&
      !(node.spec?.taints ?? []).some((taint) => taint.key === TO_BE_DELETED_TAINT);
  }

  nodeEligible(): boolean {
    return this.eligible;
  }

  /**
   * kube-proxy's rule, per family: healthy until its first successful sync (starting up), and
   * afterwards unhealthy only while some change has been pending for at least the timeout.
   */
  isHealthy(nowMs: number = this.clock()): boolean {
    for (const family of this.lastUpdatedMs.keys()) if (!this.familyHealthy(family, nowMs)) return false;
    return true;
  }

  snapshot(nowMs: number = this.clock()): ProxierHealthSnapshot {
    const families: Partial<Record<IPFamily, FamilyHealth>> = {};
    let lastUpdatedMs: number | undefined;
    for (const [family, updatedMs] of this.lastUpdatedMs) {
      families[family] = { healthy: this.familyHealthy(family, nowMs), lastUpdatedMs: updatedMs };
      lastUpdatedMs = Math.max(lastUpdatedMs ?? updatedMs, updatedMs);
    }
    return { healthy: this.isHealthy(nowMs), lastUpdatedMs, currentTimeMs: nowMs, nodeEligible: this.eligible, families };
  }

  private familyHealthy(family: IPFamily, nowMs: number): boolean {
    const pendingMs = this.oldestPendingMs.get(family);
    if (!this.lastUpdatedMs.has(family) || pendingMs === undefined) return true;
    return nowMs - pendingMs < this.healthTimeoutMs;
  }
}
