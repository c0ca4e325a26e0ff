// One-shot desired state from full lists of objects (the `render` command, tests). It runs the
// same code as the incremental ModelStore, so both paths agree by construction.
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import type { IPFamily } from '../ip.js';
import { ModelStore } from './store.js';
import type { DesiredState, NodeInfo, Skipped } from './types.js';

export interface BuildInput {
  readonly services: Iterable<V1Service>;
  readonly endpointSlices: Iterable<V1EndpointSlice>;
  readonly node: NodeInfo;
  /** Default IPv4. */
  readonly family?: IPFamily;
}

export interface BuildResult {
  readonly state: DesiredState;
  readonly skipped: readonly Skipped[];
}

/** When an object appears twice (same namespace/name), the later one wins, as with a watch. */
export function buildDesiredState({ services, endpointSlices, node, family = 'IPv4' }: BuildInput): BuildResult {
  const store = new ModelStore(node, family);
  for (const service of services) store.upsertService(service);
  for (const endpointSlice of endpointSlices) store.upsertEndpointSlice(endpointSlice);
  const { state, skipped } = store.snapshot();
  return { state, skipped };
}
