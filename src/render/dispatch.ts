// A service port's rules in the shared dispatch chains: nat KUBE-SERVICES / KUBE-NODEPORTS
// capture its addresses; filter KUBE-SERVICES / KUBE-EXTERNAL-SERVICES reject or drop when nothing
// can serve; filter KUBE-NODEPORTS opens the health check port; filter KUBE-PROXY-FIREWALL drops
// load-balancer traffic that KUBE-FW- did not accept. Match order is upstream's
// (`-m comment ... -m tcp -p tcp -d IP --dport N -j TARGET`).

import type { ServicePort } from '../model/types.js';
import { flatten } from './flatten.js';
import type { ServicePortChainNames } from './names.js';
import type { TrafficPlan } from './policy.js';
import {
  kubeExternalServicesChain,
  kubeNodePortsChain,
  kubeProxyFirewallChain,
  kubeServicesChain,
} from '../netfilter/vocabulary.js';
import type { SharedRule } from './types.js';
import type { TableName } from '../netfilter/vocabulary.js';

/**
 * `localhostNodePortsCounter`: with localhost NodePorts on and an nfacct counter for them, each
 * NodePort first gets a rule for 127.0.0.0/8 that counts into it (kube-proxy's
 * `kubeproxy_iptables_localhost_nodeports_accepted_packets_total`); same target as the general rule.
 */
export function dispatchRules(
  servicePort: ServicePort,
  names: ServicePortChainNames,
  plan: TrafficPlan,
  localhostNodePortsCounter?: string,
): SharedRule[] {
  const rules: SharedRule[] = [];
  const add = (table: TableName, chain: string, rule: string): void => {
    rules.push({ table, chain, rule: flatten(rule) });
  };
  const spn = servicePort.servicePortName;
  const protocol = servicePort.protocol.toLowerCase();
  const match = `-m ${protocol} -p ${protocol}`;
  const port = servicePort.port;

  // No endpoints anywhere: REJECT (the client learns at once). Endpoints, but none this policy
  // may use: DROP, as the client might reach another node that has some.
  const filterComment = plan.hasEndpoints ? `"${spn} has no local endpoints"` : `"${spn} has no endpoints"`;
  const filterTarget = plan.hasEndpoints ? 'DROP' : 'REJECT';

  for (const clusterIP of servicePort.clusterIPs) {
    if (plan.hasInternalEndpoints) {
      add('nat', kubeServicesChain, `-m comment --comment "${spn} cluster IP" ${match} -d ${clusterIP} --dport ${port} -j ${plan.internalTrafficChain}`);
    } else {
      add('filter', kubeServicesChain, `-m comment --comment ${filterComment} ${match} -d ${clusterIP} --dport ${port} -j ${filterTarget}`);
    }
  }

  for (const externalIP of servicePort.externalIPs) {
    if (plan.hasEndpoints) {
      add('nat', kubeServicesChain, `-m comment --comment "${spn} external IP" ${match} -d ${externalIP} --dport ${port} -j ${names.external}`);
    }
    // Without endpoints for outside traffic, drop whatever KUBE-EXT- did not short-circuit.
    if (!plan.hasExternalEndpoints) {
      add('filter', kubeExternalServicesChain, `-m comment --comment ${filterComment} ${match} -d ${externalIP} --dport ${port} -j ${filterTarget}`);
    }
  }

  for (const loadBalancerIP of servicePort.loadBalancerIPs) {
    if (plan.hasEndpoints) {
      add('nat', kubeServicesChain, `-m comment --comment "${spn} loadbalancer IP" ${match} -d ${loadBalancerIP} --dport ${port} -j ${plan.loadBalancerTrafficChain}`);
    }
    // Traffic that fell through KUBE-FW- was not DNATed; it is dropped here, in filter.
    if (plan.usesFirewallChain) {
      add('filter', kubeProxyFirewallChain, `-m comment --comment "${spn} traffic not accepted by ${names.firewall}" ${match} -d ${loadBalancerIP} --dport ${port} -j DROP`);
    }
  }
  if (!plan.hasExternalEndpoints) {
    for (const loadBalancerIP of servicePort.loadBalancerIPs) {
      add('filter', kubeExternalServicesChain, `-m comment --comment ${filterComment} ${match} -d ${loadBalancerIP} --dport ${port} -j ${filterTarget}`);
    }
  }

  if (servicePort.nodePort !== 0) {
    // NodePorts are not subject to loadBalancerSourceRanges (kube-proxy cannot change that now).
    if (plan.hasEndpoints) {
      // Listed first, and kept first by partial syncs (diff.ts inserts a service port's new shared
      // rules so that they end up in this order): the general rule would take its packets.
      if (localhostNodePortsCounter !== undefined) {
        add(
          'nat',
          kubeNodePortsChain,
          `-m comment --comment ${spn} ${match} -d 127.0.0.0/8 --dport ${servicePort.nodePort} -m nfacct --nfacct-name ${localhostNodePortsCounter} -j ${names.external}`,
        );
      }
      add('nat', kubeNodePortsChain, `-m comment --comment ${spn} ${match} --dport ${servicePort.nodePort} -j ${names.external}`);
    }
    if (!plan.hasExternalEndpoints) {
      add('filter', kubeExternalServicesChain, `-m comment --comment ${filterComment} -m addrtype --dst-type LOCAL ${match} --dport ${servicePort.nodePort} -j ${filterTarget}`);
    }
  }

  // Accepted whether or not this node has local endpoints: the load balancer must get its answer.
  if (servicePort.healthCheckNodePort !== 0) {
    add('filter', kubeNodePortsChain, `-m comment --comment "${spn} health check node port" -m tcp -p tcp --dport ${servicePort.healthCheckNodePort} -j ACCEPT`);
  }
  return rules;
}
