// The nat chains one service port owns: KUBE-SVC- / KUBE-SVL- (pick an endpoint), KUBE-EXT-
// (external destinations: masquerade or short-circuit), KUBE-FW- (loadBalancerSourceRanges) and
// one KUBE-SEP- per reachable endpoint (hairpin masquerade, affinity, DNAT).

import type { Endpoint, ServicePort } from '../model/types.js';
import type { ServicePortContext } from './context.js';
import { cidrContains, joinHostPort, parseCidr } from '../ip.js';
import { servicePortEndpointChainName, type ServicePortChainNames } from './names.js';
import type { TrafficPlan } from './policy.js';
import { flatten } from './flatten.js';
import { kubeMarkMasqChain } from '../netfilter/vocabulary.js';
import type { OrderedChain } from './types.js';

// kube-proxy precomputes these too: a lookup is far cheaper than formatting a float per rule.
const probabilities: string[] = [];

/**
 * `1/n` as Go's `fmt.Sprintf("%0.10f", 1.0/float64(n))`. toFixed rounds exact ties up where Go
 * rounds them to even; 1/n is an exact tie at 10 decimals only for n = 2048 (1/2^11 has exactly
 * 11 decimals), checked against Go for every n up to 300000.
 */
export function probability(n: number): string {
  let text = probabilities[n];
  if (text === undefined) {
    text = n === 2048 ? '0.0004882812' : (1 / n).toFixed(10);
    probabilities[n] = text;
  }
  return text;
}

function nat(name: string, rules: string[]): OrderedChain {
  for (const rule of rules) flatten(rule);
  return { kind: 'ordered', table: 'nat', name, rules };
}

function endpointString(endpoint: Endpoint): string {
  return joinHostPort(endpoint.ip, endpoint.port);
}

/** Rules of a KUBE-SVC-/KUBE-SVL- chain that pick one of `endpoints`, after any `leading` rules. */
function serviceToEndpointRules(
  servicePort: ServicePort,
  endpoints: readonly Endpoint[],
  leading: readonly string[],
  context: ServicePortContext,
  sepName: (endpoint: Endpoint) => string,
): string[] {
  const rules = [...leading];
  const spn = servicePort.servicePortName;
  const comment = (endpoint: Endpoint): string =>
    context.endpointComments ? `-m comment --comment "${spn} -> ${endpointString(endpoint)}" ` : '';

  // Affinity first: a client seen recently goes back to the same endpoint before any dice roll.
  if (servicePort.sessionAffinity.kind === 'ClientIP') {
    const seconds = servicePort.sessionAffinity.timeoutSeconds;
    for (const endpoint of endpoints) {
      const sep = sepName(endpoint);
      rules.push(`${comment(endpoint)}-m recent --name ${sep} --rcheck --seconds ${seconds} --reap -j ${sep}`);
    }
  }
  // Endpoint i of n matches with probability 1/(n-i): uniform overall; the last one always matches.
  const count = endpoints.length;
  endpoints.forEach((endpoint, index) => {
    const statistic = index < count - 1 ? `-m statistic --mode random --probability ${probability(count - index)} ` : '';
    rules.push(`${comment(endpoint)}${statistic}-j ${sepName(endpoint)}`);
  });
  return rules;
}

function externalChainRules(servicePort: ServicePort, names: ServicePortChainNames, plan: TrafficPlan, context: ServicePortContext): string[] {
  const spn = servicePort.servicePortName;
  const rules: string[] = [];
  if (!plan.externalPolicyLocal) {
    // Endpoints may be on another node: masquerade so replies come back through this one.
    rules.push(`-m comment --comment "masquerade traffic for ${spn} external destinations" -j ${kubeMarkMasqChain}`);
  } else {
    // Local policy keeps the client's source IP. Pods reaching an external IP of the service are
    // sent to any endpoint, as if they had gone out to the load balancer and come back in.
    if (context.localTraffic !== undefined) {
      rules.push(`-m comment --comment "pod traffic for ${spn} external destinations" ${context.localTraffic.ifLocal} -j ${names.cluster}`);
    }
    // The host itself: its source would be the (local) external IP, so masquerade and use any endpoint.
    rules.push(`-m comment --comment "masquerade LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j ${kubeMarkMasqChain}`);
    rules.push(`-m comment --comment "route LOCAL traffic for ${spn} external destinations" -m addrtype --src-type LOCAL -j ${names.cluster}`);
  }
  if (plan.hasExternalEndpoints) rules.push(`-j ${plan.externalPolicyChain}`);
  return rules;
}

function firewallChainRules(servicePort: ServicePort, names: ServicePortChainNames, context: ServicePortContext): string[] {
  const spn = servicePort.servicePortName;
  const accept = `-m comment --comment "${spn} loadbalancer IP"`;
  const rules: string[] = [];
  let allowFromNode = false;
  for (const range of servicePort.loadBalancerSourceRanges) {
    rules.push(`${accept} -s ${range} -j ${names.external}`);
    const cidr = parseCidr(range);
    if (cidr !== undefined && context.primaryNodeIP !== undefined && cidrContains(cidr, context.primaryNodeIP)) {
      allowFromNode = true;
    }
  }
  // A VIP-like load balancer often puts its IP on the node, so the node's own requests to it
  // loop back with the VIP as source; let those in when the node itself is allowed.
  if (allowFromNode) {
    for (const loadBalancerIP of servicePort.loadBalancerIPs) {
      rules.push(`${accept} -s ${loadBalancerIP} -j ${names.external}`);
    }
  }
  // No target: what gets here is not DNATed and so meets its DROP in filter KUBE-PROXY-FIREWALL.
  rules.push(`-m comment --comment "other traffic to ${spn} will be dropped by KUBE-PROXY-FIREWALL"`);
  return rules;
}

function endpointChain(servicePort: ServicePort, endpoint: Endpoint, name: string, context: ServicePortContext): OrderedChain {
  const spn = servicePort.servicePortName;
  const protocol = servicePort.protocol.toLowerCase();
  const comment = context.endpointComments ? `-m comment --comment ${spn} ` : '';
  const affinity = servicePort.sessionAffinity.kind === 'ClientIP' ? `-m recent --name ${name} --set ` : '';
  return nat(name, [
    // Hairpin: a pod reaching itself through the service must see the reply come from the VIP.
    `${comment}-s ${endpoint.ip} -j ${kubeMarkMasqChain}`,
    `${comment}${affinity}-m ${protocol} -p ${protocol} -j DNAT --to-destination ${endpointString(endpoint)}`,
  ]);
}

/** The chains this service port owns, in a fixed order: SVC, SVL, EXT, FW, then SEPs in endpoint order. */
export function ownedChains(
  servicePort: ServicePort,
  names: ServicePortChainNames,
  plan: TrafficPlan,
  context: ServicePortContext,
): OrderedChain[] {
  const chains: OrderedChain[] = [];

  // Cluster-IP traffic from outside the cluster may bounce to another node: masquerade it.
  const masquerade: string[] = [];
  if (plan.hasInternalEndpoints && (context.masqueradeAll || context.localTraffic !== undefined)) {
    const protocol = servicePort.protocol.toLowerCase();
    const source = context.masqueradeAll || context.localTraffic === undefined ? '' : `${context.localTraffic.ifNotLocal} `;
    for (const clusterIP of servicePort.clusterIPs) {
      masquerade.push(
        `-m comment --comment "${servicePort.servicePortName} cluster IP" -m ${protocol} -p ${protocol} -d ${clusterIP} --dport ${servicePort.port} ${source}-j ${kubeMarkMasqChain}`,
      );
    }
  }
  const leading = (chain: string): string[] => (chain === plan.internalTrafficChain ? masquerade : []);

  // Each KUBE-SEP- name is hashed once per render of this port: cluster and local endpoints are
  // normally the very objects of reachableEndpoints (a short array: indexOf beats a Map here);
  // anything else is hashed on demand.
  const reachable = servicePort.reachableEndpoints;
  const reachableNames = reachable.map((endpoint) =>
    servicePortEndpointChainName(servicePort.servicePortName, servicePort.protocol, endpoint.ip, endpoint.port),
  );
  const sepName = (endpoint: Endpoint): string =>
    reachableNames[reachable.indexOf(endpoint)] ??
    servicePortEndpointChainName(servicePort.servicePortName, servicePort.protocol, endpoint.ip, endpoint.port);

  if (plan.usesClusterPolicyChain) {
    chains.push(nat(names.cluster, serviceToEndpointRules(servicePort, servicePort.clusterEndpoints, leading(names.cluster), context, sepName)));
  }
  if (plan.usesLocalPolicyChain) {
    chains.push(nat(names.local, serviceToEndpointRules(servicePort, servicePort.localEndpoints, leading(names.local), context, sepName)));
  }
  if (plan.usesExternalTrafficChain) {
    chains.push(nat(names.external, externalChainRules(servicePort, names, plan, context)));
  }
  if (plan.usesFirewallChain) {
    chains.push(nat(names.firewall, firewallChainRules(servicePort, names, context)));
  }
  reachable.forEach((endpoint, index) => {
    chains.push(endpointChain(servicePort, endpoint, reachableNames[index] ?? sepName(endpoint), context));
  });
  return chains;
}
