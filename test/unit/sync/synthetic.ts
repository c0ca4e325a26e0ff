// A tiny "world" of services and endpoints and a seeded mutator for the sync tests' sequences,
// rendered by the real renderer (no second rule generator: chain names, rules and jumps are the
// product's). Unchanged services keep their object identity, so the RenderCache reuses their rules
// as it does for the agent's ModelStore.

import { servicePortChainNames, servicePortEndpointChainName } from '../../../src/render/names.js';
import { RenderCache, renderRuleSet } from '../../../src/render/index.js';
import { defaultRenderContext, localTrafficFromCIDR, type BuiltinJump, type RuleSet, type ServicePortRules } from '../../../src/render/types.js';
import type { DesiredState, ServicePort } from '../../../src/model/types.js';
import { prng } from '../../support/generate.js';
import { endpoint as makeEndpoint, servicePort as makeServicePort } from '../render/fixtures.js';

export { prng };
export interface SyntheticEndpoint {
  readonly ip: string;
  readonly port: number;
}

export interface SyntheticService {
  /** The ServicePort key the model gives it (`ns/name:port/PROTOCOL`). */
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

const CLUSTER_CIDR = '10.244.0.0/16';
const NODE_IP = '192.168.0.2';

function names(service: SyntheticService): ReturnType<typeof servicePortChainNames> {
  return servicePortChainNames(service.portName, protocolOf(service));
}

function protocolOf(service: SyntheticService): ServicePort['protocol'] {
  return service.protocol === 'udp' ? 'UDP' : 'TCP';
}

export function svcChain(service: SyntheticService): string {
  return names(service).cluster;
}
export function extChain(service: SyntheticService): string {
  return names(service).external;
}
export function sepChain(service: SyntheticService, endpoint: SyntheticEndpoint): string {
  return servicePortEndpointChainName(service.portName, protocolOf(service), endpoint.ip, endpoint.port);
}

/** The model's view of a synthetic service (all endpoints ready, none local). */
function toServicePort(service: SyntheticService): ServicePort {
  const [namespace = '', rest = ''] = service.portName.split('/');
  const [name = '', portName = ''] = rest.split(':');
  return makeServicePort({
    namespace,
    name,
    portName,
    protocol: protocolOf(service),
    clusterIP: service.clusterIP,
    port: service.port,
    nodePort: service.nodePort,
    endpoints: service.endpoints.map((endpoint) => makeEndpoint(endpoint.ip, { port: endpoint.port })),
  });
}

/** The renderer's rules for one synthetic service, alone. */
export function renderService(service: SyntheticService): ServicePortRules {
  const ruleSet = new SyntheticRenderer().render({ services: new Map([[service.key, service]]), randomFully: true, nodePortAddresses: [] });
  const rules = ruleSet.servicePorts.get(toServicePort(service).key);
  if (rules === undefined) throw new Error(`no rules for ${service.key}`);
  return rules;
}

/** The real renderer over a synthetic world; memoises per service object, as the ModelStore keeps ServicePorts. */
export class SyntheticRenderer {
  private readonly servicePorts = new WeakMap<SyntheticService, ServicePort>();
  private readonly cache = new RenderCache();

  render(world: SyntheticWorld): RuleSet {
    const servicePorts = new Map<string, ServicePort>();
    for (const service of world.services.values()) {
      let servicePort = this.servicePorts.get(service);
      if (servicePort === undefined) {
        servicePort = toServicePort(service);
        this.servicePorts.set(service, servicePort);
      }
      servicePorts.set(servicePort.key, servicePort);
    }
    const state: DesiredState = {
      family: 'IPv4',
      node: { name: 'test-node', ips: [NODE_IP], zone: undefined, labels: {}, podCIDRs: [] },
      servicePorts,
    };
    return renderRuleSet(
      state,
      {
        ...defaultRenderContext,
        localTraffic: localTrafficFromCIDR(CLUSTER_CIDR),
        randomFully: world.randomFully,
        nodePortAddresses: world.nodePortAddresses,
        nodeIPs: [NODE_IP],
        // Localhost NodePorts off: KUBE-FIREWALL stays kubelet's (ensured, never ours) in every
        // world, so a partial sync between two worlds is one the agent would also make (it turns
        // a change of that setting into a full sync).
        localhostNodePorts: false,
      },
      this.cache,
    );
  }
}

/** The renderer's built-in jumps for a synthetic world (the same for every world). */
export const syntheticJumps: readonly BuiltinJump[] = new SyntheticRenderer().render({ services: new Map(), randomFully: true, nodePortAddresses: [] }).jumps;

let serial = 0;
function nextSerial(): number {
  return ++serial;
}

export function makeService(index: number, endpointCount: number, nodePort = 0, protocol: 'tcp' | 'udp' = 'tcp'): SyntheticService {
  const endpoints: SyntheticEndpoint[] = [];
  for (let e = 0; e < endpointCount; e++) endpoints.push(endpointFor(index, e));
  return {
    key: `ns${index % 7}/svc${index}:http/${protocol.toUpperCase()}`,
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
