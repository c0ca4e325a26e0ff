// The configuration module's public surface.

export type { AgentConfig, BindAddress, ConfigError, ConfigResult, DetectLocal, DetectLocalMode, IptablesBackendSetting, LogLevel, NodePortAddresses } from './types.js';
export { DETECT_LOCAL_MODES, LOG_LEVELS, IPTABLES_BACKENDS } from './types.js';
export { parseRunArgs, readCommandLine, runUsage, commandUsage, CONFIG_ENV, type CommandLine } from './load.js';
export { COMMANDS, RULE_FIELDS, type CommandSpec } from './commands.js';
export { parseGoDuration, formatDuration } from './duration.js';
export { parseBindAddress, formatBindAddress } from './address.js';
export { detectLocalFrom, type DetectLocalResult } from './detect-local.js';
export { DEFAULTS, FIELDS, PARSERS, fieldLabel, type FieldName, type FieldValues } from './fields.js';
export { CONFIGZ_GROUP, kubeProxyConfiguration } from './configz.js';
