// `kube-proxy-ts render`: objects in, one complete iptables-restore payload for a fresh node out.
// Tools outside the project rely on this contract (flags, exit codes, stdout = payload only).

import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isIPv4 } from 'node:net';
import { mergeBundles, parseObjects, type ObjectBundle } from '../input/objects.js';
import { buildDesiredState } from '../model/build.js';
import { nodeInfoFromNode } from '../model/node.js';
import { renderRuleSet } from '../render/index.js';
import { defaultRenderContext, type RenderContext, type RuleSet } from '../render/types.js';
import type { DesiredState } from '../model/types.js';
import { fullPayload } from '../sync/payload.js';
import { detectLocalFrom, normaliseIPv4Cidr, PARSERS } from '../config/index.js';
import { localTrafficFor } from '../agent/context.js';
import { messageOf } from '../values.js';

export interface CommandIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly readTextFile: (path: string) => Promise<string>;
}

export const defaultIO: CommandIO = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  readTextFile: (path) => readFile(path, 'utf8'),
};

export const renderUsage = `Usage: kube-proxy-ts render --objects FILE [--objects FILE...] --node-name NAME --node-ip IP
                           [--cluster-cidr CIDR] [--node-port-addresses CIDR[,CIDR...]] [--mode iptables]
                           [--detect-local-mode MODE] [--pod-bridge-interface NAME]
                           [--pod-interface-name-prefix PREFIX] [--masquerade-all]
                           [--iptables-localhost-nodeports[=false]]

Reads Services, EndpointSlices and Nodes (multi-document YAML or JSON) and prints one complete
iptables-restore payload that programs NAME from scratch: iptables-restore < payload.
NodePorts answer on 127.0.0.1 too unless --iptables-localhost-nodeports=false (as run; they need
net.ipv4.conf.all.route_localnet=1 on the node, which render does not set).
`;

/** render's flags, also read by `trace --objects` (which renders the same rules, then traces). */
export const renderFlags = {
  objects: { type: 'string', multiple: true },
  'node-name': { type: 'string' },
  'node-ip': { type: 'string' },
  'cluster-cidr': { type: 'string' },
  'node-port-addresses': { type: 'string' },
  'detect-local-mode': { type: 'string' },
  'pod-bridge-interface': { type: 'string' },
  'pod-interface-name-prefix': { type: 'string' },
  'masquerade-all': { type: 'boolean' },
  'iptables-localhost-nodeports': { type: 'string' },
  mode: { type: 'string', default: 'iptables' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** The values of render's flags, as parseArgs returns them. */
export interface RenderFlagValues {
  readonly objects?: readonly string[];
  readonly 'node-name'?: string;
  readonly 'node-ip'?: string;
  readonly 'cluster-cidr'?: string;
  readonly 'node-port-addresses'?: string;
  readonly 'detect-local-mode'?: string;
  readonly 'pod-bridge-interface'?: string;
  readonly 'pod-interface-name-prefix'?: string;
  readonly 'masquerade-all'?: boolean;
  readonly 'iptables-localhost-nodeports'?: string;
  readonly mode?: string;
}

/** A bare --iptables-localhost-nodeports means true, as run's switch; parseArgs wants a value. */
export function withSwitchValues(argv: readonly string[]): string[] {
  return argv.map((arg) => (arg === '--iptables-localhost-nodeports' ? `${arg}=true` : arg));
}

/** What the objects and flags give: the node's desired state and the rules for a fresh node. */
export interface RenderedObjects {
  readonly state: DesiredState;
  readonly ruleSet: RuleSet;
  readonly context: RenderContext;
}

/** Returns the process exit code. */
export async function renderCommand(argv: readonly string[], io: CommandIO = defaultIO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: withSwitchValues(argv),
      options: renderFlags,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error: unknown) {
    io.stderr(`render: ${messageOf(error)}\n${renderUsage}`);
    return 2;
  }
  if (values.help === true) {
    io.stdout(renderUsage);
    return 0;
  }
  const rendered = await renderObjects(values, io);
  if (typeof rendered === 'number') return rendered;
  io.stdout(fullPayload(rendered.ruleSet, { jumps: 'append' }));
  return 0;
}

/**
 * Validates render's flags, reads the object files and renders: the result, or the exit code after
 * a message on stderr (`command` prefixes it).
 */
export async function renderObjects(
  values: RenderFlagValues,
  io: CommandIO,
  command = 'render',
  usage = renderUsage,
): Promise<RenderedObjects | number> {
  const files = values.objects ?? [];
  const nodeName = values['node-name'];
  const nodeIP = values['node-ip'];
  if (files.length === 0 || nodeName === undefined || nodeName === '' || nodeIP === undefined) {
    io.stderr(`${command}: --objects, --node-name and --node-ip are required\n${usage}`);
    return 2;
  }
  if (!isIPv4(nodeIP)) {
    io.stderr(`${command}: --node-ip "${nodeIP}" is not an IPv4 address\n`);
    return 2;
  }
  if (values.mode !== 'iptables') {
    io.stderr(`${command}: --mode "${String(values.mode)}" is not supported (only iptables)\n`);
    return 2;
  }
  let clusterCIDR: string | undefined;
  if (values['cluster-cidr'] !== undefined) {
    const parsed = normaliseIPv4Cidr(values['cluster-cidr'].includes('/') ? values['cluster-cidr'] : `${values['cluster-cidr']}/32`);
    if (parsed === undefined) {
      io.stderr(`${command}: --cluster-cidr "${values['cluster-cidr']}" is not an IPv4 CIDR\n`);
      return 2;
    }
    clusterCIDR = parsed;
  }
  const mode = PARSERS.detectLocalMode(values['detect-local-mode'] ?? '');
  const bridge = PARSERS.podBridgeInterface(values['pod-bridge-interface'] ?? '');
  const prefix = PARSERS.podInterfaceNamePrefix(values['pod-interface-name-prefix'] ?? '');
  for (const [flag, parsed] of [['detect-local-mode', mode], ['pod-bridge-interface', bridge], ['pod-interface-name-prefix', prefix]] as const) {
    if (!parsed.ok) {
      io.stderr(`${command}: --${flag} "${values[flag] ?? ''}" ${parsed.reason}\n`);
      return 2;
    }
  }
  if (!mode.ok || !bridge.ok || !prefix.ok) return 2;
  const localhostNodePorts = PARSERS.localhostNodePorts(values['iptables-localhost-nodeports'] ?? 'true');
  if (!localhostNodePorts.ok) {
    io.stderr(`${command}: --iptables-localhost-nodeports "${values['iptables-localhost-nodeports'] ?? ''}" ${localhostNodePorts.reason}\n`);
    return 2;
  }
  const local = detectLocalFrom(mode.value, bridge.value, prefix.value);
  if (!local.ok) {
    const flag = local.missing === 'podBridgeInterface' ? 'pod-bridge-interface' : 'pod-interface-name-prefix';
    io.stderr(`${command}: --detect-local-mode ${mode.value} needs --${flag}\n`);
    return 2;
  }
  const nodePortAddresses: string[] = [];
  for (const entry of (values['node-port-addresses'] ?? '').split(',').filter((value) => value !== '')) {
    const parsed = normaliseIPv4Cidr(entry.includes('/') ? entry : `${entry}/32`);
    if (parsed === undefined) {
      io.stderr(`${command}: --node-port-addresses entry "${entry}" is not an IPv4 CIDR\n`);
      return 2;
    }
    nodePortAddresses.push(parsed);
  }

  const bundles: ObjectBundle[] = [];
  const origin = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = await io.readTextFile(file);
    } catch (error: unknown) {
      io.stderr(`${command}: cannot read ${file}: ${messageOf(error)}\n`);
      return 1;
    }
    const loaded = parseObjects(file, text);
    if (!loaded.ok) {
      io.stderr(`${command}: ${loaded.message}\n`);
      return 1;
    }
    bundles.push(loaded.bundle);
    for (const service of loaded.bundle.services) origin.set(`Service ${service.metadata?.namespace ?? 'default'}/${service.metadata?.name ?? ''}`, file);
    for (const slice of loaded.bundle.endpointSlices) origin.set(`EndpointSlice ${slice.metadata?.namespace ?? 'default'}/${slice.metadata?.name ?? ''}`, file);
  }
  const bundle = mergeBundles(bundles);
  const nodeObject = bundle.nodes.find((node) => node.metadata?.name === nodeName);
  const node = nodeInfoFromNode(nodeObject, { name: nodeName, ips: [nodeIP] });
  const { state, skipped } = buildDesiredState({
    services: bundle.services,
    endpointSlices: bundle.endpointSlices,
    node,
  });
  if (skipped.length > 0) {
    for (const entry of skipped) {
      const file = origin.get(`${entry.kind} ${entry.namespace}/${entry.name}`) ?? '<input>';
      io.stderr(`${command}: ${file}: ${entry.kind} ${entry.namespace}/${entry.name}: ${entry.reason}: ${entry.detail}\n`);
    }
    return 1;
  }
  const context: RenderContext = {
    ...defaultRenderContext,
    localTraffic: localTrafficFor(local.detectLocal, clusterCIDR, node),
    masqueradeAll: values['masquerade-all'] === true,
    nodePortAddresses,
    nodeIPs: node.ips,
    // As the agent's default (no nfacct counters: render probes nothing).
    localhostNodePorts: localhostNodePorts.value,
  };
  return { state, ruleSet: renderRuleSet(state, context), context };
}
