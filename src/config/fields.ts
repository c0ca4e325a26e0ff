// The configuration fields we read: where each comes from (config file path, environment
// variables, flags) and how its raw value is parsed. One table, so the file reader, the
// environment reader, the flag parser and --help cannot drift apart.

import { familyOf, parseCidr, type Cidr } from '../ip.js';
import { parseBindAddress } from './address.js';
import { parseGoDuration } from './duration.js';
import {
  DETECT_LOCAL_MODES,
  IPTABLES_BACKENDS,
  LOG_LEVELS,
  type BindAddress,
  type DetectLocalMode,
  type IptablesBackendSetting,
  type LogLevel,
  type NodePortAddresses,
  type ProxyMode,
} from './types.js';

export interface FieldSources {
  /** Paths in the config file; the first that is present wins, and the first names the field. */
  readonly file: readonly (readonly string[])[];
  /** Environment variables; the first non-empty one wins. */
  readonly env: readonly string[];
  /** Flag names without `--`; the first is the one --help shows. */
  readonly flags: readonly string[];
  /** A switch: `--name` alone means true (`--name=false` turns it off), as Go's pflag bool flags. */
  readonly switch?: true;
  readonly help: string;
}

export const FIELDS = {
  hostnameOverride: {
    file: [['hostnameOverride']],
    env: ['KUBE_PROXY_TS_HOSTNAME_OVERRIDE', 'NODE_NAME'],
    // `--node-name`: what `render` called it.
    flags: ['hostname-override', 'node-name'],
    help: "this node's name (default: $NODE_NAME, else the hostname)",
  },
  kubeconfig: {
    file: [['kubeconfig'], ['clientConnection', 'kubeconfig']],
    env: ['KUBE_PROXY_TS_KUBECONFIG'],
    flags: ['kubeconfig'],
    help: 'kubeconfig file (default: in-cluster config, else $KUBECONFIG)',
  },
  clusterCIDR: {
    file: [['clusterCIDR']],
    env: ['KUBE_PROXY_TS_CLUSTER_CIDR'],
    flags: ['cluster-cidr'],
    help: 'pod CIDR, or a dual-stack pair v4,v6; with detectLocalMode ClusterCIDR, traffic to a cluster IP from outside it is masqueraded',
  },
  detectLocalMode: {
    file: [['detectLocalMode']],
    env: ['KUBE_PROXY_TS_DETECT_LOCAL_MODE'],
    flags: ['detect-local-mode'],
    help: `how traffic from pods is told from other traffic: ${DETECT_LOCAL_MODES.join(', ')} (default ClusterCIDR)`,
  },
  podBridgeInterface: {
    file: [['detectLocal', 'bridgeInterface']],
    env: ['KUBE_PROXY_TS_POD_BRIDGE_INTERFACE'],
    flags: ['pod-bridge-interface'],
    help: 'the bridge pods are attached to (detectLocalMode BridgeInterface)',
  },
  podInterfaceNamePrefix: {
    file: [['detectLocal', 'interfaceNamePrefix']],
    env: ['KUBE_PROXY_TS_POD_INTERFACE_NAME_PREFIX'],
    flags: ['pod-interface-name-prefix'],
    help: "the name prefix of pods' host-side interfaces, e.g. veth or cali (detectLocalMode InterfaceNamePrefix)",
  },
  masqueradeAll: {
    file: [['iptables', 'masqueradeAll']],
    env: ['KUBE_PROXY_TS_MASQUERADE_ALL'],
    flags: ['masquerade-all'],
    switch: true,
    help: 'masquerade all traffic to cluster IPs, from pods too (default false)',
  },
  localhostNodePorts: {
    file: [['iptables', 'localhostNodePorts']],
    env: ['KUBE_PROXY_TS_LOCALHOST_NODEPORTS'],
    flags: ['iptables-localhost-nodeports'],
    switch: true,
    help: 'NodePorts also answer on 127.0.0.1, as kube-proxy; needs net.ipv4.conf.all.route_localnet=1, which the agent sets when it may (default true)',
  },
  nodePortAddresses: {
    file: [['nodePortAddresses']],
    env: ['KUBE_PROXY_TS_NODE_PORT_ADDRESSES'],
    // `--node-port-addresses`: what `render` called it.
    flags: ['nodeport-addresses', 'node-port-addresses'],
    help: "comma-separated CIDRs, or 'primary', that NodePorts answer on (default: all local addresses)",
  },
  syncPeriod: {
    file: [['syncPeriod'], ['iptables', 'syncPeriod']],
    env: ['KUBE_PROXY_TS_SYNC_PERIOD'],
    flags: ['sync-period', 'iptables-sync-period'],
    help: 'longest time between two syncs, a Go duration (default 30s)',
  },
  minSyncPeriod: {
    file: [['minSyncPeriod'], ['iptables', 'minSyncPeriod']],
    env: ['KUBE_PROXY_TS_MIN_SYNC_PERIOD'],
    flags: ['min-sync-period', 'iptables-min-sync-period'],
    help: 'shortest time between two syncs, a Go duration (default 1s)',
  },
  metricsBindAddress: {
    file: [['metricsBindAddress']],
    env: ['KUBE_PROXY_TS_METRICS_BIND_ADDRESS'],
    flags: ['metrics-bind-address'],
    help: "IP:port of the /metrics and /configz server, '' to disable (default 127.0.0.1:10249, as kube-proxy)",
  },
  healthzBindAddress: {
    file: [['healthzBindAddress']],
    env: ['KUBE_PROXY_TS_HEALTHZ_BIND_ADDRESS'],
    flags: ['healthz-bind-address'],
    help: "IP:port of the /healthz and /livez server, '' to disable (default 0.0.0.0:10256)",
  },
  mode: {
    file: [['mode']],
    env: ['KUBE_PROXY_TS_MODE'],
    // `--mode`: what `render` called it.
    flags: ['proxy-mode', 'mode'],
    help: "proxy mode: 'iptables' (default) or 'nftables'",
  },
  masqueradeBit: {
    file: [['iptables', 'masqueradeBit']],
    env: ['KUBE_PROXY_TS_MASQUERADE_BIT'],
    flags: ['iptables-masquerade-bit'],
    help: 'fwmark bit that marks packets for SNAT, 0..31 (default 14)',
  },
  logLevel: {
    file: [['logLevel']],
    env: ['KUBE_PROXY_TS_LOG_LEVEL'],
    flags: ['log-level'],
    help: `one of ${LOG_LEVELS.join(', ')} (default info)`,
  },
  nodeIP: {
    // kube-proxy's `bindAddress` has meant "the node's primary IP" for years, despite its name.
    file: [['nodeIP'], ['bindAddress']],
    env: ['KUBE_PROXY_TS_NODE_IP'],
    flags: ['node-ip', 'bind-address'],
    help: "this node's IP, or a dual-stack pair v4,v6 (default: from the Node object, the InternalIP of each family)",
  },
  livezSyncFailureTimeout: {
    file: [['livezSyncFailureTimeout']],
    env: ['KUBE_PROXY_TS_LIVEZ_SYNC_FAILURE_TIMEOUT'],
    flags: ['livez-sync-failure-timeout'],
    help: '/livez fails once every sync has failed for this long, a Go duration; 0 = never for this reason (default 5m)',
  },
  iptablesBackend: {
    file: [['iptablesBackend']],
    env: ['KUBE_PROXY_TS_IPTABLES_BACKEND'],
    flags: ['iptables-backend'],
    help: `${IPTABLES_BACKENDS.join('|')}; auto follows the host's existing rules (default auto)`,
  },
} as const satisfies Record<string, FieldSources>;

export type FieldName = keyof typeof FIELDS;

/** The name a field has in messages: its KubeProxyConfiguration path. */
export function fieldLabel(name: FieldName): string {
  return (FIELDS[name].file[0] ?? [name]).join('.');
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (reason: string): Parsed<never> => ({ ok: false, reason });

/** Strings pass through trimmed; YAML scalars of other types are rejected with the expected type. */
function text(value: unknown, expected: string): Parsed<string> {
  return typeof value === 'string' ? ok(value.trim()) : fail(`must be ${expected}`);
}

// RFC 1123 subdomain: what the apiserver accepts as a Node name.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** kube-proxy lowercases and trims the name it was given before using it. */
export function parseNodeName(value: unknown): Parsed<string | undefined> {
  const given = text(value, 'a node name');
  if (!given.ok) return given;
  const name = given.value.toLowerCase();
  if (name === '') return ok(undefined);
  if (name.length > 253 || !NODE_NAME.test(name)) return fail('is not a valid node name (an RFC 1123 DNS subdomain)');
  return ok(name);
}

function parseOptionalPath(value: unknown): Parsed<string | undefined> {
  const given = text(value, 'a file path');
  if (!given.ok) return given;
  return ok(given.value === '' ? undefined : given.value);
}

/** One CIDR or a dual-stack pair `v4,v6` (as kube-proxy's clusterCIDR); each proxier uses its family's. */
function parseClusterCIDR(value: unknown): Parsed<readonly string[]> {
  const given = text(value, 'a CIDR string');
  if (!given.ok) return given;
  if (given.value === '') return ok([]);
  const parts = given.value.split(',').map((part) => part.trim());
  if (parts.length > 2) return fail('must be one CIDR or a dual-stack pair (e.g. 10.244.0.0/16,fd00:10:244::/56)');
  const cidrs: Cidr[] = [];
  for (const part of parts) {
    const cidr = parseCidr(part);
    if (cidr === undefined) return fail(`has "${part}", which is not a CIDR (e.g. 10.244.0.0/16)`);
    if (cidrs.some((other) => other.family === cidr.family)) return fail(`holds two ${cidr.family} CIDRs; a dual-stack pair has one of each family`);
    cidrs.push(cidr);
  }
  return ok(cidrs.map((cidr) => cidr.text));
}

/** One of `choices`, spelt exactly; empty means `whenEmpty`. */
function oneOf<T extends string>(choices: readonly T[], whenEmpty: T): (value: unknown) => Parsed<T> {
  return (value) => {
    const given = text(value, 'a string');
    if (!given.ok) return given;
    if (given.value === '') return ok(whenEmpty);
    const choice = choices.find((candidate) => candidate === given.value);
    return choice === undefined ? fail(`must be one of ${choices.join(', ')}`) : ok(choice);
  };
}

// What the kernel accepts as an interface name (IFNAMSIZ - 1 bytes, no '/', ':' or whitespace, not
// '.' or '..'), narrowed to printable ASCII without the quoting characters of an iptables-restore
// payload (a '"' there swallows the rest of the rule): the name goes into `-i NAME` unquoted.
// iptables' `-i` takes a trailing '+' as a prefix, so '+' is not allowed either.
const INTERFACE_NAME = /^[\x21-\x7e]{1,15}$/;
const NOT_IN_INTERFACE_NAME = /[/:+"'\\]/;

function parseInterfaceName(value: unknown): Parsed<string | undefined> {
  const given = text(value, 'an interface name');
  if (!given.ok) return given;
  if (given.value === '') return ok(undefined);
  const valid = INTERFACE_NAME.test(given.value) && !NOT_IN_INTERFACE_NAME.test(given.value) && given.value !== '.' && given.value !== '..';
  return valid ? ok(given.value) : fail(`is not an interface name (1-15 printable ASCII characters, none of / : + " ' \\ or spaces)`);
}

/** YAML booleans, or `true`/`false` (any case) from the environment or a flag. */
function parseBoolean(value: unknown): Parsed<boolean> {
  if (typeof value === 'boolean') return ok(value);
  if (typeof value === 'string') {
    const lower = value.trim().toLowerCase();
    if (lower === 'true') return ok(true);
    if (lower === 'false') return ok(false);
  }
  return fail('must be true or false');
}

/** A YAML list, or a comma-separated string from the environment or a flag. */
function parseNodePortAddresses(value: unknown): Parsed<NodePortAddresses> {
  let entries: string[];
  if (typeof value === 'string') {
    entries = value.split(',');
  } else if (Array.isArray(value) && value.every((entry): entry is string => typeof entry === 'string')) {
    entries = value;
  } else {
    return fail("must be a list of CIDRs or 'primary'");
  }
  entries = entries.map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) return ok({ kind: 'all' });
  if (entries.includes('primary')) {
    return entries.length === 1 ? ok({ kind: 'primary' }) : fail("may hold 'primary' only on its own");
  }
  const cidrs: string[] = [];
  for (const entry of entries) {
    // A bare IP is not a CIDR, as kube-proxy's validation says (`primary` names the node's IPs).
    const cidr = parseCidr(entry);
    if (cidr === undefined) return fail(`has entry "${entry}", which is neither a CIDR nor 'primary'`);
    if (!cidrs.includes(cidr.text)) cidrs.push(cidr.text);
  }
  // Both families are kept; each proxier takes its own (a family with none matches all its
  // addresses, as kube-proxy's NewNodePortAddresses).
  return ok({ kind: 'cidrs', cidrs });
}

function parseDuration(value: unknown): Parsed<number> {
  const given = text(value, 'a duration string such as "30s" or "1m30s"');
  if (!given.ok) return given;
  const ms = parseGoDuration(given.value);
  if (ms === undefined) return fail('is not a duration such as "30s", "1m30s" or "500ms"');
  return ok(ms);
}

export function parsePositiveDuration(value: unknown): Parsed<number> {
  const parsed = parseDuration(value);
  if (parsed.ok && parsed.value <= 0) return fail('must be greater than 0');
  return parsed;
}

export function parseNonNegativeDuration(value: unknown): Parsed<number> {
  const parsed = parseDuration(value);
  if (parsed.ok && parsed.value < 0) return fail('must be greater than or equal to 0');
  return parsed;
}

/** `''` turns the server off, as kube-proxy does for its healthz server. */
function parseOptionalBindAddress(value: unknown): Parsed<BindAddress | undefined> {
  const given = text(value, 'an IP:port string');
  if (!given.ok) return given;
  if (given.value === '') return ok(undefined);
  const parsed = parseBindAddress(given.value);
  return 'reason' in parsed ? fail(parsed.reason) : ok(parsed);
}

function parseMode(value: unknown): Parsed<ProxyMode> {
  const given = text(value, 'a string');
  if (!given.ok) return given;
  switch (given.value) {
    case '':
    case 'iptables':
      return ok('iptables');
    case 'nftables':
      return ok('nftables');
    case 'ipvs':
    case 'kernelspace':
      return fail(`is not supported: kube-proxy-ts implements the iptables and nftables modes`);
    default:
      return fail("must be 'iptables' or 'nftables'");
  }
}

function parseMasqueradeBit(value: unknown): Parsed<number> {
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(number) || number < 0 || number > 31) return fail('must be an integer within the range [0, 31]');
  return ok(number);
}

function parseLogLevel(value: unknown): Parsed<LogLevel> {
  const given = text(value, 'a string');
  if (!given.ok) return given;
  if (given.value === '') return ok('info');
  const level = LOG_LEVELS.find((candidate) => candidate === given.value.toLowerCase());
  return level === undefined ? fail(`must be one of ${LOG_LEVELS.join(', ')}`) : ok(level);
}

/**
 * One address or a dual-stack pair `v4,v6`. The unspecified address means "find it yourself", as
 * kube-proxy reads `bindAddress: 0.0.0.0`.
 */
function parseNodeIP(value: unknown): Parsed<readonly string[]> {
  const given = text(value, 'an IP address or a dual-stack pair');
  if (!given.ok) return given;
  const parts = given.value.split(',').map((part) => part.trim());
  if (parts.length > 2) return fail('must be one IP address or a dual-stack pair (e.g. 10.0.0.5,fd00::5)');
  const ips: string[] = [];
  const families = new Set<string>();
  for (const part of parts) {
    if (part === '' || part === '0.0.0.0' || part === '::') continue;
    const family = familyOf(part);
    if (family === undefined) return fail(`has "${part}", which is not an IP address`);
    if (families.has(family)) return fail(`holds two ${family} addresses; a dual-stack pair has one of each family`);
    families.add(family);
    ips.push(part);
  }
  return ok(ips);
}

/** Each field's value type once parsed; `undefined` where the field is optional. */
export interface FieldValues {
  readonly hostnameOverride: string | undefined;
  readonly kubeconfig: string | undefined;
  readonly clusterCIDR: readonly string[];
  readonly detectLocalMode: DetectLocalMode;
  readonly podBridgeInterface: string | undefined;
  readonly podInterfaceNamePrefix: string | undefined;
  readonly masqueradeAll: boolean;
  readonly localhostNodePorts: boolean;
  readonly nodePortAddresses: NodePortAddresses;
  readonly syncPeriod: number;
  readonly minSyncPeriod: number;
  readonly metricsBindAddress: BindAddress | undefined;
  readonly healthzBindAddress: BindAddress | undefined;
  readonly mode: ProxyMode;
  readonly masqueradeBit: number;
  readonly logLevel: LogLevel;
  readonly nodeIP: readonly string[];
  readonly iptablesBackend: IptablesBackendSetting;
  readonly livezSyncFailureTimeout: number;
}

export const PARSERS: { readonly [K in FieldName]: (value: unknown) => Parsed<FieldValues[K]> } = {
  hostnameOverride: parseNodeName,
  kubeconfig: parseOptionalPath,
  clusterCIDR: parseClusterCIDR,
  detectLocalMode: oneOf(DETECT_LOCAL_MODES, 'ClusterCIDR'),
  podBridgeInterface: parseInterfaceName,
  podInterfaceNamePrefix: parseInterfaceName,
  masqueradeAll: parseBoolean,
  localhostNodePorts: parseBoolean,
  nodePortAddresses: parseNodePortAddresses,
  syncPeriod: parsePositiveDuration,
  minSyncPeriod: parseNonNegativeDuration,
  metricsBindAddress: parseOptionalBindAddress,
  healthzBindAddress: parseOptionalBindAddress,
  mode: parseMode,
  masqueradeBit: parseMasqueradeBit,
  logLevel: parseLogLevel,
  nodeIP: parseNodeIP,
  iptablesBackend: oneOf(IPTABLES_BACKENDS, 'auto'),
  livezSyncFailureTimeout: parseNonNegativeDuration,
};

/** Values used when no source sets a field (kube-proxy's defaults where it has one). */
export const DEFAULTS: FieldValues = {
  hostnameOverride: undefined,
  kubeconfig: undefined,
  clusterCIDR: [],
  detectLocalMode: 'ClusterCIDR',
  podBridgeInterface: undefined,
  podInterfaceNamePrefix: undefined,
  masqueradeAll: false,
  localhostNodePorts: true,
  nodePortAddresses: { kind: 'all' },
  syncPeriod: 30_000,
  minSyncPeriod: 1_000,
  // kube-proxy's default: /metrics and /configz (which shows the configuration) stay on the node
  // unless the operator opens them (the DaemonSet binds the node IP for Prometheus).
  metricsBindAddress: { host: '127.0.0.1', port: 10249 },
  healthzBindAddress: { host: '0.0.0.0', port: 10256 },
  mode: 'iptables',
  masqueradeBit: 14,
  logLevel: 'info',
  nodeIP: [],
  iptablesBackend: 'auto',
  livezSyncFailureTimeout: 5 * 60_000,
};
