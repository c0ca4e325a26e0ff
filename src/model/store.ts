// The incremental model for the agent: informer events go in as upserts and deletes (bookkeeping
// only, like kube-proxy's change trackers), and snapshot() recomputes just the Services whose
// parsed form, EndpointSlices, node-port claims or node changed. Unchanged ServicePorts keep
// their object identity, so the renderer's per-object cache makes them free.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { deepEqual } from './equal.js';
import { NodePortClaims } from './node-port-claims.js';
import { PersistentMap } from './persistent-map.js';
import { parseService, type ParsedService } from './parse.js';
import { parseEndpointSlice, type ParsedEndpointSlice } from './parse-endpoint-slice.js';
import { buildServicePorts } from './service-ports.js';
import type { IPFamily } from '../ip.js';
import type { DesiredState, NodeInfo, ServicePort, Skipped } from './types.js';

export interface ModelSnapshot {
  readonly state: DesiredState;
  /** Every Skipped entry for the objects present now (not just the changed ones), sorted by
   * object. The same array instance while nothing changed, so a gauge can skip recounting. */
  readonly skipped: readonly Skipped[];
  /** ServicePort keys added, removed or replaced since the previous snapshot. */
  readonly changedServicePortKeys: ReadonlySet<string>;
  /**
   * `endpoints.kubernetes.io/last-change-trigger-time` of the EndpointSlice changes taken in by
   * this snapshot, for kubeproxy_network_programming_duration_seconds. Like upstream, deleting a
   * slice drops the pending times of its Service. Not filtered by age: the agent should ignore
   * times from before it started (upstream skips those too), or the initial list skews the metric.
   */
  readonly triggerTimes: readonly Date[];
}

export interface PendingChanges {
  /** Services whose parsed form differs from the last snapshot's (kube-proxy's service changes pending). */
  readonly services: number;
  /** EndpointSlices likewise (kube-proxy's endpoint changes pending). */
  readonly endpointSlices: number;
}

const emptyNode: NodeInfo = { name: '', ips: [], zone: undefined, labels: {}, podCIDRs: [] };

function byName(a: ParsedEndpointSlice, b: ParsedEndpointSlice): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function bySubject(a: Skipped, b: Skipped): number {
  const left = `${a.kind}/${a.namespace}/${a.name}`;
  const right = `${b.kind}/${b.namespace}/${b.name}`;
  return left < right ? -1 : left > right ? 1 : 0;
}

export class ModelStore {
  private node: NodeInfo;
  private nodeChanged = true;
  private recomputeAll = false;

  // Current inputs, by `ns/name`: the effective (programmable) form only.
  private readonly services = new Map<string, ParsedService>();
  private readonly slices = new Map<string, ParsedEndpointSlice>();
  private readonly slicesByService = new Map<string, Map<string, ParsedEndpointSlice>>();

  // Inputs as of the last snapshot, and the keys where current and applied differ.
  private readonly appliedServices = new Map<string, ParsedService>();
  private readonly appliedSlices = new Map<string, ParsedEndpointSlice>();
  private readonly pendingServices = new Set<string>();
  private readonly pendingSlices = new Set<string>();
  private readonly triggerTimes = new Map<string, number[]>();

  private readonly claims = new NodePortClaims();
  private readonly portKeysByService = new Map<string, readonly string[]>();

  // Skipped entries per object (`Service ns/name`, `EndpointSlice ns/name`, `clash ns/name`).
  private readonly skippedByObject = new Map<string, readonly Skipped[]>();
  private skippedChanged = false;
  private skippedList: readonly Skipped[] = [];

  private servicePorts = PersistentMap.empty<ServicePort>();
  private state: DesiredState;

  /** `family`: the addresses this model serves; a dual-stack node runs one store per family. */
  constructor(
    node: NodeInfo = emptyNode,
    private readonly family: IPFamily = 'IPv4',
  ) {
    this.node = node;
    this.state = { family, node, servicePorts: this.servicePorts };
  }

  /** Returns whether the Service's programmable form changed. */
  upsertService(service: V1Service): boolean {
    const parsed = parseService(service, this.family);
    const key = parsed.kind === 'proxied' ? parsed.service.key : `${parsed.namespace}/${parsed.name}`;
    this.setSkipped(`Service ${key}`, parsed.kind === 'not-proxied' ? [] : parsed.skipped);
    return this.setService(key, parsed.kind === 'proxied' ? parsed.service : undefined);
  }

  deleteService(namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    this.setSkipped(`Service ${key}`, []);
    return this.setService(key, undefined);
  }

  /** Returns whether the slice's programmable form changed. */
  upsertEndpointSlice(endpointSlice: V1EndpointSlice): boolean {
    const parsed = parseEndpointSlice(endpointSlice, this.family);
    const key = parsed.kind === 'usable' ? parsed.slice.key : `${parsed.namespace}/${parsed.name}`;
    this.setSkipped(`EndpointSlice ${key}`, parsed.kind === 'ignored' ? [] : parsed.skipped);
    if (parsed.kind !== 'usable') return this.setSlice(key, undefined);
    const changed = this.setSlice(key, parsed.slice);
    if (changed && parsed.triggerTime !== undefined) {
      const times = this.triggerTimes.get(parsed.slice.serviceKey) ?? [];
      times.push(parsed.triggerTime);
      this.triggerTimes.set(parsed.slice.serviceKey, times);
    }
    return changed;
  }

  deleteEndpointSlice(namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    this.setSkipped(`EndpointSlice ${key}`, []);
    const previous = this.slices.get(key);
    // A deletion's trigger time would be that of the last update, not of this change.
    if (previous !== undefined) this.triggerTimes.delete(previous.serviceKey);
    return this.setSlice(key, undefined);
  }

  /** Returns whether anything changed. Endpoint locality and topology depend on name and zone. */
  setNode(node: NodeInfo): boolean {
    if (deepEqual(node, this.node)) return false;
    if (node.name !== this.node.name || node.zone !== this.node.zone) this.recomputeAll = true;
    this.node = node;
    this.nodeChanged = true;
    return true;
  }

  pendingChanges(): PendingChanges {
    return { services: this.pendingServices.size, endpointSlices: this.pendingSlices.size };
  }

  snapshot(): ModelSnapshot {
    const dirty = this.takePending();
    const updates = new Map<string, ServicePort | undefined>();
    for (const serviceKey of dirty) this.recompute(serviceKey, updates);

    if (updates.size > 0 || this.nodeChanged) {
      // Copy-on-write: the previous state's map stays intact for whoever still holds it.
      this.servicePorts = this.servicePorts.withUpdates(updates);
      this.state = { family: this.family, node: this.node, servicePorts: this.servicePorts };
      this.nodeChanged = false;
    }

    const triggerTimes: Date[] = [];
    for (const times of this.triggerTimes.values()) for (const time of times) triggerTimes.push(new Date(time));
    this.triggerTimes.clear();

    return {
      state: this.state,
      skipped: this.currentSkipped(),
      changedServicePortKeys: new Set(updates.keys()),
      triggerTimes,
    };
  }

  private setService(key: string, service: ParsedService | undefined): boolean {
    const previous = this.services.get(key);
    if (deepEqual(previous, service)) return false;
    if (service === undefined) this.services.delete(key);
    else this.services.set(key, service);
    this.markPending(this.pendingServices, key, deepEqual(service, this.appliedServices.get(key)));
    return true;
  }

  private setSlice(key: string, slice: ParsedEndpointSlice | undefined): boolean {
    const previous = this.slices.get(key);
    if (deepEqual(previous, slice)) return false;
    if (previous !== undefined) {
      const siblings = this.slicesByService.get(previous.serviceKey);
      siblings?.delete(key);
      if (siblings?.size === 0) this.slicesByService.delete(previous.serviceKey);
    }
    if (slice === undefined) {
      this.slices.delete(key);
    } else {
      this.slices.set(key, slice);
      const siblings = this.slicesByService.get(slice.serviceKey) ?? new Map<string, ParsedEndpointSlice>();
      siblings.set(key, slice);
      this.slicesByService.set(slice.serviceKey, siblings);
    }
    this.markPending(this.pendingSlices, key, deepEqual(slice, this.appliedSlices.get(key)));
    return true;
  }

  /** Changes that cancel out (A -> B -> A between snapshots) leave nothing pending. */
  private markPending(pending: Set<string>, key: string, matchesApplied: boolean): void {
    if (matchesApplied) pending.delete(key);
    else pending.add(key);
  }

  /** Applies pending inputs and returns the Services to recompute. */
  private takePending(): Set<string> {
    const dirty = new Set<string>();
    for (const key of this.pendingSlices) {
      const applied = this.appliedSlices.get(key);
      const current = this.slices.get(key);
      if (applied !== undefined) dirty.add(applied.serviceKey);
      if (current !== undefined) {
        dirty.add(current.serviceKey);
        this.appliedSlices.set(key, current);
      } else {
        this.appliedSlices.delete(key);
      }
    }
    this.pendingSlices.clear();
    for (const key of this.pendingServices) {
      const current = this.services.get(key);
      dirty.add(key);
      for (const affected of this.claims.update(key, current)) dirty.add(affected);
      if (current !== undefined) this.appliedServices.set(key, current);
      else this.appliedServices.delete(key);
    }
    this.pendingServices.clear();
    if (this.recomputeAll) {
      for (const key of this.appliedServices.keys()) dirty.add(key);
      this.recomputeAll = false;
    }
    return dirty;
  }

  private recompute(serviceKey: string, updates: Map<string, ServicePort | undefined>): void {
    const service = this.appliedServices.get(serviceKey);
    const previousKeys = this.portKeysByService.get(serviceKey) ?? [];
    const lost = service === undefined ? [] : this.claims.lost(serviceKey);
    this.setSkipped(`clash ${serviceKey}`, lost.map((claim) => claim.skipped));

    const nextKeys: string[] = [];
    if (service !== undefined) {
      const slices = [...(this.slicesByService.get(serviceKey)?.values() ?? [])].sort(byName);
      const lostNodePorts = new Set(lost.map((claim) => claim.portIndex));
      for (const servicePort of buildServicePorts(service, slices, this.node, lostNodePorts)) {
        nextKeys.push(servicePort.key);
        const previous = this.servicePorts.get(servicePort.key);
        if (previous === undefined || !deepEqual(previous, servicePort)) updates.set(servicePort.key, servicePort);
      }
    }
    for (const key of previousKeys) {
      if (!nextKeys.includes(key)) updates.set(key, undefined);
    }
    if (nextKeys.length === 0) this.portKeysByService.delete(serviceKey);
    else this.portKeysByService.set(serviceKey, nextKeys);
  }

  private setSkipped(objectKey: string, entries: readonly Skipped[]): void {
    const previous = this.skippedByObject.get(objectKey);
    if (entries.length === 0) {
      if (previous === undefined) return;
      this.skippedByObject.delete(objectKey);
    } else {
      if (previous !== undefined && deepEqual(previous, entries)) return;
      this.skippedByObject.set(objectKey, entries);
    }
    this.skippedChanged = true;
  }

  private currentSkipped(): readonly Skipped[] {
    if (this.skippedChanged) {
      const all: Skipped[] = [];
      for (const entries of this.skippedByObject.values()) all.push(...entries);
      this.skippedList = all.sort(bySubject);
      this.skippedChanged = false;
    }
    return this.skippedList;
  }
}
