// `kube-proxy-ts render`: objects in, one complete iptables-restore payload for a fresh node out.
// Tools outside the project rely on this contract (flags, exit codes, stdout = payload only).

import { readFile } from 'node:fs/promises';
import { mergeBundles, parseObjects, type ObjectBundle } from '../input/objects.js';
import { buildDesiredState } from '../model/build.js';
import { nodeInfoFromNode } from '../model/node.js';
import { nftContextFor } from '../nftables/context.js';
import { planFullSync } from '../nftables/diff.js';
import { renderNftRuleset } from '../nftables/render.js';
import { renderRuleSet } from '../render/index.js';
import { defaultRenderContext, type RenderContext, type RuleSet } from '../render/types.js';
import type { DesiredState } from '../model/types.js';
import { fullPayload } from '../sync/payload.js';
import { commandUsage, COMMANDS, DEFAULTS, detectLocalFrom, FIELDS, readCommandLine, type CommandLine } from '../config/index.js';
import { localTrafficFor, nodePortAddressList, ofFamily } from '../agent/context.js';
import { IP_FAMILIES, type IPFamily } from '../ip.js';
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

const renderHeader = [
  'Usage: kube-proxy-ts render --objects FILE [--objects FILE...] --node-name NAME --node-ip IP [flags]',
  '',
  'Reads Services, EndpointSlices and Nodes (multi-document YAML or JSON) and prints one complete',
  'iptables-restore payload that programs NAME from scratch: iptables-restore < payload (with',
  '--ip-family IPv6, the IPv6 rules: ip6tables-restore < payload; --node-ip takes a pair v4,v6).',
  "NodePorts answer on 127.0.0.1 too unless --iptables-localhost-nodeports=false (as run; they need",
  "net.ipv4.conf.all.route_localnet=1 on the node, which render does not set). Flags are run's, with",
  'the same names and checks (--hostname-override, --nodeport-addresses, --proxy-mode...).',
  '',
];

export const renderUsage = commandUsage(COMMANDS.render, renderHeader);

/** What the objects and flags give: the node's desired state and the rules for a fresh node. */
export interface RenderedObjects {
  readonly state: DesiredState;
  readonly ruleSet: RuleSet;
}

type ParsedLine = Extract<CommandLine, { kind: 'parsed' }>;

/**
 * A command line read by readCommandLine: the parsed line, or the exit code after the errors (and,
 * for a malformed line, the usage) on stderr. Shared by the commands that render from objects.
 */
export function commandLineOrExit(line: CommandLine, io: CommandIO, command: string, usage: string): ParsedLine | number {
  if (line.kind === 'help') {
    io.stdout(usage);
    return 0;
  }
  if (line.kind === 'invalid' || line.errors.length > 0) {
    // Worded for the command line: `--flag "value" reason`.
    for (const error of line.errors) {
      io.stderr(`${command}: ${error.reason !== undefined ? `${error.source} ${JSON.stringify(error.value)} ${error.reason}` : error.message}\n`);
    }
    if (line.kind === 'invalid') io.stderr(usage);
    return 2;
  }
  return line;
}

/** Returns the process exit code. */
export async function renderCommand(argv: readonly string[], io: CommandIO = defaultIO): Promise<number> {
  const line = commandLineOrExit(readCommandLine(COMMANDS.render, argv, {}, () => ''), io, 'render', renderUsage);
  if (typeof line === 'number') return line;
  const rendered = await renderObjects(line, io, 'render', renderUsage);
  if (typeof rendered === 'number') return rendered;
  io.stdout(fullPayload(rendered.ruleSet, { jumps: 'append' }));
  return 0;
}

/**
 * Reads the object files (`--objects`) and renders them with the rule fields of the line: the
 * result, or the exit code after a message on stderr (`command` prefixes it).
 */
/** Renders the objects for one family: `family` when given (trace: its destination's), else `--ip-family` (render), else IPv4. */
export async function renderObjects(line: ParsedLine, io: CommandIO, command: string, usage: string, family?: IPFamily): Promise<RenderedObjects | number> {
  const { values } = line;
  const files = line.own['objects'] ?? [];
  const nodeName = values.hostnameOverride;
  const nodeIPs = values.nodeIP ?? [];
  if (files.length === 0 || nodeName === undefined || nodeIPs.length === 0) {
    io.stderr(`${command}: --objects, --node-name and --node-ip are required\n${usage}`);
    return 2;
  }
  const ownFlags: Readonly<Record<string, readonly string[] | undefined>> = line.own;
  const familyText = family ?? ownFlags['ip-family']?.[0] ?? 'IPv4';
  const renderFamily = IP_FAMILIES.find((candidate) => candidate === familyText);
  if (renderFamily === undefined) {
    io.stderr(`${command}: --ip-family ${JSON.stringify(familyText)} must be IPv4 or IPv6\n`);
    return 2;
  }
  const local = detectLocalFrom(values.detectLocalMode ?? DEFAULTS.detectLocalMode, values.podBridgeInterface, values.podInterfaceNamePrefix);
  if (!local.ok) {
    io.stderr(`${command}: --detect-local-mode ${values.detectLocalMode ?? ''} needs --${FIELDS[local.missing].flags[0]}\n`);
    return 2;
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
  const node = nodeInfoFromNode(nodeObject, { name: nodeName, ips: ofFamily(nodeIPs, renderFamily), family: renderFamily });
  const nodePortAddresses = nodePortAddressList(values.nodePortAddresses ?? DEFAULTS.nodePortAddresses, node.ips);
  const { state, skipped } = buildDesiredState({
    services: bundle.services,
    endpointSlices: bundle.endpointSlices,
    node,
    family: renderFamily,
  });
  if (skipped.length > 0) {
    for (const entry of skipped) {
      const file = origin.get(`${entry.kind} ${entry.namespace}/${entry.name}`) ?? '<input>';
      io.stderr(`${command}: ${file}: ${entry.kind} ${entry.namespace}/${entry.name}: ${entry.reason}: ${entry.detail}\n`);
    }
    return 1;
  }
  if ((values.mode ?? DEFAULTS.mode) === 'nftables') {
    const settings = {
      nodeIPs,
      masqueradeBit: values.masqueradeBit ?? DEFAULTS.masqueradeBit,
      masqueradeAll: values.masqueradeAll ?? DEFAULTS.masqueradeAll,
      detectLocal: local.detectLocal,
      clusterCIDRs: values.clusterCIDR ?? [],
      nodePortAddresses: values.nodePortAddresses ?? DEFAULTS.nodePortAddresses,
    };
    const ruleset = renderNftRuleset(state, nftContextFor(settings, node, state.family));
    // One transaction for `nft -f`, as a full sync on a node without our table writes it.
    const plan = planFullSync(ruleset, undefined, { recreateBaseChains: false, chainsPerTransaction: Number.POSITIVE_INFINITY });
    for (const transaction of plan.transactions()) io.stdout(`${transaction.join('\n')}\n`);
    return 0;
  }
  const context: RenderContext = {
    ...defaultRenderContext,
    localTraffic: localTrafficFor(local.detectLocal, ofFamily(values.clusterCIDR ?? [], renderFamily)[0], node),
    masqueradeAll: values.masqueradeAll ?? DEFAULTS.masqueradeAll,
    nodePortAddresses,
    nodeIPs: node.ips,
    masqueradeBit: values.masqueradeBit ?? DEFAULTS.masqueradeBit,
    // As the agent's default (no nfacct counters: render probes nothing).
    localhostNodePorts: values.localhostNodePorts ?? DEFAULTS.localhostNodePorts,
  };
  return { state, ruleSet: renderRuleSet(state, context) };
}
