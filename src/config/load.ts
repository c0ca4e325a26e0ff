// Builds the AgentConfig for `kube-proxy-ts run`: config file < environment < flags < nothing
// (defaults), each field parsed once, every problem reported with its field, value and source.

import { formatDuration } from './duration.js';
import {
  DEFAULTS,
  FIELDS,
  PARSERS,
  fieldLabel,
  parseNodeName,
  type FieldName,
  type FieldValues,
  type Parsed,
} from './fields.js';
import { COMMANDS } from './commands.js';
import { envLayer, fileLayer, flagLayer, type CommandFlags, type Layer, type RawValue } from './sources.js';
import { detectLocalFrom } from './detect-local.js';
import type { AgentConfig, ConfigError, ConfigResult } from './types.js';

export const CONFIG_ENV = 'KUBE_PROXY_TS_CONFIG';

/** Quoted as JSON, so an empty or space-padded value is visible in the message. */
function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function invalid(field: string, raw: RawValue, reason: string): ConfigError {
  const value = typeof raw.value === 'string' ? raw.value : show(raw.value);
  return { field, value, source: raw.source, reason, message: `${field} ${show(raw.value)} (from ${raw.source}) ${reason}` };
}

function parseField<K extends FieldName>(name: K, raw: RawValue): Parsed<FieldValues[K]> {
  return PARSERS[name](raw.value);
}

export type CommandLine =
  | { readonly kind: 'help' }
  | { readonly kind: 'invalid'; readonly errors: readonly ConfigError[] }
  | {
      readonly kind: 'parsed';
      /** Each field the command takes and some source set, parsed; absent = default. */
      readonly values: { -readonly [K in FieldName]?: FieldValues[K] };
      /** The raw value each set field came from (to blame it in a later check). */
      readonly merged: Layer;
      readonly own: Readonly<Record<string, readonly string[]>>;
      readonly warnings: readonly string[];
      /** Every field error; the command adds its own checks before giving up. */
      readonly errors: readonly ConfigError[];
    };

/**
 * The one reader of every command's command line: flags (the same names and validation for every
 * command, COMMANDS in commands.ts), over the environment and a config file where the command
 * reads them. Pure: the environment and the file reader are passed in.
 */
export function readCommandLine(
  command: CommandFlags & { readonly env: boolean },
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
): CommandLine {
  const flags = flagLayer(argv, command);
  if (flags.help) return { kind: 'help' };
  if (flags.errors.length > 0) return { kind: 'invalid', errors: flags.errors };

  const errors: ConfigError[] = [];
  const warnings: string[] = [];
  let fileValues: Layer = {};
  const envConfig = command.env ? env[CONFIG_ENV] : undefined;
  const configPath = flags.configPath ?? (envConfig !== undefined && envConfig.trim() !== '' ? envConfig : undefined);
  if (command.configFile && configPath !== undefined) {
    const file = fileLayer(configPath, flags.configPath !== undefined ? '--config' : CONFIG_ENV, readFile);
    errors.push(...file.errors);
    warnings.push(...file.warnings);
    fileValues = file.layer;
  }
  const all: Layer = { ...fileValues, ...(command.env ? envLayer(env) : {}), ...flags.layer };
  const merged: Layer = {};
  const values: { -readonly [K in FieldName]?: FieldValues[K] } = {};
  const assign = <K extends FieldName>(name: K): void => {
    const raw = all[name];
    if (raw === undefined) return;
    merged[name] = raw;
    const parsed = parseField(name, raw);
    if (parsed.ok) values[name] = parsed.value;
    else errors.push(invalid(fieldLabel(name), raw, parsed.reason));
  };
  for (const name of command.fields) assign(name);
  return { kind: 'parsed', values, merged, own: flags.own, warnings, errors };
}

/**
 * Parses the arguments after `run` into an AgentConfig. Pure: the environment, the file reader
 * and the machine's hostname (the node name of last resort, as in kube-proxy) are passed in.
 */
export function parseRunArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string,
  hostname?: string,
): ConfigResult {
  const line = readCommandLine(COMMANDS.run, argv, env, readFile);
  if (line.kind === 'help') return { kind: 'help', text: runUsage() };
  if (line.kind === 'invalid') return line;
  const { merged, warnings } = line;
  // Unset fields take their defaults (a field set to '' keeps its parsed undefined: a server turned off).
  const values: Partial<FieldValues> = { ...DEFAULTS, ...line.values };
  const errors = [...line.errors];

  // Blame the one that was set explicitly; syncPeriod when both were.
  const { syncPeriod, minSyncPeriod } = values;
  if (syncPeriod !== undefined && minSyncPeriod !== undefined && minSyncPeriod > syncPeriod) {
    if (merged.syncPeriod !== undefined) {
      errors.push(invalid(fieldLabel('syncPeriod'), merged.syncPeriod, `must be greater than or equal to minSyncPeriod (${formatDuration(minSyncPeriod)})`));
    } else if (merged.minSyncPeriod !== undefined) {
      errors.push(invalid(fieldLabel('minSyncPeriod'), merged.minSyncPeriod, `must be less than or equal to syncPeriod (${formatDuration(syncPeriod)})`));
    }
  }

  // Each interface-based mode needs its interface, as kube-proxy's validation says.
  const mode = values.detectLocalMode ?? DEFAULTS.detectLocalMode;
  const local = detectLocalFrom(mode, values.podBridgeInterface, values.podInterfaceNamePrefix);
  if (!local.ok && errors.every((error) => error.field !== fieldLabel(local.missing))) {
    errors.push({
      field: fieldLabel(local.missing),
      value: '',
      source: merged.detectLocalMode?.source ?? 'defaults',
      message: `detectLocalMode ${mode} needs ${fieldLabel(local.missing)} (--${FIELDS[local.missing].flags[0]})`,
    });
  }

  // Unset or explicitly empty: the hostname, lowercased, as kube-proxy does.
  let nodeName = values.hostnameOverride;
  if (nodeName === undefined && errors.every((error) => error.field !== 'hostnameOverride')) {
    const fromHost = hostname === undefined ? undefined : parseNodeName(hostname);
    if (fromHost?.ok === true) nodeName = fromHost.value;
    if (nodeName === undefined) {
      const why = fromHost === undefined ? 'the hostname is unknown' : `the hostname ${show(hostname)} is not a valid node name`;
      errors.push({
        field: 'hostnameOverride',
        value: hostname ?? '',
        source: 'the hostname',
        message: `hostnameOverride is not set and ${why}: set --hostname-override or NODE_NAME`,
      });
    }
  }

  if (errors.length > 0) return { kind: 'invalid', errors };
  const config: AgentConfig = {
    nodeName: nodeName ?? '',
    kubeconfig: values.kubeconfig,
    clusterCIDRs: values.clusterCIDR ?? DEFAULTS.clusterCIDR,
    detectLocal: local.ok ? local.detectLocal : { mode: 'ClusterCIDR' },
    masqueradeAll: values.masqueradeAll ?? DEFAULTS.masqueradeAll,
    localhostNodePorts: values.localhostNodePorts ?? DEFAULTS.localhostNodePorts,
    nodePortAddresses: values.nodePortAddresses ?? DEFAULTS.nodePortAddresses,
    syncPeriodMs: syncPeriod ?? DEFAULTS.syncPeriod,
    minSyncPeriodMs: minSyncPeriod ?? DEFAULTS.minSyncPeriod,
    metricsBindAddress: values.metricsBindAddress,
    healthzBindAddress: values.healthzBindAddress,
    mode: values.mode ?? DEFAULTS.mode,
    masqueradeBit: values.masqueradeBit ?? DEFAULTS.masqueradeBit,
    logLevel: values.logLevel ?? DEFAULTS.logLevel,
    nodeIPs: values.nodeIP ?? DEFAULTS.nodeIP,
    iptablesBackend: values.iptablesBackend ?? DEFAULTS.iptablesBackend,
    livezSyncFailureTimeoutMs: values.livezSyncFailureTimeout ?? DEFAULTS.livezSyncFailureTimeout,
  };
  return { kind: 'ok', config, warnings, initOnly: line.own['init-only']?.[0] === 'true' };
}

/** `run --help`, generated from the field table so it lists exactly what is accepted. */
export function runUsage(): string {
  return commandUsage(COMMANDS.run, [
    'Usage: kube-proxy-ts run [flags]',
    '',
    'Precedence: flags > environment > config file > defaults.',
    '',
    `  --config FILE  KubeProxyConfiguration YAML (kubeproxy.config.k8s.io/v1alpha1, or a bare mapping) [$${CONFIG_ENV}]`,
  ]);
}

/** A command's --help: its header, then its own flags and every field flag it takes (with aliases). */
export function commandUsage(command: CommandFlags & { readonly env: boolean }, header: readonly string[]): string {
  const lines = [...header];
  for (const [name, flag] of Object.entries(command.own)) {
    const short = flag.short !== undefined ? `-${flag.short}, ` : '';
    lines.push(`  ${short}--${name}${flag.value !== undefined ? ` ${flag.value}` : ''}${flag.multiple === true ? ' (repeatable)' : ''}`);
    lines.push(`      ${flag.help}`);
  }
  for (const name of command.fields) {
    const field = FIELDS[name];
    const [flag, ...aliases] = field.flags;
    const aliasText = aliases.length > 0 ? ` (alias ${aliases.map((alias) => `--${alias}`).join(', ')})` : '';
    lines.push(`  --${flag}${aliasText}`);
    const env = command.env ? `; env ${field.env.map((variable) => `$${variable}`).join(', ')}` : '';
    lines.push(`      ${field.help}. Config field ${fieldLabel(name)}${env}.`);
  }
  return `${lines.join('\n')}\n`;
}
