// The configuration module's public surface.

export type { AgentConfig, BindAddress, ConfigError, ConfigResult, IptablesBackend, LogLevel, NodePortAddresses } from './types.js';
export { LOG_LEVELS, IPTABLES_BACKENDS } from './types.js';
export { parseRunArgs, runUsage, CONFIG_ENV } from './load.js';
export { parseGoDuration, formatDuration } from './duration.js';
export { parseBindAddress, formatBindAddress, normaliseIPv4Cidr } from './address.js';
