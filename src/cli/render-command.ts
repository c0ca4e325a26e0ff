// `kube-proxy-ts render`: objects in, one complete iptables-restore payload for a fresh node out.
// Tools outside the project rely on this contract (flags, exit codes, stdout = payload only).

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isIPv4 } from 'node:net';
import { mergeBundles, parseObjects, type ObjectBundle } from '../input/objects.js';
import { buildDesiredState } from '../model/build.js';
import { nodeInfoFromNode } from '../model/node.js';
import { renderRuleSet } from '../render/index.js';
import { defaultRenderContext, type RenderContext } from '../render/types.js';
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

/** Returns the process exit code. */
export async function renderCommand(argv: readonly string[], io: CommandIO = defaultIO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      // A bare --iptables-localhost-nodeports means true, as run's switch; parseArgs wants a value.
      args: argv.map((arg) => (arg === '--iptables-localhost-nodeports' ? `${arg}=true` : arg)),
      options: {
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
      },
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
  const files = values.objects ?? [];
  const nodeName = values['node-name'];
  const nodeIP = values['node-ip'];
  if (files.length === 0 || nodeName === undefined || nodeName === '' || nodeIP === undefined) {
    io.stderr(`render: --objects, --node-name and --node-ip are required\n${renderUsage}`);
    return 2;
  }
  if (!isIPv4(nodeIP)) {
    io.stderr(`render: --node-ip "${nodeIP}" is not an IPv4 address\n`);
    return 2;
  }
  if (values.mode !== 'iptables') {
    io.stderr(`render: --mode "${String(values.mode)}" is not supported (only iptables)\n`);
    return 2;
  }
  let clusterCIDR: string | undefined;
  if (values['cluster-cidr'] !== undefined) {
    const parsed = normaliseIPv4Cidr(values['cluster-cidr'].includes('/') ? values['cluster-cidr'] : `${values['cluster-cidr']}/32`);
    if (parsed === undefined) {
      io.stderr(`render: --cluster-cidr "${values['cluster-cidr']}" is not an IPv4 CIDR\n`);
      return 2;
    }
    clusterCIDR = parsed;
  }
  const mode = PARSERS.detectLocalMode(values['detect-local-mode'] ?? '');
  const bridge = PARSERS.podBridgeInterface(values['pod-bridge-interface'] ?? '');
  const prefix = PARSERS.podInterfaceNamePrefix(values['pod-interface-name-prefix'] ?? '');
  for (const [flag, parsed] of [['detect-local-mode', mode], ['pod-bridge-interface', bridge], ['pod-interface-name-prefix', prefix]] as const) {
    if (!parsed.ok) {
      io.stderr(`render: --${flag} "${values[flag] ?? ''}" ${parsed.reason}\n`);
      return 2;
    }
  }
  if (!mode.ok || !bridge.ok || !prefix.ok) return 2;
  const localhostNodePorts = PARSERS.localhostNodePorts(values['iptables-localhost-nodeports'] ?? 'true');
  if (!localhostNodePorts.ok) {
    io.stderr(`render: --iptables-localhost-nodeports "${values['iptables-localhost-nodeports'] ?? ''}" ${localhostNodePorts.reason}\n`);
    return 2;
  }
  const local = detectLocalFrom(mode.value, bridge.value, prefix.value);
  if (!local.ok) {
    const flag = local.missing === 'podBridgeInterface' ? 'pod-bridge-interface' : 'pod-interface-name-prefix';
    io.stderr(`render: --detect-local-mode ${mode.value} needs --${flag}\n`);
    return 2;
  }
  const nodePortAddresses: string[] = [];
  for (const entry of (values['node-port-addresses'] ?? '').split(',').filter((value) => value !== '')) {
    const parsed = normaliseIPv4Cidr(entry.includes('/') ? entry : `${entry}/32`);
    if (parsed === undefined) {
      io.stderr(`render: --node-port-addresses entry "${entry}" is not an IPv4 CIDR\n`);
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
      io.stderr(`render: cannot read ${file}: ${messageOf(error)}\n`);
      return 1;
    }
    const loaded = parseObjects(file, text);
    if (!loaded.ok) {
      io.stderr(`render: ${loaded.message}\n`);
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
      io.stderr(`render: ${file}: ${entry.kind} ${entry.namespace}/${entry.name}: ${entry.reason}: ${entry.detail}\n`);
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
  const ruleSet = renderRuleSet(state, context);
  io.stdout(fullPayload(ruleSet, { jumps: 'append' }));
  return 0;
}
