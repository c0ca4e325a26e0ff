// Objects with the longest names the apiserver allows, using every Service feature that writes the
// service port name into a rule comment (tests of the 255-character comment bound).

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { makeEndpoint, makeService, makeSlice } from '../unit/model/fixtures.js';

const longest = (letter: string) => letter.repeat(63);

/** Every Service feature that writes the service port name into a comment, with the longest names allowed. */
export function longestNamedObjects(namespace = longest('n'), name = longest('s'), portName = longest('p')): { services: V1Service[]; endpointSlices: V1EndpointSlice[] } {
  const port = (nodePort: number) => [{ name: portName, port: 80, protocol: 'TCP', nodePort }];
  const spec = {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10'],
    externalIPs: ['192.0.2.10'],
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: 32000,
    loadBalancerSourceRanges: ['203.0.113.0/24'],
    ports: port(30080),
  };
  const withEndpoints = makeService(namespace, name, spec, { loadBalancerIngress: [{ ip: '198.18.0.1' }] });
  const withoutEndpoints = makeService(namespace, `${name.slice(0, 62)}x`, { ...spec, clusterIP: '10.96.0.11', clusterIPs: ['10.96.0.11'], externalIPs: ['192.0.2.11'], healthCheckNodePort: 32001, ports: port(30081) }, { loadBalancerIngress: [{ ip: '198.18.0.2' }] });
  const slice = makeSlice(namespace, 'slice-1', name, [makeEndpoint('10.244.0.1', { node: 'node-a' }), makeEndpoint('10.244.1.1', { node: 'node-b' })], [{ name: portName, port: 8080, protocol: 'TCP' }]);
  return { services: [withEndpoints, withoutEndpoints], endpointSlices: [slice] };
}

/** The comments of a payload's rules, unquoted. */
export function ruleComments(payload: string): string[] {
  return [...payload.matchAll(/--comment (?:"([^"]*)"|(\S+))/g)].map((match) => match[1] ?? match[2] ?? '');
}
