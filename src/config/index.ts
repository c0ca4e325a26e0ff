// The configuration module's public surface.

export type { AgentConfig, BindAddress, ConfigError, ConfigResult, DetectLocal, DetectLocalMode, IptablesBackend, LogLevel, NodePortAddresses } from './types.js';
export { DETECT_LOCAL_MODES, LOG_LEVELS, IPTABLES_BACKENDS } from './types.js';
export { parseRunArgs, runUsage, CONFIG_ENV } from './load.js';
export { parseGoDuration, formatDuration } from './duration.js';
export { parseBindAddress, formatBindAddress, normaliseIPv4Cidr } from './address.js';
export { detectLocalFrom, type DetectLocalResult } from './detect-local.js';
export { PARSERS } from './fields.js';
export { CONFIGZ_GROUP, kubeProxyConfiguration } from './configz.js';
