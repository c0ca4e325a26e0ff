// `kube-proxy-ts trace`: where does a new connection go on this node, and why? The rules come from
// the node's kernel (`iptables-save`, or a saved dump), or are rendered from object files as
// `render` does; the objects (the files, or the apiserver for a live node) explain which endpoints
// were left out. Human-readable by default, `-o json` for scripts.

import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';

import { loadKubeConfig } from '../k8s/kubeconfig.js';
import type { DesiredState } from '../model/types.js';
import { ExecNetfilter, ipv6Binaries } from '../netfilter/exec.js';
import { fullPayload } from '../sync/payload.js';
import { readModelFromApi } from '../trace/api-model.js';
import { explainTrace } from '../trace/explain.js';
import { formatReport } from '../trace/format.js';
import { parseSavedTables, type SavedTables } from '../trace/tables.js';
import type { Origin, TracePacket } from '../trace/tracer.js';
import { cidrMatcher, localMatcher, parseAddressPort } from '../trace/values.js';
import { messageOf } from '../values.js';
import { commandUsage, COMMANDS, DEFAULTS, readCommandLine, type IptablesBackendSetting } from '../config/index.js';
import { TABLES } from '../netfilter/vocabulary.js';
import { resolveIptablesVariant } from './iptables-variant-setup.js';
import { commandLineOrExit, defaultIO, renderObjects, type CommandIO } from './render-command.js';
import { ofFamily } from '../agent/context.js';
import { familyOf, type IPFamily } from '../ip.js';

export const traceUsage = commandUsage(COMMANDS.trace, [
  'Usage: kube-proxy-ts trace --source IP --destination IP:PORT [--protocol tcp|udp|sctp] [--from pod|node|outside] [-o text|json]',
  '         rules of this node (default): [--iptables-backend auto|nft|legacy] [--iptables-save FILE] [--kubeconfig FILE]',
  "         rules rendered from objects:  --objects FILE [--objects FILE...] --node-name NAME --node-ip IP [render's flags]",
  '',
  'Explains where a new connection goes on this node: the rules it follows (with their comments), the',
  'Service port it matches, the candidate endpoints with their probabilities, masquerade or not,',
  'REJECT/DROP and why, session affinity. Rules other software wrote that the tracer cannot decide',
  'are explored both ways and shown as assumptions. Without --objects the rules are read with',
  'iptables-save (or from --iptables-save FILE) and the Services and EndpointSlices from the apiserver',
  "(--kubeconfig, $KUBECONFIG or the pod's service account), which say why endpoints were excluded;",
  'without API access the trace still runs. An IPv6 destination traces the IPv6 rules: ip6tables-save',
  '(or an ip6tables-save dump in --iptables-save FILE), or the IPv6 family rendered from --objects.',
  '',
]);

const protocols = { tcp: 'TCP', udp: 'UDP', sctp: 'SCTP' } as const;
const origins: readonly Origin[] = ['pod', 'node', 'outside'];

export interface TraceIO extends CommandIO {
  /** `iptables-save` (IPv4) or `ip6tables-save` (IPv6) of the nat and filter tables. */
  readonly saveTables: (backend: IptablesBackendSetting, family: IPFamily) => Promise<{ ok: true; text: string } | { ok: false; message: string }>;
  /** The node's own addresses (what `-m addrtype LOCAL` matches). */
  readonly localAddresses: () => readonly string[];
  /** One family's model (`nodeIPs` of that family). */
  readonly readApiModel: (
    kubeconfig: string | undefined,
    nodeName: string,
    nodeIPs: readonly string[],
    family: IPFamily,
  ) => Promise<{ ok: true; state: DesiredState } | { ok: false; message: string }>;
  /** The node's name when no flag or $NODE_NAME gives it. */
  readonly hostname: () => string;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export const defaultTraceIO: TraceIO = {
  ...defaultIO,
  saveTables: async (configured, family) => {
    const variant = await resolveIptablesVariant(configured);
    const netfilter = new ExecNetfilter({ binaries: family === 'IPv4' ? variant.binaries : ipv6Binaries(variant.binaries) });
    let text = '';
    for (const table of TABLES) {
      const saved = await netfilter.save(table);
      if (!saved.ok) return { ok: false, message: `cannot read the ${family} ${table} table (${variant.backend}): ${saved.message}` };
      text += saved.text;
    }
    return { ok: true, text };
  },
  localAddresses: () =>
    Object.values(networkInterfaces())
      .flatMap((addresses) => addresses ?? [])
      .map((address) => address.address.replace(/%.*$/, '')),
  readApiModel: async (kubeconfig, nodeName, nodeIPs, family) => {
    const kube = loadKubeConfig(kubeconfig === undefined ? {} : { kubeconfigPath: kubeconfig });
    if (!kube.ok) return { ok: false, message: `no API access (${kube.detail})` };
    return readModelFromApi(kube.connection, nodeName, nodeIPs, family);
  },
  hostname: () => hostname().toLowerCase(),
  env: process.env,
};

type ParsedLine = Exclude<ReturnType<typeof commandLineOrExit>, number>;

/** Returns the process exit code. */
export async function traceCommand(argv: readonly string[], io: TraceIO = defaultTraceIO): Promise<number> {
  // The same flag reader and field checks as render and run ($NODE_NAME names the node, as for run).
  const line = commandLineOrExit(readCommandLine(COMMANDS.trace, argv, io.env, () => ''), io, 'trace', traceUsage);
  if (typeof line === 'number') return line;
  const own = (name: string): string | undefined => line.own[name]?.at(-1);
  const request = parsePacketFlags(own);
  if (typeof request === 'string') {
    io.stderr(`trace: ${request}\n${traceUsage}`);
    return 2;
  }
  const { values } = line;
  // Each family has its own tables (iptables / ip6tables) and its own model: the destination's.
  const { family } = request;

  // The rules and, when known, the model they came from.
  let saved: SavedTables;
  let model: DesiredState | undefined;
  let localAddresses: string[];
  let sourceLabel: string;
  const notes: string[] = [];
  const objectFiles = line.own['objects'] ?? [];
  if (objectFiles.length > 0) {
    const rendered = await renderObjects(line, io, 'trace', traceUsage, family);
    if (typeof rendered === 'number') return rendered;
    const parsed = parseSavedTables(fullPayload(rendered.ruleSet, { jumps: 'append' }));
    if (!parsed.ok) throw new Error(`trace: render's own payload does not parse: ${parsed.message}`);
    saved = parsed.saved;
    model = rendered.state;
    localAddresses = [...rendered.state.node.ips];
    sourceLabel = `rendered from ${objectFiles.join(', ')} for node ${rendered.state.node.name}`;
  } else {
    const saveFile = own('iptables-save');
    const text = saveFile !== undefined ? await readSaveFile(io, saveFile) : await io.saveTables(values.iptablesBackend ?? DEFAULTS.iptablesBackend, family);
    if (!text.ok) {
      io.stderr(`trace: ${text.message}\n`);
      return 1;
    }
    const parsed = parseSavedTables(text.text);
    if (!parsed.ok) {
      io.stderr(`trace: cannot read the iptables-save text: line ${parsed.line}: ${parsed.message}\n`);
      return 1;
    }
    saved = parsed.saved;
    const nodeIPs = values.nodeIP ?? [];
    localAddresses = [...io.localAddresses(), ...nodeIPs].filter((address) => isIP(address) !== 0);
    const nodeName = values.hostnameOverride ?? io.hostname();
    sourceLabel = saveFile !== undefined ? `saved in ${saveFile}` : `this node (${family === 'IPv4' ? 'iptables-save' : 'ip6tables-save'})`;
    const read = await io.readApiModel(values.kubeconfig, nodeName, ofFamily(nodeIPs, family), family);
    if (read.ok) model = read.state;
    else notes.push(`Services not read from the apiserver, so no reasons for excluded endpoints: ${read.message}`);
  }

  // The clusterCIDR of the traced family (a dual-stack pair holds one of each).
  const inferred = inferOrigin(request.source, localAddresses, ofFamily(values.clusterCIDR ?? [], family)[0], model);
  const origin = request.origin ?? inferred.origin;
  if (request.origin === undefined) notes.push(`entry point inferred: ${inferred.why} (set it with --from)`);
  const packet: TracePacket = {
    source: request.source,
    destination: request.destination,
    destinationPort: request.port,
    protocol: request.protocol,
    origin,
    localAddresses,
    ...(request.inInterface === undefined ? {} : { inInterface: request.inInterface }),
    ...(request.outInterface === undefined ? {} : { outInterface: request.outInterface }),
  };
  const explained = explainTrace({ saved, packet, ...(model ? { model } : {}) });
  const report = { ...explained, notes: [...explained.notes, ...notes] };
  // Absent facts are null in JSON, so every key is always there for scripts.
  const json = (): string => `${JSON.stringify({ rules: sourceLabel, ...report }, (_, value: unknown) => (value === undefined ? null : value), 2)}\n`;
  io.stdout(request.output === 'json' ? json() : formatReport(report, sourceLabel));
  return 0;
}

interface PacketRequest {
  /** The destination's family, which decides the tables traced. */
  readonly family: IPFamily;
  readonly source: string;
  readonly destination: string;
  readonly port: number;
  readonly protocol: TracePacket['protocol'];
  readonly origin: Origin | undefined;
  readonly inInterface: string | undefined;
  readonly outInterface: string | undefined;
  readonly output: 'text' | 'json';
}

/** The packet flags, or what is wrong with them. */
function parsePacketFlags(own: (name: string) => string | undefined): PacketRequest | string {
  const source = own('source');
  const destination = own('destination');
  if (source === undefined || destination === undefined) return '--source and --destination are required';
  if (isIP(source) === 0) return `--source "${source}" is not an IP address`;
  let address: { ip: string; port: number | undefined };
  try {
    address = parseAddressPort(destination);
  } catch {
    address = { ip: '', port: undefined };
  }
  const { ip, port } = address;
  if (port === undefined || port < 1 || port > 65535) return `--destination "${destination}" is not IP:PORT (IPv6: [IP]:PORT)`;
  const family = familyOf(ip);
  if (family === undefined) return `--destination "${destination}" is not IP:PORT (IPv6: [IP]:PORT)`;
  if (familyOf(source) !== family) return `--source ${source} and --destination ${ip} are of different IP families`;
  const protocolText = own('protocol') ?? 'tcp';
  const protocol = protocols[protocolText.toLowerCase() as keyof typeof protocols] as TracePacket['protocol'] | undefined;
  if (protocol === undefined) return `--protocol "${protocolText}" must be tcp, udp or sctp`;
  const origin = own('from');
  if (origin !== undefined && !origins.includes(origin as Origin)) return `--from "${origin}" must be pod, node or outside`;
  const output = own('output') ?? 'text';
  if (output !== 'text' && output !== 'json') return `-o "${output}" must be text or json`;
  return { family, source, destination: ip, port, protocol, origin: origin as Origin | undefined, inInterface: own('in-interface'), outInterface: own('out-interface'), output };
}

async function readSaveFile(io: CommandIO, path: string): Promise<{ ok: true; text: string } | { ok: false; message: string }> {
  try {
    return { ok: true, text: await io.readTextFile(path) };
  } catch (error: unknown) {
    return { ok: false, message: `cannot read ${path}: ${messageOf(error)}` };
  }
}

function inferOrigin(
  source: string,
  localAddresses: readonly string[],
  clusterCIDR: string | undefined,
  model: DesiredState | undefined,
): { origin: Origin; why: string } {
  if (localMatcher(localAddresses)(source)) {
    return { origin: 'node', why: `${source} is an address of this node` };
  }
  // --cluster-cidr was validated by the flag reader (parseClusterCIDR) before we get here.
  if (clusterCIDR !== undefined && cidrMatcher(clusterCIDR)(source)) {
    return { origin: 'pod', why: `${source} is in the cluster CIDR ${clusterCIDR}` };
  }
  for (const servicePort of model?.servicePorts.values() ?? []) {
    const endpoint = servicePort.allEndpoints.find((candidate) => candidate.ip === source);
    if (endpoint) return { origin: endpoint.isLocal ? 'pod' : 'outside', why: `${source} is an endpoint of ${servicePort.servicePortName} on ${endpoint.nodeName ?? 'an unknown node'}` };
  }
  return { origin: 'outside', why: `${source} is neither this node's nor a known pod's address` };
}
