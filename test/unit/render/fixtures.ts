// Hand-built ServicePorts for renderer tests (the renderer codes only against model/types.ts),
// with a deliberately simple endpoint selection: ready endpoints, else serving+terminating ones.

import { expect } from 'vitest';
import type { DesiredState, Endpoint, ServicePort, SessionAffinity, TrafficPolicy } from '../../../src/model/types.js';
import { usesClusterEndpoints, usesLocalEndpoints } from '../../../src/model/endpoints.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext, type RenderContext, type RuleSet, type ServicePortRules } from '../../../src/render/types.js';
import type { TableName } from '../../../src/netfilter/vocabulary.js';

export function endpoint(ip: string, options: Partial<Endpoint> = {}): Endpoint {
  const isLocal = options.isLocal ?? false;
  return {
    ip,
    port: 80,
    nodeName: isLocal ? 'test-node' : undefined,
    zone: undefined,
    zoneHints: undefined,
    ready: true,
    serving: true,
    terminating: false,
    isLocal,
    ...options,
  };
}

export interface ServicePortOptions {
  readonly namespace?: string;
  readonly name?: string;
  readonly portName?: string;
  readonly protocol?: ServicePort['protocol'];
  readonly type?: ServicePort['type'];
  readonly clusterIP?: string;
  readonly port?: number;
  readonly nodePort?: number;
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIPs?: readonly string[];
  readonly loadBalancerSourceRanges?: readonly string[];
  readonly sessionAffinity?: SessionAffinity;
  readonly externalTrafficPolicy?: TrafficPolicy;
  readonly internalTrafficPolicy?: TrafficPolicy;
  readonly healthCheckNodePort?: number;
  readonly endpoints?: readonly Endpoint[];
}

function usable(all: readonly Endpoint[], filter: (ep: Endpoint) => boolean): Endpoint[] {
  const ready = all.filter((ep) => ep.ready && filter(ep));
  if (ready.length > 0) return ready;
  return all.filter((ep) => ep.serving && ep.terminating && filter(ep));
}

export function servicePort(options: ServicePortOptions = {}): ServicePort {
  const namespace = options.namespace ?? 'ns1';
  const name = options.name ?? 'svc1';
  const portName = options.portName ?? 'p80';
  const protocol = options.protocol ?? 'TCP';
  const nodePort = options.nodePort ?? 0;
  const externalIPs = options.externalIPs ?? [];
  const loadBalancerIPs = options.loadBalancerIPs ?? [];
  const externalTrafficPolicy = options.externalTrafficPolicy ?? 'Cluster';
  const internalTrafficPolicy = options.internalTrafficPolicy ?? 'Cluster';
  const allEndpoints = options.endpoints ?? [];

  // The model's policy predicates (one source); the selection itself stays deliberately simple.
  const policy = { nodePort, externalIPs, loadBalancerIPs, externalTrafficPolicy, internalTrafficPolicy };
  const usesCluster = usesClusterEndpoints(policy);
  const usesLocal = usesLocalEndpoints(policy);
  const clusterEndpoints = usesCluster ? usable(allEndpoints, () => true) : [];
  const localEndpoints = usesLocal ? usable(allEndpoints, (ep) => ep.isLocal) : [];
  const reachable = new Set([...clusterEndpoints, ...localEndpoints]);

  return {
    key: `${namespace}/${name}:${portName}/${protocol}`,
    namespace,
    name,
    portName,
    servicePortName: portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`,
    protocol,
    type: options.type ?? (loadBalancerIPs.length > 0 ? 'LoadBalancer' : nodePort !== 0 ? 'NodePort' : 'ClusterIP'),
    clusterIPs: [options.clusterIP ?? '172.30.0.41'],
    port: options.port ?? 80,
    nodePort,
    externalIPs,
    loadBalancerIPs,
    loadBalancerSourceRanges: options.loadBalancerSourceRanges ?? [],
    sessionAffinity: options.sessionAffinity ?? { kind: 'None' },
    externalTrafficPolicy,
    internalTrafficPolicy,
    healthCheckNodePort: options.healthCheckNodePort ?? 0,
    allEndpoints,
    clusterEndpoints,
    localEndpoints,
    reachableEndpoints: allEndpoints.filter((ep) => reachable.has(ep)),
  };
}

export function desiredState(servicePorts: readonly ServicePort[]): DesiredState {
  return {
    family: 'IPv4',
    node: { name: 'test-node', ips: ['192.168.0.2'], zone: undefined, labels: {}, podCIDRs: [] },
    servicePorts: new Map(servicePorts.map((sp) => [sp.key, sp])),
  };
}

/** The conventions of upstream's proxier_test.go: pod CIDR 10.0.0.0/8, node IP 192.168.0.2. */
export const testContext: RenderContext = {
  ...defaultRenderContext,
  localTraffic: localTrafficFromCIDR('10.0.0.0/8'),
  nodeIPs: ['192.168.0.2'],
  randomFully: false,
};

export function render(servicePorts: readonly ServicePort[], ctx: RenderContext = testContext): RuleSet {
  return renderRuleSet(desiredState(servicePorts), ctx);
}

/** The rules of one service port alone. */
export function renderOne(sp: ServicePort, ctx: RenderContext = testContext): ServicePortRules {
  const rules = render([sp], ctx).servicePorts.get(sp.key);
  if (rules === undefined) throw new Error(`no rules for ${sp.key}`);
  return rules;
}

/** `-A CHAIN rule` lines of one service port, owned chains first, then shared rules, per table. */
export function lines(rules: ServicePortRules, table: TableName): string[] {
  const out: string[] = [];
  for (const chain of rules.chains) {
    if (chain.table !== table) continue;
    for (const rule of chain.rules) out.push(`-A ${chain.name} ${rule}`);
  }
  for (const shared of rules.sharedRules) {
    if (shared.table === table) out.push(`-A ${shared.chain} ${shared.rule}`);
  }
  return out;
}

export function chainNames(rules: ServicePortRules): string[] {
  return rules.chains.map((chain) => chain.name);
}

/** Every rule of the rule set per `table/chain`: ordered chains in order, shared chains' service
 * rules sorted (their order is free) followed by the trailer. */
export function allRules(ruleSet: RuleSet): Map<string, string[]> {
  const byChain = new Map<string, string[]>();
  for (const chain of ruleSet.staticChains) {
    byChain.set(`${chain.table}/${chain.name}`, [...chain.rules]);
  }
  const sharedByChain = new Map<string, string[]>();
  for (const sp of ruleSet.servicePorts.values()) {
    for (const chain of sp.chains) byChain.set(`${chain.table}/${chain.name}`, [...chain.rules]);
    for (const shared of sp.sharedRules) {
      const key = `${shared.table}/${shared.chain}`;
      sharedByChain.set(key, [...(sharedByChain.get(key) ?? []), shared.rule]);
    }
  }
  for (const chain of ruleSet.sharedChains) {
    const key = `${chain.table}/${chain.name}`;
    byChain.set(key, [...(sharedByChain.get(key) ?? []).sort(), ...chain.trailer]);
  }
  return byChain;
}

/** Parses an iptables-restore text (as in upstream's tests) into the same shape as `allRules`. */
export function parseRestore(text: string): Map<string, string[]> {
  const byChain = new Map<string, string[]>();
  let table = '';
  const sharedChains = new Set(['nat/KUBE-SERVICES', 'nat/KUBE-NODEPORTS', 'filter/KUBE-SERVICES', 'filter/KUBE-EXTERNAL-SERVICES', 'filter/KUBE-NODEPORTS', 'filter/KUBE-PROXY-FIREWALL']);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith(':')) byChain.set(`${table}/${line.slice(1).split(' ')[0] ?? ''}`, []);
    else if (line.startsWith('-A ')) {
      const [, chain = ''] = line.split(' ');
      byChain.get(`${table}/${chain}`)?.push(line.slice(4 + chain.length));
    }
  }
  // Sort shared chains' service rules as allRules does, keeping the KUBE-SERVICES trailer last.
  for (const key of sharedChains) {
    const rules = byChain.get(key);
    if (rules === undefined) continue;
    const trailer = rules.filter((rule) => rule.includes('-j KUBE-NODEPORTS') && key === 'nat/KUBE-SERVICES');
    const rest = rules.filter((rule) => !trailer.includes(rule)).sort();
    byChain.set(key, [...rest, ...trailer]);
  }
  return byChain;
}

/**
 * Upstream proxier_test.go expected text, adjusted for what we deliberately render differently:
 * its fake proxier hard-codes the mark "0x4000" where kube-proxy formats `1<<14` with Go's
 * %#08x ("0x00004000"), and its restore text has no KUBE-PROXY-CANARY (created by its Monitor).
 */
export function upstreamRules(text: string): Map<string, string[]> {
  return parseRestore(text.replaceAll('0x4000', '0x00004000'));
}

/** allRules without the (always empty) canary chains, for comparison with upstream's text. */
export function rulesWithoutCanaries(ruleSet: RuleSet): Map<string, string[]> {
  const rules = allRules(ruleSet);
  rules.delete('nat/KUBE-PROXY-CANARY');
  rules.delete('filter/KUBE-PROXY-CANARY');
  return rules;
}

/** Asserts that the rule set has exactly upstream's chains, with the same rules (see allRules). */
export function expectUpstream(ruleSet: RuleSet, text: string): void {
  const actual = rulesWithoutCanaries(ruleSet);
  const want = upstreamRules(text);
  expect([...actual.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [chain, rules] of want) {
    expect({ chain, rules: actual.get(chain) }).toEqual({ chain, rules });
  }
}
