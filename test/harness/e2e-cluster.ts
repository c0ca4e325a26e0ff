// A small cluster for end-to-end tests: the shared apiserver, a Topology (LAN, external client,
// nodes, routed pods) and one kube-proxy-ts process per node, plus what the missing controllers
// would write: Node objects (InternalIP = the node's LAN address, a zone label) and the
// EndpointSlices the EndpointSlice controller would create for the test's pods. Each test file
// gets its own Kubernetes namespace and uniquely named Nodes, so files never see each other.
// Outcomes are observed with real packets; `until` polls a probe to a deadline (convergence is
// awaited, never timed), and every step can be timed for the issue notes.

import { afterAll, afterEach } from 'vitest';
import type { V1Service } from '@kubernetes/client-node';
import { AgentProcess, httpGetIn, metricSum } from './agent-process.js';
import { exec } from './exec.js';
import {
  createEndpointSlice,
  createNamespace,
  createNode,
  createService,
  deleteEndpointSlice,
  deleteNamespace,
  deleteNode,
  deleteService,
  kubeClients,
  setEndpoints,
  setLoadBalancerIngress,
  uniqueName,
  type EndpointInput,
  type EndpointSlicePortInput,
  type KubeClients,
  type Protocol,
  type ServiceInput,
} from './kube.js';
import { CLUSTER_CIDR, Topology, type NodeHandle, type PodHandle, type ProbeResult, type ServerPorts } from './topology.js';

export interface E2EClusterOptions {
  readonly kubeconfigPath: string;
  readonly apiserverURL: string;
  /** Node labels, e.g. ['node1', 'node2']; Node objects get unique names derived from them. */
  readonly nodes: readonly string[];
  /** Which nodes run an agent. Default: all. */
  readonly agentsOn?: readonly string[];
  /** Extra `run` flags for every agent. */
  readonly agentArgs?: readonly string[];
  /** Extra environment variables for every agent. */
  readonly agentEnv?: Readonly<Record<string, string>>;
  /** Prefix of the Kubernetes namespace (a random suffix is added). */
  readonly name: string;
}

/** One endpoint of a slice: a topology pod and its conditions (ready by default). */
export interface PodEndpoint {
  readonly pod: PodHandle;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export interface CreatedService {
  readonly name: string;
  readonly clusterIP: string;
  /** nodePort by service port name ('' for an unnamed port). */
  readonly nodePorts: ReadonlyMap<string, number>;
  readonly healthCheckNodePort: number;
  readonly object: V1Service;
}

export interface Timing {
  readonly label: string;
  readonly ms: number;
}

export class E2ECluster {
  private readonly agents = new Map<string, AgentProcess>();
  private readonly nodesByLabel = new Map<string, NodeHandle>();
  private readonly services = new Map<string, V1Service>();
  private readonly slices = new Set<string>();
  private readonly nodeNames: string[] = [];
  readonly timings: Timing[] = [];

  private constructor(
    readonly clients: KubeClients,
    readonly namespace: string,
    readonly topology: Topology,
    private readonly options: E2EClusterOptions,
  ) {}

  /** Namespace, topology, Node objects, agents (each ready after its first sync). Cleans up on failure. */
  static async start(options: E2EClusterOptions): Promise<E2ECluster> {
    const startedAt = Date.now();
    const clients = kubeClients(options.kubeconfigPath);
    const namespace = await createNamespace(clients.core, uniqueName(options.name));
    const suffix = namespace.slice(namespace.lastIndexOf('-') + 1);
    const names = options.nodes.map((label) => `${options.name}-${suffix}-${label}`);
    let topology: Topology;
    try {
      topology = await Topology.create(names);
    } catch (error: unknown) {
      await deleteNamespace(clients, namespace);
      throw error;
    }
    const cluster = new E2ECluster(clients, namespace, topology, options);
    try {
      await cluster.setup(names);
    } catch (error: unknown) {
      await cluster.destroy();
      throw error;
    }
    cluster.timings.push({ label: 'cluster start (topology, nodes, agents ready)', ms: Date.now() - startedAt });
    return cluster;
  }

  private async setup(names: readonly string[]): Promise<void> {
    for (const [index, label] of this.options.nodes.entries()) {
      const node = this.topology.node(names[index] ?? label);
      this.nodesByLabel.set(label, node);
      await createNode(this.clients.core, {
        name: node.name,
        internalIP: node.ip,
        zone: zoneOf(node),
        podCIDRs: [node.podCIDR],
      });
      this.nodeNames.push(node.name);
    }
    const agentLabels = this.options.agentsOn ?? this.options.nodes;
    // One at a time: two cold tsx starts at once on two cores gain little and slow the other.
    for (const label of agentLabels) {
      const node = this.node(label);
      const agent = await AgentProcess.start(
        {
          netns: node.netns,
          nodeName: node.name,
          kubeconfigPath: this.options.kubeconfigPath,
          clusterCIDR: CLUSTER_CIDR,
          ...(this.options.agentArgs !== undefined ? { extraArgs: this.options.agentArgs } : {}),
          ...(this.options.agentEnv !== undefined ? { env: this.options.agentEnv } : {}),
        },
        this.options.apiserverURL,
      );
      this.agents.set(label, agent);
    }
  }

  node(label: string): NodeHandle {
    const node = this.nodesByLabel.get(label);
    if (node === undefined) throw new Error(`no node labelled ${label}`);
    return node;
  }

  agent(label: string): AgentProcess {
    const agent = this.agents.get(label);
    if (agent === undefined) throw new Error(`no agent on ${label}`);
    return agent;
  }

  get externalNetns(): string {
    return this.topology.externalNetns;
  }

  addPod(nodeLabel: string, name: string, ports?: ServerPorts): Promise<PodHandle> {
    return this.topology.addPod(this.node(nodeLabel), name, ports);
  }

  removePod(pod: PodHandle): Promise<void> {
    return this.topology.removePod(pod);
  }

  // -------------------------------------------------------------------------------------------
  // API objects

  /** Creates a Service in the test namespace and reads back what the apiserver allocated. */
  async createService(input: Omit<ServiceInput, 'namespace'>): Promise<CreatedService> {
    const object = await createService(this.clients.core, { ...input, namespace: this.namespace });
    this.services.set(input.name, object);
    return describeService(object);
  }

  async deleteService(name: string): Promise<void> {
    await deleteService(this.clients.core, this.namespace, name);
    this.services.delete(name);
  }

  async setLoadBalancerIngress(serviceName: string, ips: readonly string[]): Promise<CreatedService> {
    const object = await setLoadBalancerIngress(this.clients.core, this.namespace, serviceName, ips);
    this.services.set(serviceName, object);
    return describeService(object);
  }

  /**
   * Writes the Service's EndpointSlice as the EndpointSlice controller would: one slice named
   * `<service>-e2e`, addresses = pod IPs, nodeName and zone of the pod's node, the given
   * conditions, and a fresh trigger-time annotation. Created on first use, replaced afterwards.
   * The slice ports default to the Service's ports with their numeric target ports.
   */
  async setEndpoints(serviceName: string, endpoints: readonly PodEndpoint[], ports?: readonly EndpointSlicePortInput[]): Promise<void> {
    const sliceName = `${serviceName}-e2e`;
    const inputs: EndpointInput[] = endpoints.map(({ pod, ready, serving, terminating }) => ({
      address: pod.ip,
      nodeName: pod.node.name,
      zone: zoneOf(pod.node),
      ...(ready !== undefined ? { ready } : {}),
      ...(serving !== undefined ? { serving } : {}),
      ...(terminating !== undefined ? { terminating } : {}),
    }));
    if (this.slices.has(sliceName)) {
      await setEndpoints(this.clients.discovery, this.namespace, sliceName, inputs);
      return;
    }
    await createEndpointSlice(this.clients.discovery, {
      namespace: this.namespace,
      serviceName,
      name: sliceName,
      ports: ports ?? this.slicePortsOf(serviceName),
      endpoints: inputs,
    });
    this.slices.add(sliceName);
  }

  async deleteEndpoints(serviceName: string): Promise<void> {
    const sliceName = `${serviceName}-e2e`;
    await deleteEndpointSlice(this.clients.discovery, this.namespace, sliceName);
    this.slices.delete(sliceName);
  }

  private slicePortsOf(serviceName: string): EndpointSlicePortInput[] {
    const service = this.services.get(serviceName);
    if (service === undefined) throw new Error(`service ${serviceName} was not created through this cluster; pass the slice ports`);
    return (service.spec?.ports ?? []).map((port) => {
      const target = port.targetPort;
      if (typeof target === 'string' && !/^\d+$/.test(target)) throw new Error(`${serviceName}: named targetPort ${target}; pass the slice ports`);
      return {
        ...(port.name !== undefined ? { name: port.name } : {}),
        port: target === undefined ? port.port : Number(target),
        protocol: (port.protocol ?? 'TCP') as Protocol,
      };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Observing

  tcp(fromNetns: string, ip: string, port: number, timeoutMs?: number): Promise<ProbeResult> {
    return this.topology.tcp(fromNetns, ip, port, timeoutMs !== undefined ? { timeoutMs } : {});
  }

  /**
   * One datagram from `fromNetns`, the first answer back. Unlike Topology.udp (socat, which
   * always waits out its timeout) this returns as soon as the answer or an ICMP error arrives.
   */
  async udp(fromNetns: string, ip: string, port: number, options: { readonly timeoutMs?: number; readonly sourcePort?: number } = {}): Promise<ProbeResult> {
    const timeoutMs = options.timeoutMs ?? 1500;
    const result = await exec('ip', ['netns', 'exec', fromNetns, process.execPath, '-e', udpProbeScript, ip, String(port), String(options.sourcePort ?? 0), String(timeoutMs)], {
      timeoutMs: timeoutMs + 5000,
    });
    const match = /pod=(\S+) local=(\S*) lport=(\S*) peer=(\S+) pport=(\S+)/.exec(result.stdout);
    if (match !== null) {
      const [, pod = '', local = '', localPort = '', peerIP = '', peerPort = ''] = match;
      return { ok: true, reply: { pod, local: `${local}:${localPort}`, peer: `${peerIP}:${peerPort}`, peerIP } };
    }
    const detail = `${result.stderr.trim()} (exit ${result.code})`;
    if (/ECONNREFUSED/.test(result.stderr)) return { ok: false, error: 'refused', detail };
    if (/EHOSTUNREACH|ENETUNREACH/.test(result.stderr)) return { ok: false, error: 'unreachable', detail };
    if (/timeout/.test(result.stderr)) return { ok: false, error: 'timeout', detail };
    return { ok: false, error: 'other', detail };
  }

  httpGet(fromNetns: string, ip: string, port: number, path: string): Promise<{ status: number; body: string }> {
    return httpGetIn(fromNetns, ip, port, path);
  }

  /**
   * Polls `attempt` until `accept` holds and returns that value; after `timeoutMs` throws with
   * the last value and the agents' log tails. Recorded in `timings` under `label`.
   */
  async until<T>(label: string, attempt: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
    const startedAt = Date.now();
    const deadline = startedAt + timeoutMs;
    let last: T | undefined;
    for (;;) {
      last = await attempt();
      if (accept(last)) {
        this.timings.push({ label, ms: Date.now() - startedAt });
        return last;
      }
      if (Date.now() > deadline) {
        throw new Error(`${label}: not reached after ${timeoutMs} ms; last result ${JSON.stringify(last)}\n${this.logTails()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits until a TCP probe is answered by one of `pods` (rules for a change are in). */
  untilAnsweredBy(label: string, probe: () => Promise<ProbeResult>, pods: readonly string[], timeoutMs?: number): Promise<ProbeResult> {
    return this.until(label, probe, (result) => result.ok && pods.includes(result.reply.pod), timeoutMs);
  }

  /**
   * Probes until every pod in `expected` has answered (at most `maxAttempts` probes) and
   * returns every result, so a test can assert that nothing else answered and nothing failed.
   */
  async sampleUntilAll(probe: () => Promise<ProbeResult>, expected: readonly string[], maxAttempts = 60): Promise<{ results: ProbeResult[]; answered: Set<string> }> {
    const results: ProbeResult[] = [];
    const answered = new Set<string>();
    while (results.length < maxAttempts && !expected.every((pod) => answered.has(pod))) {
      const result = await probe();
      results.push(result);
      if (result.ok) answered.add(result.reply.pod);
    }
    return { results, answered };
  }

  /**
   * Waits until every agent has finished two more syncs (`kube_proxy_ts_syncs_total`; periodic
   * ones count, they come every sync period). Syncs are serialised and counted after their
   * restore, so whatever sync was running or queued when this was called has finished, and the
   * conntrack cleanup it queued (milliseconds, beside the next sync) with it in practice. Use it
   * once a change is visible in the data plane, before relying on conntrack state that its sync
   * may still clean up.
   */
  async settled(label = 'agents settled'): Promise<void> {
    const syncs = async (agent: AgentProcess): Promise<number> => metricSum(await agent.metrics(), 'kube_proxy_ts_syncs_total');
    const marks = await Promise.all([...this.agents.values()].map(async (agent) => ({ agent, from: await syncs(agent) })));
    await this.until(
      label,
      async () => (await Promise.all(marks.map(async ({ agent, from }) => (await syncs(agent)) >= from + 2))).every(Boolean),
      (done) => done,
      30_000,
    );
  }

  /**
   * Waits until `pod` can be deleted without failing a client, as a pod's graceful termination
   * would: no agent's nat rules lead to it any more (every agent has applied its removal) and no
   * such node tracks a TCP connection to it that is still opening or open.
   */
  async drained(label: string, pod: PodHandle): Promise<void> {
    const inProgress = /\b(SYN_SENT|SYN_RECV|ESTABLISHED)\b/;
    await this.until(
      label,
      async () => {
        const left: string[] = [];
        // The nodes with an agent: only their rules can send traffic anywhere.
        for (const node of this.agents.keys()) {
          const saved = await this.iptablesSave(node);
          // No rules at all would say nothing about the pod: wait for them too.
          if (saved === '') left.push(`${node}: no kube-proxy-ts rules to read`);
          else if (saved.includes(`--to-destination ${pod.ip}:`)) left.push(`${node}: rules`);
          const open = (await this.conntrackList(node, ['-p', 'tcp', '--reply-src', pod.ip])).filter((line) => inProgress.test(line));
          if (open.length > 0) left.push(`${node}: ${open.length} open connections`);
        }
        return left;
      },
      (left) => left.length === 0,
      30_000,
    );
  }

  /**
   * Per agent: network programming latency as the agent measured it (EndpointSlice trigger time
   * to rules applied; `kubeproxy_network_programming_duration_seconds`), and its sync count.
   */
  async programmingLatency(): Promise<string[]> {
    const lines: string[] = [];
    for (const [label, agent] of this.agents) {
      const text = await agent.metrics();
      const count = metricSum(text, 'kubeproxy_network_programming_duration_seconds_count');
      const sum = metricSum(text, 'kubeproxy_network_programming_duration_seconds_sum');
      const syncs = metricSum(text, 'kube_proxy_ts_syncs_total');
      lines.push(`  agent ${label}: ${syncs} syncs; network programming ${count} changes, mean ${count > 0 ? Math.round((sum / count) * 1000) : 0} ms`);
    }
    return lines;
  }

  /** Runs `body` and records how long it took. */
  async timed<T>(label: string, body: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    try {
      return await body();
    } finally {
      this.timings.push({ label, ms: Date.now() - startedAt });
    }
  }

  /** `iptables-save` of the node namespace, for the backend the agent uses (tried nft first). */
  async iptablesSave(nodeLabel: string): Promise<string> {
    const netns = this.node(nodeLabel).netns;
    for (const binary of ['iptables-nft-save', 'iptables-legacy-save']) {
      const saved = await exec('ip', ['netns', 'exec', netns, binary]);
      if (saved.code === 0 && saved.stdout.includes(':KUBE-SERVICES')) return saved.stdout;
    }
    return '';
  }

  /** `conntrack -L` in the node's namespace with extra filter arguments (e.g. ['-p', 'udp']). */
  async conntrackList(nodeLabel: string, filter: readonly string[]): Promise<string[]> {
    const listed = await exec('ip', ['netns', 'exec', this.node(nodeLabel).netns, 'conntrack', '-L', ...filter]);
    return listed.stdout.split('\n').filter((line) => line.trim() !== '');
  }

  logTails(lines = 30): string {
    return [...this.agents.entries()].map(([label, agent]) => `--- agent ${label} (${agent.nodeName}) ---\n${agent.logTail(lines)}`).join('\n');
  }

  /** A table of the recorded timings plus the agents' own latency figures, for the test output. */
  async timingSummary(title: string): Promise<string> {
    const width = Math.max(...this.timings.map((timing) => timing.label.length), 10);
    const rows = this.timings.map((timing) => `  ${timing.label.padEnd(width)}  ${String(timing.ms).padStart(6)} ms`);
    const latency = await this.programmingLatency().catch((error: unknown) => [`  (agent metrics unavailable: ${String(error)})`]);
    return [`e2e timings: ${title}`, ...rows, ...latency].join('\n');
  }

  /** Stops the agents, deletes the topology, the Nodes and the namespace. Safe to call twice. */
  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (step: () => Promise<unknown>): Promise<void> => {
      try {
        await step();
      } catch (error: unknown) {
        errors.push(error);
      }
    };
    for (const agent of this.agents.values()) await attempt(() => agent.stop());
    this.agents.clear();
    await attempt(() => this.topology.destroy());
    for (const name of this.nodeNames) await attempt(() => deleteNode(this.clients.core, name));
    this.nodeNames.length = 0;
    await attempt(() => deleteNamespace(this.clients, this.namespace));
    if (errors.length > 0) throw new AggregateError(errors, 'e2e cluster cleanup failed');
  }
}

// argv: ip port sourcePort timeoutMs. A connected socket, so an ICMP port unreachable (a REJECT
// rule) surfaces as ECONNREFUSED; reuseAddr lets a probe reuse the source port of the last one.
const udpProbeScript = [
  "const [ip, port, sourcePort, timeoutMs] = process.argv.slice(1);",
  "const socket = require('node:dgram').createSocket({ type: 'udp4', reuseAddr: true });",
  "const fail = (why) => { process.stderr.write(why + '\\n'); process.exit(1); };",
  "socket.on('error', (error) => fail(error.code ?? error.message));",
  "socket.on('message', (message) => { process.stdout.write(message.toString()); process.exit(0); });",
  "socket.bind(Number(sourcePort), () => socket.connect(Number(port), ip, () => socket.send('ping\\n')));",
  "setTimeout(() => fail('timeout'), Number(timeoutMs));",
].join('\n');

/** Node i (0-based) is in zone-a, zone-b, ... */
/**
 * The hooks every e2e file needs: on a failed test the agents' log tails (what they synced and
 * skipped), after the file the timing summary, then the cluster torn down.
 */
export function reportAndDestroy(cluster: () => E2ECluster | undefined, file: string): void {
  afterEach((context) => {
    const current = cluster();
    if (context.task.result?.state === 'fail' && current !== undefined) process.stdout.write(`${current.logTails()}\n`);
  });
  afterAll(async () => {
    const current = cluster();
    if (current === undefined) return;
    try {
      process.stdout.write(`${await current.timingSummary(file)}\n`);
    } finally {
      await current.destroy();
    }
  });
}

export function zoneOf(node: NodeHandle): string {
  return `zone-${String.fromCharCode(97 + node.index)}`;
}

function describeService(object: V1Service): CreatedService {
  const nodePorts = new Map<string, number>();
  for (const port of object.spec?.ports ?? []) if (port.nodePort !== undefined) nodePorts.set(port.name ?? '', port.nodePort);
  return {
    name: object.metadata?.name ?? '',
    clusterIP: object.spec?.clusterIP ?? '',
    nodePorts,
    healthCheckNodePort: object.spec?.healthCheckNodePort ?? 0,
    object,
  };
}

/** `count` probes one after the other (each connection after the previous one closed). */
export async function sequential(count: number, probe: () => Promise<ProbeResult>): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  for (let index = 0; index < count; index += 1) results.push(await probe());
  return results;
}

/** The pod names in `results` that answered, and the failures. */
export function tally(results: readonly ProbeResult[]): { pods: string[]; failures: ProbeResult[]; peers: Set<string> } {
  const pods: string[] = [];
  const failures: ProbeResult[] = [];
  const peers = new Set<string>();
  for (const result of results) {
    if (result.ok) {
      pods.push(result.reply.pod);
      peers.add(result.reply.peerIP);
    } else failures.push(result);
  }
  return { pods, failures, peers };
}

/** Why SCTP cannot be tested here (e.g. no sctp module in this kernel), or undefined when it can. */
export async function sctpSkipReason(): Promise<string | undefined> {
  // A listener that stays up until killed means the kernel has SCTP; socat exits at once if not.
  const probe = await exec('socat', ['SCTP4-LISTEN:0', '/dev/null'], { timeoutMs: 500 });
  if (probe.code === 137) return undefined;
  return `this kernel has no SCTP (socat: ${probe.stderr.trim().replace(/^.* E /, '') || `exit ${probe.code}`}); modprobe sctp is not available`;
}
