// The model's public API: untrusted API objects in, this node's immutable DesiredState out.
export type * from './types.js';
export { buildDesiredState, type BuildInput, type BuildResult } from './build.js';
export { ModelStore, type ModelSnapshot, type PendingChanges } from './store.js';
export { nodeInfoFromNode, type NodeOverrides } from './node.js';
export {
  selectEndpoints,
  externallyAccessible,
  usesClusterEndpoints,
  usesLocalEndpoints,
  hasUsableEndpoints,
  useZoneHints,
  type EndpointSelection,
  type EndpointSelectionNode,
  type EndpointSelectionPolicy,
} from './endpoints.js';
export {
  parseService,
  parseEndpointSlice,
  defaultSessionAffinityTimeoutSeconds,
  type ServiceParse,
  type ParsedService,
  type ParsedServicePort,
  type NotProxiedReason,
  type EndpointSliceParse,
  type ParsedEndpointSlice,
  type ParsedSliceEndpoint,
  type ParsedSlicePort,
} from './parse.js';
export { servicePortKey } from './service-ports.js';
export * from './well-known.js';
