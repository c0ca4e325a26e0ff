// Labels and annotations the model reads, by their Kubernetes names.

/** Objects carrying this label belong to another service proxy (kube-proxy's informers exclude them). */
export const labelServiceProxyName = 'service.kubernetes.io/service-proxy-name';
/** Set by the EndpointSlice controller for headless Services; kube-proxy's informers exclude it too. */
export const labelHeadless = 'service.kubernetes.io/headless';
/** Links an EndpointSlice to its Service (same namespace). */
export const labelServiceName = 'kubernetes.io/service-name';
/** When the change behind an EndpointSlice update happened: feeds the network programming latency. */
export const annotationLastChangeTriggerTime = 'endpoints.kubernetes.io/last-change-trigger-time';
/** The node's zone, for topology hints. */
export const labelTopologyZone = 'topology.kubernetes.io/zone';
