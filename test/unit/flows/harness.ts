// Flow tests drive the real pipeline: API objects -> ModelStore -> renderRuleSet -> sync payload ->
// FakeNetfilter, then ask the packet tracer where new connections end up. This module holds the
// node under test, object builders and the `FlowNode` that applies syncs the way the agent does.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { expect } from 'vitest';
import { ModelStore } from '../../../src/model/store.js';
import type { NodeInfo } from '../../../src/model/types.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import { normalisedTables } from '../../support/normalise.js';
import { describeOutcome, trace, type TraceOptions, type TracePacket } from '../../../src/trace/tracer.js';
import { RenderCache, renderRuleSet } from '../../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext, type RuleSet } from '../../../src/render/types.js';
import { planPartialSync, type SyncPlan } from '../../../src/sync/diff.js';
import { fullPayload } from '../../../src/sync/payload.js';
import { applyChange, type ClusterChange } from '../../support/generate.js';
import { endpointSliceObject, serviceObject, type EndpointInput } from '../../support/objects.js';

export const NODE_IP = '192.168.0.2';
export const CLUSTER_CIDR = '10.244.0.0/16';
/** A pod on this node that is no endpoint of anything. */
export const POD_IP = '10.244.1.50';
export const node: NodeInfo = { name: 'node1', ips: [NODE_IP], zone: undefined, labels: {}, podCIDRs: [] };
export const context: RenderContext = {
  ...defaultRenderContext,
  localTraffic: localTrafficFromCIDR(CLUSTER_CIDR),
  nodeIPs: [NODE_IP],
  localhostNodePorts: false,
};

// ---- objects -------------------------------------------------------------------------------

export interface ServiceOptions {
  readonly type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  readonly clusterIP: string;
  readonly port?: number;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  readonly nodePort?: number;
  readonly externalIPs?: readonly string[];
  readonly ingress?: readonly string[];
  readonly sourceRanges?: readonly string[];
  readonly affinity?: boolean;
  readonly externalTrafficPolicy?: 'Cluster' | 'Local';
  readonly internalTrafficPolicy?: 'Cluster' | 'Local';
  readonly healthCheckNodePort?: number;
}

/** One port named `http` (targetPort 8080 in the slices). */
export function service(name: string, options: ServiceOptions): V1Service {
  const built = serviceObject({
    namespace: 'default',
    name,
    type: options.type ?? (options.nodePort === undefined ? 'ClusterIP' : 'NodePort'),
    clusterIP: options.clusterIP,
    ports: [{ name: 'http', protocol: options.protocol ?? 'TCP', port: options.port ?? 80, targetPort: 8080, ...(options.nodePort === undefined ? {} : { nodePort: options.nodePort }) }],
    spec: {
      clusterIPs: [options.clusterIP],
      externalIPs: options.externalIPs === undefined ? undefined : [...options.externalIPs],
      loadBalancerSourceRanges: options.sourceRanges === undefined ? undefined : [...options.sourceRanges],
      sessionAffinity: options.affinity === true ? 'ClientIP' : 'None',
      externalTrafficPolicy: options.externalTrafficPolicy,
      internalTrafficPolicy: options.internalTrafficPolicy,
      healthCheckNodePort: options.healthCheckNodePort,
    },
  });
  return { ...built, status: options.ingress === undefined ? {} : { loadBalancer: { ingress: options.ingress.map((ip) => ({ ip })) } } };
}

export type Condition = 'ready' | 'not-ready' | 'terminating' | 'terminating-not-serving';

export interface EndpointSpec {
  readonly ip: string;
  readonly node: string;
  readonly condition?: Condition;
}

export function endpoint(ip: string, nodeName: string, condition: Condition = 'ready'): EndpointSpec {
  return { ip, node: nodeName, condition };
}

const conditions: Readonly<Record<Condition, Pick<EndpointInput, 'ready' | 'serving' | 'terminating'>>> = {
  ready: { ready: true, serving: true, terminating: false },
  'not-ready': { ready: false, serving: false, terminating: false },
  terminating: { ready: false, serving: true, terminating: true },
  'terminating-not-serving': { ready: false, serving: false, terminating: true },
};

/** The Service's one slice (`<service>-slice`), its `http` port on 8080. */
export function slice(serviceName: string, endpoints: readonly EndpointSpec[], protocol: 'TCP' | 'UDP' | 'SCTP' = 'TCP'): V1EndpointSlice {
  return endpointSliceObject({
    namespace: 'default',
    serviceName,
    name: `${serviceName}-slice`,
    ports: [{ name: 'http', protocol, port: 8080 }],
    endpoints: endpoints.map((spec) => ({ address: spec.ip, nodeName: spec.node, ...conditions[spec.condition ?? 'ready'] })),
  });
}

export function upsert(object: V1Service | V1EndpointSlice): ClusterChange {
  return object.kind === 'Service'
    ? { kind: 'upsertService', service: object as V1Service }
    : { kind: 'upsertEndpointSlice', endpointSlice: object as V1EndpointSlice };
}

// ---- packets -------------------------------------------------------------------------------

export type Origin = 'pod' | 'node' | 'outside';

export interface Probe {
  readonly from: Origin;
  /** `ip:port`. */
  readonly to: string;
  readonly protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** Default: POD_IP, NODE_IP or 203.0.113.7 by origin. */
  readonly source?: string;
}

export function packet(probe: Probe): TracePacket {
  const [destination = '', port = ''] = probe.to.split(':');
  const base = { destination, destinationPort: Number(port), protocol: probe.protocol ?? 'TCP', localAddresses: [NODE_IP] } as const;
  switch (probe.from) {
    case 'pod':
      return { ...base, origin: 'pod', source: probe.source ?? POD_IP };
    case 'node':
      return { ...base, origin: 'node', source: probe.source ?? NODE_IP };
    case 'outside':
      return { ...base, origin: 'outside', source: probe.source ?? '203.0.113.7' };
    default: {
      const unreachable: never = probe.from;
      throw new Error(`unknown origin ${String(unreachable)}`);
    }
  }
}

/** Every possible outcome of a new connection, e.g. `ACCEPT 10.244.1.11:8080 masquerade`, sorted. */
export function outcomes(fake: FakeNetfilter, probe: Probe, options: TraceOptions = {}): string[] {
  const described = trace(fake.savedTables(), packet(probe), options).outcomes.map(describeOutcome);
  return [...new Set(described)].sort();
}

// ---- syncing -------------------------------------------------------------------------------

/** A fresh fake node given the full payload of `ruleSet`. */
export function freshNode(ruleSet: RuleSet): FakeNetfilter {
  const fake = new FakeNetfilter();
  const payload = fullPayload(ruleSet, { jumps: 'append' });
  expect(fake.restoreSync(payload, { noFlush: true }), payload).toEqual({ ok: true });
  return fake;
}

/** One node as the agent keeps it: model, render cache, the applied RuleSet and the fake kernel. */
export class FlowNode {
  readonly store = new ModelStore(node);
  readonly cache = new RenderCache();
  readonly fake = new FakeNetfilter();
  private applied: RuleSet | undefined;

  constructor(readonly renderContext: RenderContext = context) {}

  get ruleSet(): RuleSet {
    if (this.applied === undefined) throw new Error('FlowNode: nothing applied yet');
    return this.applied;
  }

  /**
   * Applies the changes, then syncs: full the first time, partial after. Checks that the payload
   * applies and that the fake then holds what a fresh node given the full payload would.
   */
  sync(changes: readonly ClusterChange[], label = ''): SyncPlan | undefined {
    for (const change of changes) applyChange(this.store, change);
    const snapshot = this.store.snapshot();
    expect(snapshot.skipped, label).toEqual([]);
    const desired = renderRuleSet(snapshot.state, this.renderContext, this.cache);
    let plan: SyncPlan | undefined;
    if (this.applied === undefined) {
      const payload = fullPayload(desired, { jumps: 'append' });
      expect(this.fake.restoreSync(payload, { noFlush: true }), `${label}\n${payload}`).toEqual({ ok: true });
    } else {
      plan = planPartialSync(this.applied, desired);
      if (plan.payload !== '') {
        expect(this.fake.restoreSync(plan.payload, { noFlush: true }), `${label}\n${plan.payload}`).toEqual({ ok: true });
      }
      expect(normalisedTables(this.fake, desired), `${label}\n${plan.payload}`).toBe(normalisedTables(freshNode(desired), desired));
    }
    this.applied = desired;
    return plan;
  }

  outcomes(probe: Probe, options: TraceOptions = {}): string[] {
    return outcomes(this.fake, probe, options);
  }

  /** Total probability of each described outcome (random choices only; `recent` assumed a miss). */
  probabilities(probe: Probe): Map<string, number> {
    const totals = new Map<string, number>();
    for (const outcome of trace(this.fake.savedTables(), packet(probe), { recentState: false }).outcomes) {
      const key = describeOutcome(outcome);
      totals.set(key, (totals.get(key) ?? 0) + outcome.probability);
    }
    return totals;
  }
}
