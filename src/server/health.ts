// Whether the proxy is keeping up, as kube-proxy's /healthz defines it: health means staleness.
// A change that has waited longer than 2 x syncPeriod for a successful sync makes the proxy
// unhealthy; /healthz additionally fails while this Node is being deleted or drained by the
// cluster autoscaler, so load balancers stop sending traffic here first. Pure: the clock is
// injected and nothing here does IO.

/** The taint the cluster autoscaler puts on a node it is about to delete. */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/** The parts of a Node that eligibility depends on; a client-node V1Node fits as is. */
export interface NodeEligibilityInput {
  readonly metadata?: { readonly deletionTimestamp?: Date | string | null } | undefined;
  readonly spec?: { readonly taints?: readonly { readonly key: string }[] | undefined } | undefined;
}

export interface ProxierHealthSnapshot {
  /** The proxier alone (what /livez and healthCheckNodePorts use); node eligibility excluded. */
  readonly healthy: boolean;
  /** Last successful sync (ms since epoch); undefined before the first one. */
  readonly lastUpdatedMs: number | undefined;
  readonly currentTimeMs: number;
  /** Node known, not being deleted and not tainted for deletion. */
  readonly nodeEligible: boolean;
}

export interface ProxierHealthOptions {
  readonly syncPeriodMs: number;
  /** Milliseconds since the epoch. */
  readonly clock: () => number;
}

export class ProxierHealth {
  /** kube-proxy allows two sync periods: one may legitimately pass before a periodic sync. */
  readonly healthTimeoutMs: number;
  private readonly clock: () => number;
  private lastUpdatedMs: number | undefined;
  private oldestPendingMs: number | undefined;
  // Unknown until the Node object arrives; kube-proxy reports a missing node as ineligible.
  private eligible = false;

  constructor(options: ProxierHealthOptions) {
    this.healthTimeoutMs = 2 * options.syncPeriodMs;
    this.clock = options.clock;
  }

  /** Changes arrived that no sync has applied yet. Only the oldest pending change counts. */
  queued(atMs: number = this.clock()): void {
    this.oldestPendingMs ??= atMs;
  }

  /** A sync succeeded: nothing is pending any more. */
  updated(atMs: number = this.clock()): void {
    this.oldestPendingMs = undefined;
    this.lastUpdatedMs = atMs;
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
   * kube-proxy's rule: healthy until the first successful sync (starting up), and afterwards
   * unhealthy only while some change has been pending for at least the timeout.
   */
  isHealthy(nowMs: number = this.clock()): boolean {
    if (this.lastUpdatedMs === undefined || this.oldestPendingMs === undefined) return true;
    return nowMs - this.oldestPendingMs < this.healthTimeoutMs;
  }

  snapshot(nowMs: number = this.clock()): ProxierHealthSnapshot {
    return {
      healthy: this.isHealthy(nowMs),
      lastUpdatedMs: this.lastUpdatedMs,
      currentTimeMs: nowMs,
      nodeEligible: this.eligible,
    };
  }
}
