// Hand-built RuleSets shaped like the renderer's (kube-proxy's chains and rules), from a tiny
// "world" of services and endpoints, plus a seeded PRNG that mutates the world. Written for the
// sync tests only: the real renderer is tested on its own, and the lead reruns these sequences on it.

import { createHash } from 'node:crypto';
import type { BuiltinJump, OrderedChain, RuleSet, ServicePortRules, SharedChain, SharedRule } from '../../../src/render/types.js';

export interface SyntheticEndpoint {
  readonly ip: string;
  readonly port: number;
}

export interface SyntheticService {
  readonly key: string;
  /** ns/name:portName, as kube-proxy's comments say it. */
  readonly portName: string;
  readonly protocol: 'tcp' | 'udp';
  readonly clusterIP: string;
  readonly port: number;
  /** 0 = not a NodePort. */
  readonly nodePort: number;
  readonly endpoints: readonly SyntheticEndpoint[];
}

export interface SyntheticWorld {
  readonly services: ReadonlyMap<string, SyntheticService>;
  /** Static chain content: `--random-fully` on MASQUERADE. */
  readonly randomFully: boolean;
  /** Trailer content of nat KUBE-SERVICES: empty = `--dst-type LOCAL`. */
  readonly nodePortAddresses: readonly string[];
}

const MARK_MASQ = 'KUBE-MARK-MASQ';
const CLUSTER_CIDR = '10.244.0.0/16';

function hash16(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16).toUpperCase();
}

export function svcChain(service: SyntheticService): string {
  return `KUBE-SVC-${hash16(service.portName + service.protocol)}`;
}
export function extChain(service: SyntheticService): string {
  return `KUBE-EXT-${hash16(service.portName + service.protocol)}`;
}
export function sepChain(service: SyntheticService, endpoint: SyntheticEndpoint): string {
  return `KUBE-SEP-${hash16(`${service.portName}${service.protocol}${endpoint.ip}:${endpoint.port}`)}`;
}

/** Built once: the renderer keeps the identity of unchanged values, and so does this. */
export const syntheticJumps: readonly BuiltinJump[] = [
  { table: 'filter', chain: 'INPUT', rule: '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL' },
  { table: 'filter', chain: 'INPUT', rule: '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS' },
  { table: 'filter', chain: 'INPUT', rule: '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES' },
  { table: 'filter', chain: 'FORWARD', rule: '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD' },
  { table: 'filter', chain: 'FORWARD', rule: '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'filter', chain: 'FORWARD', rule: '-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES' },
  { table: 'filter', chain: 'OUTPUT', rule: '-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL' },
  { table: 'filter', chain: 'OUTPUT', rule: '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'nat', chain: 'PREROUTING', rule: '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'nat', chain: 'OUTPUT', rule: '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES' },
  { table: 'nat', chain: 'POSTROUTING', rule: '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' },
];

function staticChains(world: SyntheticWorld): OrderedChain[] {
  return [
    { kind: 'ordered', table: 'filter', name: 'KUBE-PROXY-CANARY', rules: [] },
    {
      kind: 'ordered', table: 'filter', name: 'KUBE-FORWARD', rules: [
        '-m conntrack --ctstate INVALID -j DROP',
        '-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
        '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      ],
    },
    { kind: 'ordered', table: 'nat', name: 'KUBE-PROXY-CANARY', rules: [] },
    { kind: 'ordered', table: 'nat', name: MARK_MASQ, rules: ['-j MARK --or-mark 0x4000'] },
    {
      kind: 'ordered', table: 'nat', name: 'KUBE-POSTROUTING', rules: [
        '-m mark ! --mark 0x4000/0x4000 -j RETURN',
        '-j MARK --xor-mark 0x4000',
        `-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${world.randomFully ? ' --random-fully' : ''}`,
      ],
    },
  ];
}

function sharedChains(world: SyntheticWorld): SharedChain[] {
  const comment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';
  const trailer = world.nodePortAddresses.length === 0
    ? [`${comment} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`]
    : world.nodePortAddresses.map((cidr) => `${comment} -d ${cidr} -j KUBE-NODEPORTS`);
  return [
    { kind: 'shared', table: 'filter', name: 'KUBE-SERVICES', trailer: [] },
    { kind: 'shared', table: 'filter', name: 'KUBE-EXTERNAL-SERVICES', trailer: [] },
    { kind: 'shared', table: 'filter', name: 'KUBE-NODEPORTS', trailer: [] },
    { kind: 'shared', table: 'filter', name: 'KUBE-PROXY-FIREWALL', trailer: [] },
    { kind: 'shared', table: 'nat', name: 'KUBE-SERVICES', trailer },
    { kind: 'shared', table: 'nat', name: 'KUBE-NODEPORTS', trailer: [] },
  ];
}

export function renderService(service: SyntheticService): ServicePortRules {
  const name = service.portName;
  const proto = `-m ${service.protocol} -p ${service.protocol}`;
  const chains: OrderedChain[] = [];
  const sharedRules: SharedRule[] = [];
  if (service.endpoints.length === 0) {
    sharedRules.push({
      table: 'filter', chain: 'KUBE-SERVICES',
      rule: `-m comment --comment "${name} has no endpoints" ${proto} -d ${service.clusterIP} --dport ${service.port} -j REJECT`,
    });
    if (service.nodePort !== 0) {
      sharedRules.push({
        table: 'filter', chain: 'KUBE-EXTERNAL-SERVICES',
        rule: `-m comment --comment "${name} has no endpoints" -m addrtype --dst-type LOCAL ${proto} --dport ${service.nodePort} -j REJECT`,
      });
    }
    return { chains, sharedRules };
  }
  const svc = svcChain(service);
  const svcRules = [`-m comment --comment "${name} cluster IP" ${proto} -d ${service.clusterIP} --dport ${service.port} ! -s ${CLUSTER_CIDR} -j ${MARK_MASQ}`];
  service.endpoints.forEach((endpoint, index) => {
    const sep = sepChain(service, endpoint);
    const remaining = service.endpoints.length - index;
    const probability = remaining > 1 ? ` -m statistic --mode random --probability ${(1 / remaining).toFixed(10)}` : '';
    svcRules.push(`-m comment --comment "${name} -> ${endpoint.ip}:${endpoint.port}"${probability} -j ${sep}`);
    chains.push({
      kind: 'ordered', table: 'nat', name: sep, rules: [
        `-m comment --comment "${name}" -s ${endpoint.ip} -j ${MARK_MASQ}`,
        `-m comment --comment "${name}" ${proto} -j DNAT --to-destination ${endpoint.ip}:${endpoint.port}`,
      ],
    });
  });
  chains.unshift({ kind: 'ordered', table: 'nat', name: svc, rules: svcRules });
  sharedRules.push({
    table: 'nat', chain: 'KUBE-SERVICES',
    rule: `-m comment --comment "${name} cluster IP" ${proto} -d ${service.clusterIP} --dport ${service.port} -j ${svc}`,
  });
  if (service.nodePort !== 0) {
    const ext = extChain(service);
    chains.push({
      kind: 'ordered', table: 'nat', name: ext, rules: [
        `-m comment --comment "masquerade traffic for ${name} external destinations" -j ${MARK_MASQ}`,
        `-j ${svc}`,
      ],
    });
    sharedRules.push({ table: 'nat', chain: 'KUBE-NODEPORTS', rule: `-m comment --comment "${name}" ${proto} --dport ${service.nodePort} -j ${ext}` });
  }
  return { chains, sharedRules };
}

/** Memoises per service object, as the real RenderCache does per ServicePort. */
export class SyntheticRenderer {
  private readonly cache = new WeakMap<SyntheticService, ServicePortRules>();

  render(world: SyntheticWorld): RuleSet {
    const servicePorts = new Map<string, ServicePortRules>();
    for (const [key, service] of world.services) {
      let rules = this.cache.get(service);
      if (rules === undefined) {
        rules = renderService(service);
        this.cache.set(service, rules);
      }
      servicePorts.set(key, rules);
    }
    return { staticChains: staticChains(world), sharedChains: sharedChains(world), servicePorts, jumps: syntheticJumps, ensuredChains: [] };
  }
}

/** mulberry32: small, seeded, good enough to pick mutations. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let serial = 0;
function nextSerial(): number {
  return ++serial;
}

export function makeService(index: number, endpointCount: number, nodePort = 0, protocol: 'tcp' | 'udp' = 'tcp'): SyntheticService {
  const endpoints: SyntheticEndpoint[] = [];
  for (let e = 0; e < endpointCount; e++) endpoints.push(endpointFor(index, e));
  return {
    key: `ns${index % 7}/svc${index}:http/${protocol}`,
    portName: `ns${index % 7}/svc${index}:http`,
    protocol,
    clusterIP: `10.96.${(index >> 8) & 255}.${index & 255}`,
    port: 80 + (index % 3),
    nodePort,
    endpoints,
  };
}

function endpointFor(serviceIndex: number, endpointIndex: number): SyntheticEndpoint {
  const n = serviceIndex * 16 + endpointIndex;
  return { ip: `10.${244 + ((n >> 16) & 7)}.${(n >> 8) & 255}.${n & 255}`, port: 8080 };
}

export function makeWorld(serviceCount: number, endpointsPerService: number): SyntheticWorld {
  const services = new Map<string, SyntheticService>();
  for (let index = 0; index < serviceCount; index++) {
    const service = makeService(index, endpointsPerService, index % 4 === 0 ? 30000 + index : 0);
    services.set(service.key, service);
  }
  return { services, randomFully: true, nodePortAddresses: [] };
}

export type Mutation =
  | 'add-service' | 'remove-service' | 'add-endpoint' | 'remove-endpoint' | 'change-endpoint-port'
  | 'toggle-node-port' | 'change-cluster-ip' | 'same-content-new-object' | 'toggle-random-fully'
  | 'change-node-port-addresses';

const MUTATIONS: readonly (readonly [Mutation, number])[] = [
  ['add-service', 4], ['remove-service', 3], ['add-endpoint', 5], ['remove-endpoint', 4],
  ['change-endpoint-port', 2], ['toggle-node-port', 2], ['change-cluster-ip', 2],
  ['same-content-new-object', 2], ['toggle-random-fully', 1], ['change-node-port-addresses', 1],
];

/** Applies 1–3 random mutations; unchanged services keep their object identity. */
export function mutate(world: SyntheticWorld, random: () => number): { world: SyntheticWorld; applied: Mutation[] } {
  let next = world;
  const applied: Mutation[] = [];
  const count = 1 + Math.floor(random() * 3);
  for (let i = 0; i < count; i++) {
    const mutation = pickMutation(random);
    next = applyMutation(next, mutation, random);
    applied.push(mutation);
  }
  return { world: next, applied };
}

function pickMutation(random: () => number): Mutation {
  const total = MUTATIONS.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = random() * total;
  for (const [mutation, weight] of MUTATIONS) {
    roll -= weight;
    if (roll < 0) return mutation;
  }
  return 'add-endpoint';
}

export function applyMutation(world: SyntheticWorld, mutation: Mutation, random: () => number): SyntheticWorld {
  const services = new Map(world.services);
  const keys = [...services.keys()];
  const pick = (): SyntheticService | undefined => {
    const key = keys[Math.floor(random() * keys.length)];
    return key === undefined ? undefined : services.get(key);
  };
  const replace = (service: SyntheticService): SyntheticWorld => {
    services.set(service.key, service);
    return { ...world, services };
  };
  switch (mutation) {
    case 'add-service': {
      const index = 1000 + nextSerial();
      const service = makeService(index, Math.floor(random() * 4), random() < 0.4 ? 31000 + index : 0, random() < 0.3 ? 'udp' : 'tcp');
      return replace(service);
    }
    case 'remove-service': {
      const service = pick();
      if (service === undefined) return world;
      services.delete(service.key);
      return { ...world, services };
    }
    case 'add-endpoint': {
      const service = pick();
      if (service === undefined) return world;
      const n = nextSerial();
      const endpoint = { ip: `10.250.${(n >> 8) & 255}.${n & 255}`, port: 8080 };
      return replace({ ...service, endpoints: [...service.endpoints, endpoint] });
    }
    case 'remove-endpoint': {
      const service = pick();
      if (service === undefined || service.endpoints.length === 0) return world;
      const drop = Math.floor(random() * service.endpoints.length);
      return replace({ ...service, endpoints: service.endpoints.filter((_, index) => index !== drop) });
    }
    case 'change-endpoint-port': {
      const service = pick();
      if (service === undefined) return world;
      const port = 9000 + Math.floor(random() * 100);
      return replace({ ...service, endpoints: service.endpoints.map((endpoint) => ({ ...endpoint, port })) });
    }
    case 'toggle-node-port': {
      const service = pick();
      if (service === undefined) return world;
      return replace({ ...service, nodePort: service.nodePort === 0 ? 32000 + (nextSerial() % 700) : 0 });
    }
    case 'change-cluster-ip': {
      const service = pick();
      if (service === undefined) return world;
      const n = nextSerial();
      return replace({ ...service, clusterIP: `10.97.${(n >> 8) & 255}.${n & 255}` });
    }
    case 'same-content-new-object': {
      const service = pick();
      return service === undefined ? world : replace({ ...service });
    }
    case 'toggle-random-fully':
      return { ...world, randomFully: !world.randomFully };
    case 'change-node-port-addresses':
      return { ...world, nodePortAddresses: world.nodePortAddresses.length === 0 ? ['192.168.0.0/16', '172.16.0.0/12'] : [] };
    default: {
      const unreachable: never = mutation;
      return unreachable;
    }
  }
}
