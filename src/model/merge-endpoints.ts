// Merges every EndpointSlice of one Service into the endpoint list of one service port, as
// kube-proxy's EndpointSliceCache does: match the slice port by name and protocol, one endpoint per
// "ip:port", sorted by that string.
import { preferredDuplicate, type ParsedEndpointSlice, type ParsedSliceEndpoint } from './parse-endpoint-slice.js';
import type { Endpoint, Protocol } from './types.js';
import { joinHostPort } from '../ip.js';

/**
 * `slices` should come in a stable order (the store passes them sorted by name) so that the
 * duplicate rule is deterministic; upstream's order is Go map order, i.e. random.
 */
export function mergeEndpoints(
  slices: readonly ParsedEndpointSlice[],
  portName: string,
  protocol: Protocol,
  nodeName: string,
): Endpoint[] {
  const matches: { readonly slice: ParsedEndpointSlice; readonly port: number }[] = [];
  for (const slice of slices) {
    for (const slicePort of slice.ports) {
      if (slicePort.name === portName && slicePort.protocol === protocol) matches.push({ slice, port: slicePort.port });
    }
  }
  const only = matches[0];
  if (only === undefined) return [];
  // The common case, one slice: its endpoints are already unique and in order.
  if (matches.length === 1) return only.slice.endpoints.map((parsed) => toEndpoint(parsed, only.port, nodeName));

  const byAddress = new Map<string, Endpoint>();
  for (const { slice, port } of matches) {
    for (const parsed of slice.endpoints) {
      const address = joinHostPort(parsed.ip, port);
      const existing = byAddress.get(address);
      if (existing === undefined || preferredDuplicate(existing, parsed)) byAddress.set(address, toEndpoint(parsed, port, nodeName));
    }
  }
  // Upstream sorts by Endpoint.String() ("ip:port", "[ip]:port") as a string, so "10.0.0.10:80" sorts before
  // "10.0.0.1:80". Same order here, so the KUBE-SVC rules come out in kube-proxy's order.
  const addresses = [...byAddress.keys()].sort();
  const result: Endpoint[] = new Array<Endpoint>(addresses.length);
  for (let i = 0; i < addresses.length; i++) result[i] = byAddress.get(addresses[i] as string) as Endpoint;
  return result;
}

function toEndpoint(parsed: ParsedSliceEndpoint, port: number, nodeName: string): Endpoint {
  return {
    ip: parsed.ip,
    port,
    nodeName: parsed.nodeName,
    zone: parsed.zone,
    zoneHints: parsed.zoneHints,
    ready: parsed.ready,
    serving: parsed.serving,
    terminating: parsed.terminating,
    isLocal: nodeName !== '' && parsed.nodeName === nodeName,
  };
}
