// A seeded generator of realistic Services and EndpointSlices and of the changes a cluster goes
// through (Services added, changed and removed; endpoints added, removed, turning ready,
// terminating or moving between nodes), for sequence tests and the benchmark. It keeps a small
// spec per object and emits fresh V1 objects from it, so every change is a plain API object.

import type { V1Endpoint, V1EndpointSlice, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { ModelStore } from '../../src/model/store.js';

/** A random number in [0, 1). */
export type Random = () => number;

/** mulberry32: tiny, fast and good enough to drive tests reproducibly. */
export function prng(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type ClusterChange =
  | { readonly kind: 'upsertService'; readonly service: V1Service }
  | { readonly kind: 'deleteService'; readonly namespace: string; readonly name: string }
  | { readonly kind: 'upsertEndpointSlice'; readonly endpointSlice: V1EndpointSlice }
  | { readonly kind: 'deleteEndpointSlice'; readonly namespace: string; readonly name: string };

/** Feeds one change to the model, as the informers would. */
export function applyChange(store: ModelStore, change: ClusterChange): void {
  switch (change.kind) {
    case 'upsertService':
      store.upsertService(change.service);
      return;
    case 'deleteService':
      store.deleteService(change.namespace, change.name);
      return;
    case 'upsertEndpointSlice':
      store.upsertEndpointSlice(change.endpointSlice);
      return;
    case 'deleteEndpointSlice':
      store.deleteEndpointSlice(change.namespace, change.name);
      return;
    default: {
      const unreachable: never = change;
      throw new Error(`unknown change ${JSON.stringify(unreachable)}`);
    }
  }
}

export type ServiceKind = 'ClusterIP' | 'NodePort' | 'LoadBalancer';
type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface GeneratorOptions {
  readonly seed: number;
  /** The node under test; endpoints on it are local. */
  readonly nodeName: string;
  /** Other nodes endpoints may live on. Default ['node2', 'node3']. */
  readonly otherNodes?: readonly string[];
  /** Endpoints per new Service: a fixed count or an inclusive range. Default [0, 4]. */
  readonly endpoints?: number | readonly [number, number];
  /** Relative weights of new Service types. Default ClusterIP 6, NodePort 2, LoadBalancer 2. */
  readonly mix?: Readonly<Record<ServiceKind, number>>;
  /** Probability that a new Service gets each optional feature. Default 0.2. */
  readonly featureRate?: number;
  /** Allow SCTP ports (needs the sctp modules in the kernel). Default false. */
  readonly sctp?: boolean;
  /** Probability that a new endpoint is not plainly ready (not ready / terminating). Default 0.15. */
  readonly unreadyRate?: number;
  /** When reached, `mutate` removes a Service where it would add one. */
  readonly maxServices?: number;
}

interface PortSpec {
  name: string;
  protocol: Protocol;
  port: number;
  targetPort: number;
  nodePort: number;
}

interface ServiceSpec {
  namespace: string;
  name: string;
  type: ServiceKind;
  clusterIP: string;
  ports: PortSpec[];
  externalIPs: string[];
  loadBalancerIngress: string[];
  sourceRanges: string[];
  affinityTimeout: number | undefined;
  externalTrafficPolicy: 'Cluster' | 'Local';
  internalTrafficPolicy: 'Cluster' | 'Local';
  healthCheckNodePort: number;
  /** Slice name suffixes in use, each slice holding some of the endpoints. */
  slices: SliceSpec[];
}

interface EndpointSpec {
  ip: string;
  nodeName: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

interface SliceSpec {
  name: string;
  endpoints: EndpointSpec[];
}

/** The mutation kinds `mutate` picks from; each can also be asked for by name. */
export const mutationKinds = [
  'addService',
  'removeService',
  'changeType',
  'toggleExternalIPs',
  'changeSourceRanges',
  'changeIngress',
  'toggleAffinity',
  'toggleExternalTrafficPolicy',
  'toggleInternalTrafficPolicy',
  'changePort',
  'addPort',
  'removePort',
  'addEndpoint',
  'removeEndpoint',
  'flipReady',
  'terminateEndpoint',
  'moveEndpoint',
  'scaleToZero',
  'splitSlice',
  'mergeSlices',
] as const;
export type MutationKind = (typeof mutationKinds)[number];

/** Endpoint changes dominate real clusters: they are weighted up. */
const mutationWeights: Readonly<Record<MutationKind, number>> = {
  addService: 3,
  removeService: 2,
  changeType: 2,
  toggleExternalIPs: 1,
  changeSourceRanges: 1,
  changeIngress: 1,
  toggleAffinity: 1,
  toggleExternalTrafficPolicy: 1,
  toggleInternalTrafficPolicy: 1,
  changePort: 1,
  addPort: 1,
  removePort: 1,
  addEndpoint: 5,
  removeEndpoint: 4,
  flipReady: 4,
  terminateEndpoint: 3,
  moveEndpoint: 2,
  scaleToZero: 1,
  splitSlice: 1,
  mergeSlices: 1,
};

const namespaces = ['default', 'kube-system', 'shop', 'payments', 'monitoring', 'team-a'];
const nodePortFirst = 30000;
const nodePortLast = 32767;

export interface Mutation {
  readonly kind: MutationKind;
  /** What happened, e.g. `flipReady shop/svc-7 10.244.0.12`. */
  readonly description: string;
  readonly changes: readonly ClusterChange[];
}

export class ClusterGenerator {
  readonly random: Random;
  readonly nodeName: string;
  private readonly nodes: readonly string[];
  private readonly options: GeneratorOptions;
  private readonly services = new Map<string, ServiceSpec>();
  private serviceCounter = 0;
  private clusterIPCounter = 0;
  private podIPCounter = 0;
  private externalIPCounter = 0;
  private ingressCounter = 0;
  private readonly freeNodePorts: number[] = [];
  private nextNodePort = nodePortFirst;

  constructor(options: GeneratorOptions) {
    this.options = options;
    this.random = prng(options.seed);
    this.nodeName = options.nodeName;
    this.nodes = [options.nodeName, ...(options.otherNodes ?? ['node2', 'node3'])];
  }

  /** Number of Services currently in the cluster. */
  get serviceCount(): number {
    return this.services.size;
  }

  /** `ns/name` of every current Service, in creation order. */
  serviceKeys(): string[] {
    return [...this.services.keys()];
  }

  /** Adds `count` Services with their slices; returns the changes (upserts only). */
  populate(count: number): ClusterChange[] {
    const changes: ClusterChange[] = [];
    for (let index = 0; index < count; index++) changes.push(...this.addService().changes);
    return changes;
  }

  /** Every current object as it would be listed: Services, then EndpointSlices. */
  objects(): { services: V1Service[]; endpointSlices: V1EndpointSlice[] } {
    const services: V1Service[] = [];
    const endpointSlices: V1EndpointSlice[] = [];
    for (const spec of this.services.values()) {
      services.push(serviceObject(spec));
      for (const slice of spec.slices) endpointSlices.push(sliceObject(spec, slice));
    }
    return { services, endpointSlices };
  }

  /** `count` random mutations (a kind that does not apply to the Service picked is re-drawn). */
  mutate(count = 1): Mutation[] {
    const mutations: Mutation[] = [];
    while (mutations.length < count) {
      let kind = this.pickKind();
      const max = this.options.maxServices;
      if (kind === 'addService' && max !== undefined && this.services.size >= max) kind = 'removeService';
      const mutation = this.mutation(kind);
      if (mutation !== undefined) mutations.push(mutation);
    }
    return mutations;
  }

  /** One mutation of the given kind (to the given or a random Service); undefined when it does not apply. */
  mutation(kind: MutationKind, serviceKey?: string): Mutation | undefined {
    return this.tryMutation(kind, serviceKey);
  }

  private pickKind(): MutationKind {
    let total = 0;
    for (const kind of mutationKinds) total += mutationWeights[kind];
    let roll = this.random() * total;
    for (const kind of mutationKinds) {
      roll -= mutationWeights[kind];
      if (roll < 0) return kind;
    }
    return 'addEndpoint';
  }

  private tryMutation(kind: MutationKind, serviceKey: string | undefined): Mutation | undefined {
    if (kind === 'addService') return this.addService();
    const spec = serviceKey === undefined ? this.pickService() : this.services.get(serviceKey);
    if (spec === undefined) return undefined;
    const key = `${spec.namespace}/${spec.name}`;
    const done = (detail: string, changes: ClusterChange[]): Mutation => ({
      kind,
      description: `${kind} ${key}${detail === '' ? '' : ` ${detail}`}`,
      changes,
    });
    const serviceChanged = (detail = ''): Mutation => done(detail, [{ kind: 'upsertService', service: serviceObject(spec) }]);

    switch (kind) {
      case 'removeService': {
        this.services.delete(key);
        for (const port of spec.ports) this.releaseNodePort(port.nodePort);
        this.releaseNodePort(spec.healthCheckNodePort);
        // Like the garbage collector: the slices go shortly after their Service.
        return done('', [
          { kind: 'deleteService', namespace: spec.namespace, name: spec.name },
          ...spec.slices.map((slice): ClusterChange => ({ kind: 'deleteEndpointSlice', namespace: spec.namespace, name: slice.name })),
        ]);
      }
      case 'changeType': {
        const types: ServiceKind[] = ['ClusterIP', 'NodePort', 'LoadBalancer'];
        const next = types.filter((type) => type !== spec.type)[Math.floor(this.random() * 2)] ?? 'ClusterIP';
        this.setType(spec, next);
        return serviceChanged(`-> ${next}`);
      }
      case 'toggleExternalIPs':
        spec.externalIPs = spec.externalIPs.length > 0 ? [] : this.externalIPs();
        this.fixPolicies(spec);
        return serviceChanged(spec.externalIPs.join(','));
      case 'changeSourceRanges':
        if (spec.type !== 'LoadBalancer') return undefined;
        spec.sourceRanges = spec.sourceRanges.length > 0 && this.random() < 0.5 ? [] : this.sourceRanges();
        return serviceChanged(spec.sourceRanges.join(','));
      case 'changeIngress':
        if (spec.type !== 'LoadBalancer') return undefined;
        spec.loadBalancerIngress = spec.loadBalancerIngress.length > 0 && this.random() < 0.3 ? [] : [this.ingressIP()];
        return serviceChanged(spec.loadBalancerIngress.join(','));
      case 'toggleAffinity':
        spec.affinityTimeout = spec.affinityTimeout === undefined ? this.affinityTimeout() : undefined;
        return serviceChanged(String(spec.affinityTimeout ?? 'None'));
      case 'toggleExternalTrafficPolicy':
        if (!externallyReachable(spec)) return undefined;
        spec.externalTrafficPolicy = spec.externalTrafficPolicy === 'Local' ? 'Cluster' : 'Local';
        this.fixPolicies(spec);
        return serviceChanged(spec.externalTrafficPolicy);
      case 'toggleInternalTrafficPolicy':
        spec.internalTrafficPolicy = spec.internalTrafficPolicy === 'Local' ? 'Cluster' : 'Local';
        return serviceChanged(spec.internalTrafficPolicy);
      case 'changePort': {
        const port = this.pick(spec.ports);
        if (port === undefined) return undefined;
        port.port = port.port === 80 ? 8000 + Math.floor(this.random() * 100) : 80;
        return serviceChanged(`${port.name}=${port.port}`);
      }
      case 'addPort': {
        if (spec.ports.length >= 3) return undefined;
        const port = this.newPort(spec.type, spec.ports);
        spec.ports.push(port);
        // The slices list the Service's target ports: they change along with it.
        return done(`${port.name}/${port.protocol}`, [{ kind: 'upsertService', service: serviceObject(spec) }, ...this.sliceUpserts(spec)]);
      }
      case 'removePort': {
        if (spec.ports.length < 2) return undefined;
        const [removed] = spec.ports.splice(Math.floor(this.random() * spec.ports.length), 1);
        if (removed !== undefined) this.releaseNodePort(removed.nodePort);
        return done(removed?.name ?? '', [{ kind: 'upsertService', service: serviceObject(spec) }, ...this.sliceUpserts(spec)]);
      }
      case 'addEndpoint': {
        let slice = this.pick(spec.slices);
        const created = slice === undefined;
        if (slice === undefined) {
          slice = { name: `${spec.name}-${randomSuffix(this.random)}`, endpoints: [] };
          spec.slices.push(slice);
        }
        const endpoint = this.newEndpoint();
        slice.endpoints.push(endpoint);
        return done(`${endpoint.ip}@${endpoint.nodeName}${created ? ' (new slice)' : ''}`, [this.sliceUpsert(spec, slice)]);
      }
      case 'removeEndpoint':
      case 'flipReady':
      case 'terminateEndpoint':
      case 'moveEndpoint':
        return this.endpointMutation(kind, spec, done);
      case 'scaleToZero': {
        if (spec.slices.every((slice) => slice.endpoints.length === 0)) return undefined;
        for (const slice of spec.slices) slice.endpoints = [];
        return done('', this.sliceUpserts(spec));
      }
      case 'splitSlice': {
        const slice = spec.slices.find((candidate) => candidate.endpoints.length >= 2);
        if (slice === undefined || spec.slices.length >= 3) return undefined;
        const moved = slice.endpoints.splice(0, Math.floor(slice.endpoints.length / 2));
        const added: SliceSpec = { name: `${spec.name}-${randomSuffix(this.random)}`, endpoints: moved };
        spec.slices.push(added);
        // The controller writes the new slice first, then trims the old one.
        return done(added.name, [this.sliceUpsert(spec, added), this.sliceUpsert(spec, slice)]);
      }
      case 'mergeSlices': {
        const [first, second] = spec.slices;
        if (first === undefined || second === undefined) return undefined;
        first.endpoints.push(...second.endpoints);
        spec.slices.splice(1, 1);
        return done(second.name, [
          this.sliceUpsert(spec, first),
          { kind: 'deleteEndpointSlice', namespace: spec.namespace, name: second.name },
        ]);
      }
      default: {
        const unreachable: never = kind;
        throw new Error(`unknown mutation ${String(unreachable)}`);
      }
    }
  }

  private endpointMutation(
    kind: 'removeEndpoint' | 'flipReady' | 'terminateEndpoint' | 'moveEndpoint',
    spec: ServiceSpec,
    done: (detail: string, changes: ClusterChange[]) => Mutation,
  ): Mutation | undefined {
    const slices = spec.slices.filter((slice) => slice.endpoints.length > 0);
    const slice = this.pick(slices);
    if (slice === undefined) return undefined;
    const index = Math.floor(this.random() * slice.endpoints.length);
    const endpoint = slice.endpoints[index];
    if (endpoint === undefined) return undefined;
    switch (kind) {
      case 'removeEndpoint':
        slice.endpoints.splice(index, 1);
        break;
      case 'flipReady':
        endpoint.ready = !endpoint.ready;
        endpoint.serving = endpoint.ready;
        endpoint.terminating = false;
        break;
      case 'terminateEndpoint':
        // A terminating pod keeps serving for a while (the fallback), then stops.
        endpoint.serving = endpoint.terminating ? false : this.random() < 0.7;
        endpoint.ready = false;
        endpoint.terminating = true;
        break;
      case 'moveEndpoint': {
        const others = this.nodes.filter((node) => node !== endpoint.nodeName);
        endpoint.nodeName = this.pick(others) ?? endpoint.nodeName;
        break;
      }
      default: {
        const unreachable: never = kind;
        throw new Error(`unknown endpoint mutation ${String(unreachable)}`);
      }
    }
    return done(`${endpoint.ip}@${endpoint.nodeName} ${conditionText(endpoint)}`, [this.sliceUpsert(spec, slice)]);
  }

  addService(): Mutation {
    const type = this.pickType();
    const namespace = this.pick(namespaces) ?? 'default';
    const name = `svc-${++this.serviceCounter}`;
    const spec: ServiceSpec = {
      namespace,
      name,
      type: 'ClusterIP',
      clusterIP: this.clusterIP(),
      ports: [],
      externalIPs: [],
      loadBalancerIngress: [],
      sourceRanges: [],
      affinityTimeout: undefined,
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      healthCheckNodePort: 0,
      slices: [],
    };
    const portCount = this.random() < 0.8 ? 1 : 2;
    for (let index = 0; index < portCount; index++) spec.ports.push(this.newPort('ClusterIP', spec.ports));
    this.setType(spec, type);
    const rate = this.options.featureRate ?? 0.2;
    if (this.random() < rate / 2) spec.externalIPs = this.externalIPs();
    if (this.random() < rate) spec.affinityTimeout = this.affinityTimeout();
    if (externallyReachable(spec) && this.random() < rate) spec.externalTrafficPolicy = 'Local';
    if (this.random() < rate / 2) spec.internalTrafficPolicy = 'Local';
    this.fixPolicies(spec);

    const range = this.options.endpoints ?? [0, 4];
    const [low, high] = typeof range === 'number' ? [range, range] : range;
    const count = low + Math.floor(this.random() * (high - low + 1));
    if (count > 0) {
      const slice: SliceSpec = { name: `${name}-${randomSuffix(this.random)}`, endpoints: [] };
      for (let index = 0; index < count; index++) slice.endpoints.push(this.newEndpoint());
      spec.slices.push(slice);
    }
    this.services.set(`${namespace}/${name}`, spec);
    return {
      kind: 'addService',
      description: `addService ${namespace}/${name} ${spec.type} (${count} endpoints)`,
      changes: [{ kind: 'upsertService', service: serviceObject(spec) }, ...this.sliceUpserts(spec)],
    };
  }

  private setType(spec: ServiceSpec, type: ServiceKind): void {
    spec.type = type;
    for (const port of spec.ports) {
      if (type === 'ClusterIP') {
        this.releaseNodePort(port.nodePort);
        port.nodePort = 0;
      } else if (port.nodePort === 0) {
        port.nodePort = this.nodePort();
      }
    }
    if (type === 'LoadBalancer') {
      if (spec.loadBalancerIngress.length === 0) spec.loadBalancerIngress = [this.ingressIP()];
      if (this.random() < (this.options.featureRate ?? 0.2) * 2) spec.sourceRanges = this.sourceRanges();
    } else {
      spec.loadBalancerIngress = [];
      spec.sourceRanges = [];
    }
    this.fixPolicies(spec);
  }

  /** What the apiserver enforces: Local external policy only where traffic can come from outside,
   * and a healthCheckNodePort exactly for LoadBalancers with Local policy. */
  private fixPolicies(spec: ServiceSpec): void {
    if (!externallyReachable(spec)) spec.externalTrafficPolicy = 'Cluster';
    const wantsHealthCheck = spec.type === 'LoadBalancer' && spec.externalTrafficPolicy === 'Local';
    if (wantsHealthCheck && spec.healthCheckNodePort === 0) spec.healthCheckNodePort = this.nodePort();
    if (!wantsHealthCheck && spec.healthCheckNodePort !== 0) {
      this.releaseNodePort(spec.healthCheckNodePort);
      spec.healthCheckNodePort = 0;
    }
  }

  private newPort(type: ServiceKind, existing: readonly PortSpec[]): PortSpec {
    const candidates: readonly (readonly [string, Protocol, number, number])[] = [
      ['http', 'TCP', 80, 8080],
      ['https', 'TCP', 443, 8443],
      ['metrics', 'TCP', 9100, 9100],
      ['dns', 'UDP', 53, 5353],
      ['grpc', 'TCP', 9000, 9000],
      ...(this.options.sctp === true ? [['sig', 'SCTP', 3868, 3868] as const] : []),
    ];
    const free = candidates.filter(([name]) => !existing.some((port) => port.name === name));
    const [name, protocol, port, targetPort] = this.pick(free) ?? ['extra', 'TCP', 7000 + existing.length, 7000];
    return { name, protocol, port, targetPort, nodePort: type === 'ClusterIP' ? 0 : this.nodePort() };
  }

  private newEndpoint(): EndpointSpec {
    const endpoint: EndpointSpec = { ip: this.podIP(), nodeName: this.pick(this.nodes) ?? this.nodeName, ready: true, serving: true, terminating: false };
    const roll = this.random();
    const unready = this.options.unreadyRate ?? 0.15;
    if (roll < unready / 3) {
      endpoint.ready = false;
      endpoint.serving = false;
    } else if (roll < unready) {
      endpoint.ready = false;
      endpoint.terminating = true;
      endpoint.serving = roll < (unready * 2) / 3;
    }
    return endpoint;
  }

  private sliceUpsert(spec: ServiceSpec, slice: SliceSpec): ClusterChange {
    return { kind: 'upsertEndpointSlice', endpointSlice: sliceObject(spec, slice) };
  }

  private sliceUpserts(spec: ServiceSpec): ClusterChange[] {
    return spec.slices.map((slice) => this.sliceUpsert(spec, slice));
  }

  private pickType(): ServiceKind {
    const mix = this.options.mix ?? { ClusterIP: 6, NodePort: 2, LoadBalancer: 2 };
    const total = mix.ClusterIP + mix.NodePort + mix.LoadBalancer;
    const roll = this.random() * total;
    let type: ServiceKind = roll < mix.ClusterIP ? 'ClusterIP' : roll < mix.ClusterIP + mix.NodePort ? 'NodePort' : 'LoadBalancer';
    // NodePorts are a small pool (2768): when it runs dry, new Services stay ClusterIP.
    if (type !== 'ClusterIP' && this.freeNodePorts.length === 0 && this.nextNodePort > nodePortLast - 8) type = 'ClusterIP';
    return type;
  }

  private pickService(): ServiceSpec | undefined {
    if (this.services.size === 0) return undefined;
    // Services are few in tests and many in the benchmark: index into the insertion order.
    const index = Math.floor(this.random() * this.services.size);
    let position = 0;
    for (const spec of this.services.values()) if (position++ === index) return spec;
    return undefined;
  }

  private pick<T>(values: readonly T[]): T | undefined {
    return values.length === 0 ? undefined : values[Math.floor(this.random() * values.length)];
  }

  private clusterIP(): string {
    // 10.96.0.0/12, skipping .0 and the first addresses (10.96.0.1 is the apiserver's, 10.96.0.10 DNS).
    const n = 20 + this.clusterIPCounter++;
    return `10.${96 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
  }

  private podIP(): string {
    // 10.244.0.0/14: room for 256k pods; .0 and .255 skipped for readability only.
    const n = this.podIPCounter++;
    const host = (n % 254) + 1;
    const block = Math.floor(n / 254);
    return `10.${244 + (block >> 8)}.${block & 255}.${host}`;
  }

  private externalIPs(): string[] {
    const n = this.externalIPCounter++;
    return [`192.0.2.${(n % 250) + 1}`];
  }

  private ingressIP(): string {
    const n = this.ingressCounter++;
    return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
  }

  private sourceRanges(): string[] {
    // 172.30.0.0/24 holds the test topology's node IPs: the node may then reach its own LB IPs.
    const ranges = ['203.0.113.0/24', '172.30.0.0/24', '198.51.100.0/25'];
    const first = Math.floor(this.random() * ranges.length);
    const picked = [ranges[first] ?? '203.0.113.0/24'];
    if (this.random() < 0.4) picked.push(ranges[(first + 1) % ranges.length] ?? '198.51.100.0/25');
    return picked;
  }

  private affinityTimeout(): number {
    return this.random() < 0.5 ? 10800 : 60 + Math.floor(this.random() * 600);
  }

  private nodePort(): number {
    const free = this.freeNodePorts.pop();
    if (free !== undefined) return free;
    if (this.nextNodePort > nodePortLast) throw new Error('ClusterGenerator: out of node ports');
    return this.nextNodePort++;
  }

  private releaseNodePort(port: number): void {
    if (port !== 0) this.freeNodePorts.push(port);
  }
}

function externallyReachable(spec: ServiceSpec): boolean {
  return spec.type !== 'ClusterIP' || spec.externalIPs.length > 0;
}

function conditionText(endpoint: EndpointSpec): string {
  return `ready=${endpoint.ready} serving=${endpoint.serving} terminating=${endpoint.terminating}`;
}

function randomSuffix(random: Random): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let suffix = '';
  for (let index = 0; index < 5; index++) suffix += alphabet[Math.floor(random() * alphabet.length)] ?? 'x';
  return suffix;
}

function serviceObject(spec: ServiceSpec): V1Service {
  const ports: V1ServicePort[] = spec.ports.map((port) => ({
    name: port.name,
    protocol: port.protocol,
    port: port.port,
    targetPort: port.targetPort,
    ...(port.nodePort !== 0 ? { nodePort: port.nodePort } : {}),
  }));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: spec.namespace, name: spec.name, labels: { app: spec.name } },
    spec: {
      type: spec.type,
      clusterIP: spec.clusterIP,
      clusterIPs: [spec.clusterIP],
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      selector: { app: spec.name },
      ports,
      sessionAffinity: spec.affinityTimeout === undefined ? 'None' : 'ClientIP',
      ...(spec.affinityTimeout === undefined ? {} : { sessionAffinityConfig: { clientIP: { timeoutSeconds: spec.affinityTimeout } } }),
      ...(spec.externalIPs.length > 0 ? { externalIPs: [...spec.externalIPs] } : {}),
      ...(spec.sourceRanges.length > 0 ? { loadBalancerSourceRanges: [...spec.sourceRanges] } : {}),
      ...(spec.type !== 'ClusterIP' || spec.externalIPs.length > 0 ? { externalTrafficPolicy: spec.externalTrafficPolicy } : {}),
      internalTrafficPolicy: spec.internalTrafficPolicy,
      ...(spec.healthCheckNodePort !== 0 ? { healthCheckNodePort: spec.healthCheckNodePort } : {}),
    },
    status:
      spec.loadBalancerIngress.length > 0 ? { loadBalancer: { ingress: spec.loadBalancerIngress.map((ip) => ({ ip, ipMode: 'VIP' })) } } : {},
  };
}

function sliceObject(spec: ServiceSpec, slice: SliceSpec): V1EndpointSlice {
  const endpoints: V1Endpoint[] = slice.endpoints.map((endpoint) => ({
    addresses: [endpoint.ip],
    conditions: { ready: endpoint.ready, serving: endpoint.serving, terminating: endpoint.terminating },
    nodeName: endpoint.nodeName,
    targetRef: { kind: 'Pod', namespace: spec.namespace, name: `${spec.name}-${endpoint.ip.replaceAll('.', '-')}` },
  }));
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: spec.namespace,
      name: slice.name,
      labels: { 'kubernetes.io/service-name': spec.name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: 'IPv4',
    endpoints,
    ports: spec.ports.map((port) => ({ name: port.name, protocol: port.protocol, port: port.targetPort })),
  };
}
