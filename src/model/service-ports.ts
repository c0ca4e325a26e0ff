// Turns one parsed Service and its parsed EndpointSlices into its ServicePorts for this node.
import { selectEndpoints, type EndpointSelectionNode } from './endpoints.js';
import { mergeEndpoints } from './merge-endpoints.js';
import type { ParsedService, ParsedServicePort } from './parse.js';
import type { ParsedEndpointSlice } from './parse-endpoint-slice.js';
import type { ServicePort } from './types.js';

/** `ns/name:portName/PROTOCOL`, the ServicePort key. */
export function servicePortKey(serviceKey: string, port: Pick<ParsedServicePort, 'name' | 'protocol'>): string {
  return `${serviceKey}:${port.name}/${port.protocol}`;
}

/**
 * @param slices the Service's usable slices, sorted by name.
 * @param lostNodePorts spec.ports indexes whose node port another Service owns (a clash): the port
 *   is built without it, so its cluster, external and load-balancer IPs still work.
 */
export function buildServicePorts(
  service: ParsedService,
  slices: readonly ParsedEndpointSlice[],
  node: EndpointSelectionNode,
  lostNodePorts: ReadonlySet<number>,
): ServicePort[] {
  const result: ServicePort[] = [];
  for (const port of service.ports) {
    const nodePort = lostNodePorts.has(port.index) ? 0 : port.nodePort;
    const allEndpoints = mergeEndpoints(slices, port.name, port.protocol, node.name);
    const policy = {
      internalTrafficPolicy: service.internalTrafficPolicy,
      externalTrafficPolicy: service.externalTrafficPolicy,
      nodePort,
      externalIPs: service.externalIPs,
      loadBalancerIPs: service.loadBalancerIPs,
    };
    const selection = selectEndpoints(policy, allEndpoints, node);
    result.push({
      key: servicePortKey(service.key, port),
      namespace: service.namespace,
      name: service.name,
      portName: port.name,
      servicePortName: port.name === '' ? service.key : `${service.key}:${port.name}`,
      protocol: port.protocol,
      type: service.type,
      clusterIPs: service.clusterIPs,
      port: port.port,
      nodePort,
      externalIPs: service.externalIPs,
      loadBalancerIPs: service.loadBalancerIPs,
      loadBalancerSourceRanges: service.loadBalancerSourceRanges,
      sessionAffinity: service.sessionAffinity,
      externalTrafficPolicy: service.externalTrafficPolicy,
      internalTrafficPolicy: service.internalTrafficPolicy,
      healthCheckNodePort: service.healthCheckNodePort,
      allEndpoints,
      clusterEndpoints: selection.clusterEndpoints,
      localEndpoints: selection.localEndpoints,
      reachableEndpoints: selection.reachableEndpoints,
    });
  }
  return result;
}
