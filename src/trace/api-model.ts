// The desired state of one node read straight from the apiserver, for `trace` on a live node: the
// same lists (and selectors) the agent watches, built into a model by the same code. One read,
// no watch: a trace is a snapshot.

import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { ApiConnection } from '../k8s/connection.js';
import { getJson } from '../k8s/http-get.js';
import { endpointSliceLabelSelector, serviceFieldSelector, serviceLabelSelector } from '../k8s/sources.js';
import { buildDesiredState } from '../model/build.js';
import { nodeInfoFromNode } from '../model/node.js';
import type { DesiredState } from '../model/types.js';
import { messageOf } from '../values.js';
import type { IPFamily } from '../ip.js';

export type ApiModelResult = { readonly ok: true; readonly state: DesiredState } | { readonly ok: false; readonly message: string };

const timeoutMs = 15_000;

function items<T>(list: unknown): T[] {
  const value = (list as { items?: unknown } | null)?.items;
  return Array.isArray(value) ? (value as T[]) : [];
}

/** The model of one family (`family`'s proxier's view: its cluster IPs, its slices, its node IPs). */
export async function readModelFromApi(connection: ApiConnection, nodeName: string, nodeIPs: readonly string[], family: IPFamily = 'IPv4'): Promise<ApiModelResult> {
  const query = (labelSelector: string, fieldSelector?: string): string =>
    `?labelSelector=${encodeURIComponent(labelSelector)}${fieldSelector === undefined ? '' : `&fieldSelector=${encodeURIComponent(fieldSelector)}`}`;
  try {
    const [services, endpointSlices, node] = await Promise.all([
      getJson({ connection, path: `/api/v1/services${query(serviceLabelSelector, serviceFieldSelector)}`, timeoutMs }),
      getJson({ connection, path: `/apis/discovery.k8s.io/v1/endpointslices${query(endpointSliceLabelSelector)}`, timeoutMs }),
      getJson({ connection, path: `/api/v1/nodes/${encodeURIComponent(nodeName)}`, timeoutMs }).catch(() => undefined),
    ]);
    const nodeInfo = nodeInfoFromNode(node as V1Node | undefined, { name: nodeName, ips: [...nodeIPs], family });
    const { state } = buildDesiredState({ services: items<V1Service>(services), endpointSlices: items<V1EndpointSlice>(endpointSlices), node: nodeInfo, family });
    return { ok: true, state };
  } catch (error: unknown) {
    return { ok: false, message: messageOf(error) };
  }
}
