// The three places configuration comes from, each turned into a "layer" of raw values that
// remember their source: a KubeProxyConfiguration YAML file, the environment, and flags.

import { parse as parseYaml } from 'yaml';
import { FIELDS, type FieldName, type FieldSources } from './fields.js';
import type { ConfigError } from './types.js';
import { isRecord, messageOf } from '../values.js';

export interface RawValue {
  readonly value: unknown;
  /** Named in error messages: `--sync-period`, `KUBE_PROXY_TS_SYNC_PERIOD`, `config file x field y`. */
  readonly source: string;
}

export type Layer = Partial<Record<FieldName, RawValue>>;

export interface LayerResult {
  readonly layer: Layer;
  readonly errors: readonly ConfigError[];
  readonly warnings: readonly string[];
}

const API_VERSION = 'kubeproxy.config.k8s.io/v1alpha1';
const KIND = 'KubeProxyConfiguration';

// KubeProxyConfiguration v1alpha1 fields we accept and ignore: a full kube-proxy config file
// (e.g. kubeadm's) must load unchanged. Anything else is a typo, and kube-proxy's strict decoding
// rejects it too.
const IGNORED_TOP_LEVEL = new Set([
  'apiVersion',
  'kind',
  'featureGates',
  'clientConnection',
  'logging',
  'bindAddressHardFail',
  'enableProfiling',
  'showHiddenMetricsForVersion',
  'iptables',
  'ipvs',
  'nftables',
  'winkernel',
  'oomScoreAdj',
  'conntrack',
  'configSyncPeriod',
  'portRange',
  'udpIdleTimeout',
  'windowsRunAsService',
]);
const KNOWN_NESTED: Readonly<Record<string, ReadonlySet<string>>> = {
  iptables: new Set(['masqueradeBit', 'masqueradeAll', 'localhostNodePorts', 'syncPeriod', 'minSyncPeriod']),
  detectLocal: new Set(['bridgeInterface', 'interfaceNamePrefix']),
  clientConnection: new Set(['kubeconfig', 'acceptContentTypes', 'contentType', 'qps', 'burst']),
};

function lookup(document: Readonly<Record<string, unknown>>, path: readonly string[]): unknown {
  let current: unknown = document;
  for (const key of path) {
    if (!isRecord(current)) return undefined;
    current = current[key];
  }
  return current;
}

function fileError(path: string, source: string, message: string): LayerResult {
  return { layer: {}, warnings: [], errors: [{ field: 'config', value: path, source, message: `config file "${path}" (from ${source}) ${message}` }] };
}

/**
 * Reads a KubeProxyConfiguration, either a full document (`apiVersion` + `kind`) or a bare
 * mapping of its fields. `source` says how the path was given (`--config`, `KUBE_PROXY_TS_CONFIG`).
 */
export function fileLayer(path: string, source: string, readFile: (path: string) => string): LayerResult {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    return fileError(path, source, `cannot be read: ${messageOf(error)}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    return fileError(path, source, `is not valid YAML: ${messageOf(error)}`);
  }
  document ??= {};
  if (!isRecord(document)) return fileError(path, source, 'must hold a mapping of KubeProxyConfiguration fields');

  const errors: ConfigError[] = [];
  const warnings: string[] = [];
  const where = `config file ${path}`;
  const invalid = (field: string, value: unknown, message: string): void => {
    const shown = JSON.stringify(value) ?? String(value);
    errors.push({ field, value: typeof value === 'string' ? value : shown, source: where, message: `${field} ${shown} (from ${where}) ${message}` });
  };

  if (document.apiVersion !== undefined && document.apiVersion !== API_VERSION) {
    invalid('apiVersion', document.apiVersion, `is not supported; use ${API_VERSION} or omit apiVersion and kind`);
  }
  if (document.kind !== undefined && document.kind !== KIND) invalid('kind', document.kind, `must be ${KIND}`);

  const ours = new Set<string>(Object.values(FIELDS).flatMap((field) => field.file.map((filePath) => filePath[0])));
  for (const key of Object.keys(document)) {
    if (!ours.has(key) && !IGNORED_TOP_LEVEL.has(key)) invalid(key, key, 'is not a KubeProxyConfiguration field kube-proxy-ts knows');
  }
  for (const [section, known] of Object.entries(KNOWN_NESTED)) {
    const nested = document[section];
    if (nested === undefined || nested === null) continue;
    if (!isRecord(nested)) {
      invalid(section, nested, 'must be a mapping');
      continue;
    }
    for (const key of Object.keys(nested)) {
      if (!known.has(key)) invalid(`${section}.${key}`, key, 'is not a field kube-proxy-ts knows');
    }
  }

  // Settings that change kube-proxy's behaviour but that we do not implement: say so rather
  // than pretend.
  const featureGates = document.featureGates;
  if (isRecord(featureGates) && Object.keys(featureGates).length > 0) {
    warnings.push(`${where}: featureGates are ignored`);
  }

  const layer: Layer = {};
  for (const name of Object.keys(FIELDS) as FieldName[]) {
    for (const filePath of FIELDS[name].file) {
      const value = lookup(document, filePath);
      // YAML null (`clusterCIDR:` or `nodePortAddresses: null`) means "not set", as in Go.
      if (value !== undefined && value !== null) {
        layer[name] = { value, source: `${where} field ${filePath.join('.')}` };
        break;
      }
    }
  }
  return { layer, errors, warnings };
}

/** Empty variables count as unset: container specs often carry `VAR: ""` placeholders. */
export function envLayer(env: Readonly<Record<string, string | undefined>>): Layer {
  const layer: Layer = {};
  for (const name of Object.keys(FIELDS) as FieldName[]) {
    for (const variable of FIELDS[name].env) {
      const value = env[variable];
      if (value !== undefined && value.trim() !== '') {
        layer[name] = { value, source: variable };
        break;
      }
    }
  }
  return layer;
}

/** A flag a command takes besides the configuration fields (`render --objects`, `run --init-only`). */
export interface CommandFlag {
  /** A switch: alone means true, `=true|false` after it. */
  readonly switch?: true;
  /** May repeat; every value is kept, in order. */
  readonly multiple?: true;
  /** The value's placeholder in --help (`FILE`). */
  readonly value?: string;
  /** A one-letter spelling, `-o` for `--output` (as kubectl's). */
  readonly short?: string;
  readonly help: string;
}

/** What a command accepts on its command line: which configuration fields (by any of their
 * flags in FIELDS, so every command spells them alike) and its own flags. */
export interface CommandFlags {
  readonly fields: readonly FieldName[];
  readonly own: Readonly<Record<string, CommandFlag>>;
  /** `--config FILE` is taken (the command reads a KubeProxyConfiguration). */
  readonly configFile: boolean;
}

export interface ParsedFlags {
  readonly layer: Layer;
  readonly configPath: string | undefined;
  readonly help: boolean;
  /** The command's own flags: a switch as 'true'/'false', a multiple one as every value. */
  readonly own: Readonly<Record<string, readonly string[]>>;
  readonly errors: readonly ConfigError[];
}

function flagError(name: string, value: string, message: string, reason?: string): ConfigError {
  return { field: name, value, source: `--${name}`, message, ...(reason !== undefined ? { reason } : {}) };
}

/**
 * `--name value` and `--name=value`; a switch (`--masquerade-all`) alone means true and takes a
 * value only after `=`. A repeated flag keeps its last value, as Go's pflag does. An empty value
 * is kept: `--healthz-bind-address=` disables a server.
 */
export function flagLayer(argv: readonly string[], command: CommandFlags): ParsedFlags {
  const flagToField = new Map<string, FieldName>(command.fields.flatMap((name) => FIELDS[name].flags.map((flag) => [flag, name] as const)));
  const layer: Layer = {};
  const own: Record<string, string[]> = {};
  const errors: ConfigError[] = [];
  let configPath: string | undefined;
  let help = false;
  const shortFlags = new Map<string, string>(Object.entries(command.own).flatMap(([name, flag]) => (flag.short !== undefined ? [[`-${flag.short}`, `--${name}`]] : [])));
  for (let index = 0; index < argv.length; index += 1) {
    const given = argv[index] ?? '';
    const token = shortFlags.get(given) ?? given;
    if (token === '--help' || token === '-h') {
      help = true;
      continue;
    }
    if (!token.startsWith('--') || token === '--') {
      errors.push({ field: token, value: token, source: 'command line', message: `unexpected argument ${JSON.stringify(token)}: flags look like --name value or --name=value` });
      continue;
    }
    const equals = token.indexOf('=');
    const name = token.slice(2, equals < 0 ? undefined : equals);
    const field = flagToField.get(name);
    const ownFlag = Object.prototype.hasOwnProperty.call(command.own, name) ? command.own[name] : undefined;
    const isSwitch = (field !== undefined && isSwitchField(field)) || ownFlag?.switch === true;
    let value: string;
    if (equals >= 0) {
      value = token.slice(equals + 1);
    } else if (isSwitch) {
      value = 'true';
    } else {
      const next = argv[index + 1];
      if (next === undefined) {
        errors.push(flagError(name, '', `flag --${name} needs a value`));
        continue;
      }
      value = next;
      index += 1;
    }
    if (name === 'config' && command.configFile) {
      configPath = value;
    } else if (field !== undefined) {
      layer[field] = { value, source: `--${name}` };
    } else if (ownFlag !== undefined) {
      if (ownFlag.switch === true) {
        const lower = value.trim().toLowerCase();
        if (lower !== 'true' && lower !== 'false') {
          errors.push(flagError(name, value, `--${name} ${JSON.stringify(value)} must be true or false`, 'must be true or false'));
          continue;
        }
        value = lower;
      }
      own[name] = ownFlag.multiple === true ? [...(own[name] ?? []), value] : [value];
    } else {
      errors.push(flagError(name, value, `unknown flag --${name} (see --help)`));
    }
  }
  return { layer, configPath, help, own, errors };
}

function isSwitchField(name: FieldName): boolean {
  const field: FieldSources = FIELDS[name];
  return field.switch === true;
}
