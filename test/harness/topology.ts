// A small cluster's network in network namespaces, for end-to-end tests and the demo:
//   external client --+                              +-- pod (routed veth, /32) ...
//                     |-- lan bridge --- node(s) ---+
//   node <-> node routes for each other's pod CIDR.
// Pods are routed point-to-point veth peers, so every packet crosses the node's netfilter.
// Each pod runs socat servers that answer with the pod's name, the local and the peer address,
// so tests can tell which endpoint answered and whether the source was masqueraded.

import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { exec, run } from './exec.js';
import { parseCidr } from '../../src/ip.js';

export const LAN_PREFIX = '172.30.0';
export const EXTERNAL_IP = `${LAN_PREFIX}.100`;
export const CLUSTER_CIDR = '10.244.0.0/16';
/** IPv6 of a dual-stack topology: ULA prefixes only, and only inside its namespaces. */
export const LAN6_PREFIX = 'fd00:30::';
export const EXTERNAL_IP6 = `${LAN6_PREFIX}100`;
export const CLUSTER_CIDR6 = 'fd00:10:244::/56';

export interface NodeHandle {
  readonly name: string;
  readonly netns: string;
  readonly ip: string;
  readonly podCIDR: string;
  readonly index: number;
  /** The node's IPv6 LAN address in a dual-stack topology. */
  readonly ip6?: string;
}

export interface PodHandle {
  readonly name: string;
  readonly netns: string;
  readonly ip: string;
  readonly node: NodeHandle;
  /** The pod's IPv6 address in a dual-stack topology (its servers answer on both families). */
  readonly ip6?: string;
}

export interface ServerPorts {
  readonly tcp?: readonly number[];
  readonly udp?: readonly number[];
  readonly sctp?: readonly number[];
}

export interface Reply {
  readonly pod: string;
  readonly local: string;
  readonly peer: string;
  /** Peer IP only, e.g. to check masquerading. */
  readonly peerIP: string;
}

export type ProbeResult =
  | { readonly ok: true; readonly reply: Reply }
  | { readonly ok: false; readonly error: 'refused' | 'timeout' | 'unreachable' | 'other'; readonly detail: string };

export class Topology {
  private readonly processes = new Map<string, ChildProcess[]>();
  private readonly namespaces: string[] = [];
  private podCount = 0;
  readonly pods: PodHandle[] = [];
  readonly nodes: NodeHandle[] = [];
  readonly externalNetns: string;
  readonly lanNetns: string;

  private constructor(
    readonly id: string,
    /** Every namespace also gets IPv6 (LAN6_PREFIX, pods in CLUSTER_CIDR6). */
    readonly dualStack = false,
  ) {
    this.externalNetns = `${id}-ext`;
    this.lanNetns = `${id}-lan`;
  }

  /** Creates the LAN, the external client and `nodeNames.length` nodes (172.30.0.10, .11, ...). */
  static async create(nodeNames: readonly string[] = ['node1'], options: { readonly dualStack?: boolean } = {}): Promise<Topology> {
    const topology = new Topology(`kpt${randomBytes(3).toString('hex')}`, options.dualStack ?? false);
    try {
      await topology.setup(nodeNames);
    } catch (error: unknown) {
      await topology.destroy();
      throw error;
    }
    return topology;
  }

  private async addNetns(name: string): Promise<void> {
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    const ipv6 = this.dualStack
      ? ['net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.disable_ipv6=0']
      : [];
    for (const setting of ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0', ...ipv6]) {
      await run('ip', ['netns', 'exec', name, 'sysctl', '-qw', setting]);
    }
  }

  private async setup(nodeNames: readonly string[]): Promise<void> {
    await this.addNetns(this.lanNetns);
    await run('ip', ['-n', this.lanNetns, 'link', 'add', 'br0', 'type', 'bridge']);
    await run('ip', ['-n', this.lanNetns, 'link', 'set', 'br0', 'up']);
    await this.addNetns(this.externalNetns);
    await this.attachToLan(this.externalNetns, 'x', EXTERNAL_IP, this.dualStack ? EXTERNAL_IP6 : undefined);
    for (const [index, name] of nodeNames.entries()) {
      const netns = `${this.id}-n${index}`;
      await this.addNetns(netns);
      const ip = `${LAN_PREFIX}.${10 + index}`;
      const ip6 = this.dualStack ? `${LAN6_PREFIX}${10 + index}` : undefined;
      await this.attachToLan(netns, `n${index}`, ip, ip6);
      // The node needs a route for cluster IPs to exist before nat OUTPUT rewrites them.
      await run('ip', ['-n', netns, 'route', 'add', 'default', 'via', EXTERNAL_IP]);
      if (ip6 !== undefined) await run('ip', ['-n', netns, '-6', 'route', 'add', 'default', 'via', EXTERNAL_IP6]);
      this.nodes.push({ name, netns, ip, podCIDR: `10.244.${index + 1}.0/24`, index, ...(ip6 !== undefined ? { ip6 } : {}) });
    }
    for (const node of this.nodes) {
      for (const other of this.nodes) {
        if (other === node) continue;
        await run('ip', ['-n', node.netns, 'route', 'add', other.podCIDR, 'via', other.ip]);
        if (other.ip6 !== undefined) await run('ip', ['-n', node.netns, '-6', 'route', 'add', podCIDR6(other), 'via', other.ip6]);
      }
    }
  }

  private async attachToLan(netns: string, tag: string, ip: string, ip6?: string): Promise<void> {
    const outer = `${this.id}${tag}a`;
    const inner = `${this.id}${tag}b`;
    await run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
    await run('ip', ['link', 'set', outer, 'netns', this.lanNetns]);
    await run('ip', ['link', 'set', inner, 'netns', netns]);
    await run('ip', ['-n', this.lanNetns, 'link', 'set', outer, 'master', 'br0', 'up']);
    await run('ip', ['-n', netns, 'link', 'set', inner, 'name', 'eth0']);
    await run('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    if (ip6 !== undefined) await run('ip', ['-n', netns, '-6', 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
    await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
  }

  node(name: string): NodeHandle {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /** Adds a pod on `node` with socat servers on the given ports. */
  async addPod(node: NodeHandle, name: string, ports: ServerPorts = { tcp: [8080], udp: [9090] }): Promise<PodHandle> {
    this.podCount += 1;
    const index = this.podCount;
    const netns = `${this.id}-p${index}`;
    await this.addNetns(netns);
    const ip = `10.244.${node.index + 1}.${10 + index}`;
    const hostSide = `${this.id}p${index}`;
    await run('ip', ['link', 'add', hostSide, 'type', 'veth', 'peer', 'name', `${hostSide}c`]);
    await run('ip', ['link', 'set', hostSide, 'netns', node.netns]);
    await run('ip', ['link', 'set', `${hostSide}c`, 'netns', netns]);
    await run('ip', ['-n', netns, 'link', 'set', `${hostSide}c`, 'name', 'eth0']);
    await run('ip', ['-n', netns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    // Link-scoped gateway address on the node side: pods route via it, and MASQUERADE towards a
    // pod then picks the node's global address, as on a real node.
    await run('ip', ['-n', node.netns, 'addr', 'add', '169.254.1.1/32', 'scope', 'link', 'dev', hostSide]);
    await run('ip', ['-n', node.netns, 'link', 'set', hostSide, 'up']);
    await run('ip', ['-n', node.netns, 'route', 'add', `${ip}/32`, 'dev', hostSide, 'src', node.ip]);
    await run('ip', ['-n', netns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
    await run('ip', ['-n', netns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    const ip6 = this.dualStack && node.ip6 !== undefined ? `${podCIDR6(node).replace(/::\/64$/, '')}::${(10 + index).toString(16)}` : undefined;
    if (ip6 !== undefined && node.ip6 !== undefined) {
      // The same shape in IPv6: a /128 on the pod, a link-local gateway on the node side.
      await run('ip', ['-n', netns, '-6', 'addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad']);
      await run('ip', ['-n', node.netns, '-6', 'addr', 'add', 'fe80::1/64', 'dev', hostSide, 'nodad']);
      await run('ip', ['-n', node.netns, '-6', 'route', 'add', `${ip6}/128`, 'dev', hostSide, 'src', node.ip6]);
      await run('ip', ['-n', netns, '-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', 'eth0']);
    }
    const pod: PodHandle = { name, netns, ip, node, ...(ip6 !== undefined ? { ip6 } : {}) };
    this.pods.push(pod);
    const children: ChildProcess[] = [];
    // socat splits addresses at ':' and ',': the reply text avoids both.
    const reply = `echo pod=${name} local=$SOCAT_SOCKADDR lport=$SOCAT_SOCKPORT peer=$SOCAT_PEERADDR pport=$SOCAT_PEERPORT`;
    for (const port of ports.tcp ?? []) children.push(this.spawnIn(netns, ['socat', `TCP4-LISTEN:${port},fork,reuseaddr`, `SYSTEM:${reply}`]));
    if (ip6 !== undefined) {
      for (const port of ports.tcp ?? []) children.push(this.spawnIn(netns, ['socat', `TCP6-LISTEN:${port},fork,reuseaddr,ipv6only=1`, `SYSTEM:${reply}`]));
    }
    // Not socat UDP4-RECVFROM,fork: its parent and child share the socket and now and then a
    // datagram is read and never answered (about 1 in 15 back-to-back probes here).
    for (const port of ports.udp ?? []) children.push(this.spawnIn(netns, [process.execPath, '-e', udpServerScript(name, ip, port)]));
    for (const port of ports.sctp ?? []) children.push(this.spawnIn(netns, ['socat', `SCTP4-LISTEN:${port},fork,reuseaddr`, `SYSTEM:${reply}`]));
    this.processes.set(netns, children);
    await this.waitListening(netns, ports);
    return pod;
  }

  private spawnIn(netns: string, argv: readonly string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: 'ignore', detached: true });
    child.unref();
    return child;
  }

  private async waitListening(netns: string, ports: ServerPorts): Promise<void> {
    const wanted = [...(ports.tcp ?? []), ...(ports.udp ?? []), ...(ports.sctp ?? [])];
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const listing = await exec('ip', ['netns', 'exec', netns, 'ss', '-lntuH', '--sctp']);
      const all = await exec('ip', ['netns', 'exec', netns, 'ss', '-lntuH']);
      const text = listing.stdout + all.stdout;
      if (wanted.every((port) => text.includes(`:${port} `))) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`servers in ${netns} did not start listening on ${wanted.join(',')}`);
  }

  /** Stops a pod's servers and deletes its namespace (its node route goes with the veth). */
  async removePod(pod: PodHandle): Promise<void> {
    this.killProcesses(pod.netns);
    await exec('ip', ['netns', 'delete', pod.netns]);
    const index = this.namespaces.indexOf(pod.netns);
    if (index >= 0) this.namespaces.splice(index, 1);
    const podIndex = this.pods.indexOf(pod);
    if (podIndex >= 0) this.pods.splice(podIndex, 1);
  }

  /** Lets the external client reach `cidr` (LB or external IPs, either family) through `node`. */
  async routeFromExternal(cidr: string, node: NodeHandle): Promise<void> {
    const via = cidr.includes(':') ? node.ip6 : node.ip;
    if (via === undefined) throw new Error(`node ${node.name} has no address of ${cidr}'s family`);
    await run('ip', ['-n', this.externalNetns, ...(cidr.includes(':') ? ['-6'] : []), 'route', 'replace', cidr, 'via', via]);
  }

  async tcp(fromNetns: string, ip: string, port: number, options: { readonly timeoutMs?: number } = {}): Promise<ProbeResult> {
    const timeout = (options.timeoutMs ?? 2000) / 1000;
    const result = await exec('ip', ['netns', 'exec', fromNetns, 'socat', '-t', String(timeout), '-T', String(timeout), '-', `${ip.includes(':') ? `TCP6:[${ip}]` : `TCP4:${ip}`}:${port},connect-timeout=${timeout}`], {
      timeoutMs: (options.timeoutMs ?? 2000) + 2000,
    });
    return parseProbe(result.stdout, result.stderr, result.code);
  }

  async udp(fromNetns: string, ip: string, port: number, options: { readonly timeoutMs?: number; readonly sourcePort?: number } = {}): Promise<ProbeResult> {
    const timeout = (options.timeoutMs ?? 1500) / 1000;
    const source = options.sourcePort !== undefined ? `,sourceport=${options.sourcePort},reuseaddr` : '';
    const result = await exec('ip', ['netns', 'exec', fromNetns, 'socat', '-t', String(timeout), '-T', String(timeout), '-', `UDP4:${ip}:${port}${source}`], {
      input: 'ping\n',
      timeoutMs: (options.timeoutMs ?? 1500) + 2000,
    });
    return parseProbe(result.stdout, result.stderr, result.code);
  }

  async sctp(fromNetns: string, ip: string, port: number, options: { readonly timeoutMs?: number } = {}): Promise<ProbeResult> {
    const timeout = (options.timeoutMs ?? 2000) / 1000;
    const result = await exec('ip', ['netns', 'exec', fromNetns, 'socat', '-t', String(timeout), '-T', String(timeout), '-', `SCTP4:${ip}:${port},connect-timeout=${timeout}`], {
      timeoutMs: (options.timeoutMs ?? 2000) + 2000,
    });
    return parseProbe(result.stdout, result.stderr, result.code);
  }

  private killProcesses(netns: string): void {
    for (const child of this.processes.get(netns) ?? []) {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    this.processes.delete(netns);
  }

  /** Kills every process this topology started and deletes every namespace. Safe to call twice. */
  async destroy(): Promise<void> {
    for (const netns of [...this.processes.keys()]) this.killProcesses(netns);
    for (const netns of [...this.namespaces].reverse()) {
      // Processes started by others (e.g. an agent) inside our namespaces must go too.
      const pids = await exec('ip', ['netns', 'pids', netns]);
      for (const pid of pids.stdout.split('\n').map((line) => Number(line.trim())).filter((value) => value > 0)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await exec('ip', ['netns', 'delete', netns]);
    }
    this.namespaces.length = 0;
  }
}

/** A node's IPv6 pod CIDR in a dual-stack topology: fd00:10:244:<index+1>::/64, inside CLUSTER_CIDR6. */
export function podCIDR6(node: NodeHandle): string {
  return `fd00:10:244:${node.index + 1}::/64`;
}

/** A UDP server answering every datagram with the same line as the socat servers. */
function udpServerScript(pod: string, ip: string, port: number): string {
  return [
    "const socket = require('node:dgram').createSocket('udp4');",
    `socket.on('message', (_, peer) => socket.send(\`pod=${pod} local=${ip} lport=${port} peer=\${peer.address} pport=\${peer.port}\\n\`, peer.port, peer.address));`,
    `socket.bind(${port});`,
  ].join('\n');
}

function parseProbe(stdout: string, stderr: string, code: number): ProbeResult {
  const match = /pod=(\S+) local=(\S*) lport=(\S*) peer=(\S+) pport=(\S+)/.exec(stdout);
  if (match !== null) {
    const [, pod = '', local = '', localPort = '', peer = '', peerPort = ''] = match;
    // socat writes IPv6 addresses bracketed and in full (`[fd00:0030:0000:...]`): canonical form here.
    const peerIP = peer.startsWith('[') ? (parseCidr(peer.slice(1, -1), { bareAddress: true })?.text.replace(/\/128$/, '') ?? peer) : peer;
    return { ok: true, reply: { pod, local: `${local}:${localPort}`, peer: `${peerIP}:${peerPort}`, peerIP } };
  }
  const detail = `${stderr.trim()} (exit ${code})`;
  if (/refused/i.test(stderr)) return { ok: false, error: 'refused', detail };
  if (/timed out|timeout/i.test(stderr) || code === 137 || stdout === '') {
    if (/unreachable/i.test(stderr)) return { ok: false, error: 'unreachable', detail };
    return { ok: false, error: 'timeout', detail };
  }
  return { ok: false, error: 'other', detail };
}
