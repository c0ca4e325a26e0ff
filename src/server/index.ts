// The server module's public surface: metrics, proxy health, and healthCheckNodePort servers.

export { createMetrics } from './metrics.js';
export type { AgentMetrics, HealthProbe, MetricsOptions, SyncKind, SyncObservation, SyncOutcome, SyncPhase } from './metrics.js';
export { ProxierHealth, TO_BE_DELETED_TAINT } from './health.js';
export type { NodeEligibilityInput, ProxierHealthOptions, ProxierHealthSnapshot } from './health.js';
export { startHealthServer, startMetricsServer, healthBody, formatGoJsonTime, type MetricsServerInfo } from './http.js';
export type { HealthServerOptions, RunningServer } from './http.js';
export { ServiceHealthServers } from './service-health.js';
export type { ServiceHealthEntry, ServiceHealthListenFailure, ServiceHealthServersOptions, ServiceHealthSyncResult } from './service-health.js';
