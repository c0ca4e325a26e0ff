// One service port's part of the nftables ruleset, as upstream's syncProxyRules writes it: the
// service/local/external/firewall chains, one chain (and affinity set) per reachable endpoint, and
// the elements it puts into the shared maps and sets. Pure.

import { cidrContains, joinHostPort, parseCidr } from '../ip.js';
import type { Endpoint, ServicePort } from '../model/types.js';
import { planTraffic } from '../render/policy.js';
import type { NftChain, NftContainer, NftContext, NftElement, NftServicePortPart } from './types.js';
import { CHAIN, MAP, SET, gotoChain, nftEndpointNames, nftServicePortNames, type NftEndpointNames, type NftFamily } from './vocabulary.js';

export function renderServicePort(servicePort: ServicePort, family: NftFamily, context: NftContext): NftServicePortPart {
  const { namespace, name, portName, protocol } = servicePort;
  const names = nftServicePortNames(namespace, name, portName, protocol);
  const plan = planTraffic(servicePort, names);
  const ip = family.table;
  const proto = protocol.toLowerCase();
  const clusterIP = servicePort.clusterIPs[0] ?? '';
  const endpointNames = new Map<Endpoint, NftEndpointNames>();
  for (const endpoint of servicePort.reachableEndpoints) {
    endpointNames.set(endpoint, nftEndpointNames(namespace, name, portName, protocol, endpoint.ip, endpoint.port));
  }
  const affinity = servicePort.sessionAffinity.kind === 'ClientIP' ? servicePort.sessionAffinity : undefined;

  // Elements. kube-proxy writes no-endpoint elements with the service port name as comment.
  const elements: NftElement[] = [];
  const key = (address: string, port: number): string => `${address} . ${proto} . ${port}`;
  const noEndpoint = (container: string, elementKey: string, verdict: string): NftElement => ({
    container,
    key: elementKey,
    value: verdict,
    comment: servicePort.servicePortName,
  });
  const internalVerdict = plan.hasEndpoints ? 'drop' : gotoChain(CHAIN.reject);
  const externalVerdict = internalVerdict;
  elements.push({ container: SET.clusterIPs, key: clusterIP });
  if (plan.hasInternalEndpoints) {
    elements.push({ container: MAP.serviceIPs, key: key(clusterIP, servicePort.port), value: gotoChain(plan.internalTrafficChain) });
  } else {
    elements.push(noEndpoint(MAP.noEndpointServices, key(clusterIP, servicePort.port), internalVerdict));
  }
  for (const externalIP of servicePort.externalIPs) {
    if (plan.hasEndpoints) elements.push({ container: MAP.serviceIPs, key: key(externalIP, servicePort.port), value: gotoChain(names.external) });
    if (!plan.hasExternalEndpoints) elements.push(noEndpoint(MAP.noEndpointServices, key(externalIP, servicePort.port), externalVerdict));
  }
  // upstream's nftables mode filters source ranges whether or not there are endpoints.
  const usesFirewallChain = servicePort.loadBalancerIPs.length > 0 && servicePort.loadBalancerSourceRanges.length > 0;
  for (const loadBalancerIP of servicePort.loadBalancerIPs) {
    if (plan.hasEndpoints) elements.push({ container: MAP.serviceIPs, key: key(loadBalancerIP, servicePort.port), value: gotoChain(names.external) });
    if (usesFirewallChain) elements.push({ container: MAP.firewallIPs, key: key(loadBalancerIP, servicePort.port), value: gotoChain(names.firewall) });
  }
  if (!plan.hasExternalEndpoints) {
    for (const loadBalancerIP of servicePort.loadBalancerIPs) {
      elements.push(noEndpoint(MAP.noEndpointServices, key(loadBalancerIP, servicePort.port), externalVerdict));
    }
  }
  if (servicePort.nodePort !== 0) {
    const nodePortKey = `${proto} . ${servicePort.nodePort}`;
    if (plan.hasEndpoints) elements.push({ container: MAP.serviceNodePorts, key: nodePortKey, value: gotoChain(names.external) });
    if (!plan.hasExternalEndpoints) elements.push(noEndpoint(MAP.noEndpointNodePorts, nodePortKey, externalVerdict));
  }

  // Chains: endpoint chains first (the service chains jump to them).
  const chains: NftChain[] = [];
  const sets: NftContainer[] = [];
  for (const endpoint of servicePort.reachableEndpoints) {
    const endpointName = endpointNames.get(endpoint);
    if (endpointName === undefined) continue;
    const rules = [`${ip} saddr ${endpoint.ip} jump ${CHAIN.markMasquerade}`];
    if (affinity !== undefined) {
      sets.push({ kind: 'set', name: endpointName.affinitySet, type: family.addressType, flags: ['dynamic', 'timeout'], timeoutSeconds: affinity.timeoutSeconds });
      rules.push(`update @${endpointName.affinitySet} { ${ip} saddr }`);
    }
    rules.push(`meta l4proto ${proto} dnat to ${endpointAddress(endpoint)}`);
    chains.push({ name: endpointName.chain, rules });
  }
  const toEndpoints = (endpoints: readonly Endpoint[]): string[] => {
    const rules: string[] = [];
    const targets = endpoints.map((endpoint) => endpointNames.get(endpoint)?.chain ?? '');
    if (affinity !== undefined) {
      endpoints.forEach((endpoint, index) => {
        rules.push(`${ip} saddr @${endpointNames.get(endpoint)?.affinitySet ?? ''} goto ${targets[index] ?? ''}`);
      });
    }
    rules.push(`numgen random mod ${targets.length} vmap { ${targets.map((target, index) => `${index} : goto ${target}`).join(' , ')} }`);
    return rules;
  };
  const masqueradeRule = (): string | undefined => {
    const match = `${ip} daddr ${clusterIP} ${proto} dport ${servicePort.port}`;
    if (context.masqueradeAll) return `${match} jump ${CHAIN.markMasquerade}`;
    if (context.localTraffic !== undefined) return `${match} ${context.localTraffic.ifNotLocal} jump ${CHAIN.markMasquerade}`;
    return undefined;
  };
  const policyChain = (chainName: string, endpoints: readonly Endpoint[]): NftChain => {
    const rules: string[] = [];
    // The masquerade rule goes into whichever policy chain cluster-IP traffic is sent to.
    const masquerade = plan.hasInternalEndpoints && chainName === plan.internalTrafficChain ? masqueradeRule() : undefined;
    if (masquerade !== undefined) rules.push(masquerade);
    rules.push(...toEndpoints(endpoints));
    return { name: chainName, rules };
  };
  if (plan.usesClusterPolicyChain) chains.push(policyChain(names.cluster, servicePort.clusterEndpoints));
  if (plan.usesLocalPolicyChain) chains.push(policyChain(names.local, servicePort.localEndpoints));
  if (plan.usesExternalTrafficChain) {
    const rules: string[] = [];
    if (!plan.externalPolicyLocal) {
      rules.push(`jump ${CHAIN.markMasquerade}`);
    } else {
      if (context.localTraffic !== undefined) rules.push(`${context.localTraffic.ifLocal} goto ${names.cluster} comment "short-circuit pod traffic"`);
      rules.push(`fib saddr type local jump ${CHAIN.markMasquerade} comment "masquerade local traffic"`);
      rules.push(`fib saddr type local goto ${names.cluster} comment "short-circuit local traffic"`);
    }
    if (plan.hasExternalEndpoints) rules.push(`goto ${plan.externalPolicyChain}`);
    chains.push({ name: names.external, rules });
  }
  if (usesFirewallChain) {
    const sources = [...servicePort.loadBalancerSourceRanges];
    const nodeIP = context.primaryNodeIP;
    const allowFromNode =
      nodeIP !== undefined && servicePort.loadBalancerSourceRanges.some((range) => {
        const cidr = parseCidr(range);
        return cidr !== undefined && cidrContains(cidr, nodeIP);
      });
    if (allowFromNode) sources.push(...servicePort.loadBalancerIPs);
    chains.push({ name: names.firewall, rules: [`${ip} saddr != { ${sources.join(' , ')} } drop`] });
  }
  return { chains, sets, elements };
}

function endpointAddress(endpoint: Endpoint): string {
  return joinHostPort(endpoint.ip, endpoint.port);
}
