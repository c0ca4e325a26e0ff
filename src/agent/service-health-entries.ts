// What each healthCheckNodePort server reports, from the desired state. Pure.
// As upstream (EndpointsMap.LocalReadyEndpoints): only ready local endpoints count, each IP once
// across the Service's ports. Serving-but-terminating local endpoints still get traffic from the
// rules, but a node with only those answers 503 so that load balancers drain it.

import type { DesiredState } from '../model/types.js';
import type { ServiceHealthEntry } from '../server/index.js';

/** One entry per Service (`namespace/name`) that has a healthCheckNodePort. */
export function serviceHealthEntries(state: DesiredState): Map<string, ServiceHealthEntry> {
  const ports = new Map<string, { namespace: string; name: string; healthCheckNodePort: number; readyLocalIPs: Set<string> }>();
  for (const servicePort of state.servicePorts.values()) {
    if (servicePort.healthCheckNodePort === 0) continue;
    const key = `${servicePort.namespace}/${servicePort.name}`;
    let entry = ports.get(key);
    if (entry === undefined) {
      entry = { namespace: servicePort.namespace, name: servicePort.name, healthCheckNodePort: servicePort.healthCheckNodePort, readyLocalIPs: new Set() };
      ports.set(key, entry);
    }
    for (const endpoint of servicePort.allEndpoints) if (endpoint.isLocal && endpoint.ready) entry.readyLocalIPs.add(endpoint.ip);
  }
  const entries = new Map<string, ServiceHealthEntry>();
  for (const [key, entry] of ports) {
    entries.set(key, { namespace: entry.namespace, name: entry.name, healthCheckNodePort: entry.healthCheckNodePort, localEndpoints: entry.readyLocalIPs.size });
  }
  return entries;
}
