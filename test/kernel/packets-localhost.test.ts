// NodePorts on 127.0.0.1 (iptables.localhostNodePorts, on by default as in kube-proxy), with real
// packets and no apiserver: objects in a file, the real `render` command, its payload restored into
// a node's network namespace with net.ipv4.conf.all.route_localnet=1 (what the agent or the
// DaemonSet's init container sets). From the node itself 127.0.0.1:<nodePort> reaches the pods,
// masqueraded to the node's address; from another host, packets to 127.0.0.0/8 (which
// route_localnet lets past the kernel's martian check) meet the KUBE-FIREWALL drop; and with the
// setting off nothing answers on 127.0.0.1.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ExecNetfilter, nftBinaries } from '../../src/netfilter/exec.js';
import { exec, run } from '../harness/exec.js';
import { kernelSkipReason } from '../harness/netns.js';
import { CLUSTER_CIDR, LAN_PREFIX, Topology, type NodeHandle, type PodHandle, type ProbeResult } from '../harness/topology.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/packets-localhost.test.ts: ${skipReason}`);

const NODE_PORT = 30080;
const LOCAL_NODE_PORT = 30081;
/** A server of the node's own that listens on 127.0.0.1 only, as many node agents do. */
const LOOPBACK_PORT = 18080;
const OUTSIDER_IP = `${LAN_PREFIX}.101`;
const TRIES = 12;

function objects(pods: readonly PodHandle[]): unknown[] {
  const service = (name: string, clusterIP: string, nodePort: number, externalTrafficPolicy: 'Cluster' | 'Local'): V1Service => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'default', name },
    spec: {
      type: 'NodePort',
      clusterIP,
      clusterIPs: [clusterIP],
      externalTrafficPolicy,
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort }],
    },
  });
  const slice = (service: string): V1EndpointSlice => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'default', name: `${service}-abcde`, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    endpoints: pods.map((pod) => ({ addresses: [pod.ip], conditions: { ready: true, serving: true, terminating: false }, nodeName: pod.node.name })),
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  });
  return [service('web', '10.96.0.10', NODE_PORT, 'Cluster'), slice('web'), service('web-local', '10.96.0.11', LOCAL_NODE_PORT, 'Local'), slice('web-local')];
}

async function answeringPods(probe: () => Promise<ProbeResult>): Promise<{ pods: Set<string>; peers: Set<string> }> {
  const pods = new Set<string>();
  const peers = new Set<string>();
  for (let attempt = 0; attempt < TRIES; attempt++) {
    const result = await probe();
    if (!result.ok) throw new Error(`probe ${attempt + 1} failed: ${result.error} ${result.detail}`);
    pods.add(result.reply.pod);
    peers.add(result.reply.peerIP);
  }
  return { pods, peers };
}

describe.skipIf(skipReason !== undefined)('NodePorts on 127.0.0.1 through the rules of `render`', () => {
  let topology: Topology | undefined;
  let node: NodeHandle;
  let directory: string | undefined;
  let file: string;
  let netfilter: ExecNetfilter;
  let outsider: string | undefined;

  /** Renders the objects for node1 and restores the payload as the node's whole filter and nat tables. */
  const program = async (extra: readonly string[]): Promise<string> => {
    const rendered = await exec(
      'npx',
      ['tsx', 'src/cli.ts', 'render', '--objects', file, '--node-name', node.name, '--node-ip', node.ip, '--cluster-cidr', CLUSTER_CIDR, ...extra],
      { timeoutMs: 60_000 },
    );
    expect(rendered.code, rendered.stderr).toBe(0);
    expect(await netfilter.restore(rendered.stdout, { noFlush: false }), rendered.stdout).toEqual({ ok: true });
    return rendered.stdout;
  };

  beforeAll(async () => {
    topology = await Topology.create(['node1']);
    node = topology.node('node1');
    const pods = [await topology.addPod(node, 'pod-a', { tcp: [8080] }), await topology.addPod(node, 'pod-b', { tcp: [8080] })];
    directory = await mkdtemp(join(tmpdir(), 'kpt-localhost-'));
    file = join(directory, 'objects.yaml');
    await writeFile(file, objects(pods).map((object) => stringify(object)).join('---\n'));
    netfilter = new ExecNetfilter({ binaries: nftBinaries, prefix: ['ip', 'netns', 'exec', node.netns] });
    // What the agent (or the DaemonSet's init container) does on a node with localhost NodePorts on.
    await run('ip', ['netns', 'exec', node.netns, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1']);

    // A node-local server on 127.0.0.1 only, answering in the pods' format (the topology reaps it).
    const reply = `echo pod=node-loopback local=$SOCAT_SOCKADDR lport=$SOCAT_SOCKPORT peer=$SOCAT_PEERADDR pport=$SOCAT_PEERPORT`;
    spawn('ip', ['netns', 'exec', node.netns, 'socat', `TCP4-LISTEN:${LOOPBACK_PORT},bind=127.0.0.1,fork,reuseaddr`, `SYSTEM:${reply}`], {
      stdio: 'ignore',
      detached: true,
    }).unref();

    // Another host on the node's LAN that sends to 127.0.0.1 through the node: its own loopback
    // address removed (the kernel would call its replies' source its own), its 127.0.0.1 routed to
    // the node, and route_localnet so that replies from 127.0.0.1 get in.
    outsider = `${topology.id}-out`;
    await run('ip', ['netns', 'add', outsider]);
    const outer = `${topology.id}oa`;
    await run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', `${topology.id}ob`]);
    await run('ip', ['link', 'set', outer, 'netns', topology.lanNetns]);
    await run('ip', ['-n', topology.lanNetns, 'link', 'set', outer, 'master', 'br0', 'up']);
    await run('ip', ['link', 'set', `${topology.id}ob`, 'netns', outsider]);
    await run('ip', ['-n', outsider, 'link', 'set', `${topology.id}ob`, 'name', 'eth0']);
    await run('ip', ['-n', outsider, 'addr', 'add', `${OUTSIDER_IP}/24`, 'dev', 'eth0']);
    await run('ip', ['-n', outsider, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', outsider, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', outsider, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo']);
    await run('ip', ['-n', outsider, 'route', 'add', '127.0.0.1/32', 'via', node.ip, 'dev', 'eth0']);
    await run('ip', ['netns', 'exec', outsider, 'sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1']);

    await program([]);
  });

  afterAll(async () => {
    if (outsider !== undefined) await exec('ip', ['netns', 'delete', outsider]);
    await topology?.destroy();
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  it('from the node itself, 127.0.0.1:<nodePort> reaches both pods, masqueraded to the node address (Cluster and Local policy)', async () => {
    if (topology === undefined) throw new Error('setup');
    for (const port of [NODE_PORT, LOCAL_NODE_PORT]) {
      const { pods, peers } = await answeringPods(() => topology!.tcp(node.netns, '127.0.0.1', port));
      expect([...pods].sort(), `port ${port}`).toEqual(['pod-a', 'pod-b']);
      // The source 127.0.0.1 could never be answered from a pod: KUBE-EXT- marks it, POSTROUTING
      // masquerades it to the address of the node's way to the pod.
      expect([...peers], `port ${port}`).toEqual([node.ip]);
    }
  });

  it('from another host, a packet to 127.0.0.1 is dropped by the KUBE-FIREWALL rule (route_localnet alone would let it reach the node)', async () => {
    if (topology === undefined || outsider === undefined) throw new Error('setup');
    // Sanity: the node-local server answers on the node itself.
    const local = await topology.tcp(node.netns, '127.0.0.1', LOOPBACK_PORT);
    expect(local.ok ? local.reply.pod : local, JSON.stringify(local)).toBe('node-loopback');

    const counter = async (): Promise<number> => {
      const saved = await exec('ip', ['netns', 'exec', node.netns, 'iptables-nft-save', '-c', '-t', 'filter']);
      const line = saved.stdout.split('\n').find((candidate) => candidate.includes('-A KUBE-FIREWALL') && candidate.includes('"block incoming localnet connections"'));
      if (line === undefined) throw new Error(`no localnet drop rule in the node's filter table:\n${saved.stdout}`);
      return Number(/^\[(\d+):/.exec(line)?.[1] ?? NaN);
    };
    const before = await counter();
    const dropped = await topology.tcp(outsider, '127.0.0.1', LOOPBACK_PORT, { timeoutMs: 1500 });
    expect(dropped.ok ? `answered by ${dropped.reply.pod}` : dropped.error, JSON.stringify(dropped)).toBe('timeout');
    expect(await counter()).toBeGreaterThan(before);

    // Without the rule the same packets get through: what the rule is there for (kubernetes#90259).
    const deleted = await exec('ip', ['netns', 'exec', node.netns, 'iptables-nft', '-t', 'filter', '-D', 'KUBE-FIREWALL', '1']);
    expect(deleted.code, deleted.stderr).toBe(0);
    try {
      const open = await topology.tcp(outsider, '127.0.0.1', LOOPBACK_PORT);
      expect(open.ok ? open.reply : open, JSON.stringify(open)).toMatchObject({ pod: 'node-loopback', peerIP: OUTSIDER_IP });
    } finally {
      await program([]);
    }
  });

  it('with --iptables-localhost-nodeports=false nothing answers on 127.0.0.1:<nodePort>; the node address still does', async () => {
    if (topology === undefined) throw new Error('setup');
    const payload = await program(['--iptables-localhost-nodeports=false']);
    expect(payload).toContain('-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS');
    for (const port of [NODE_PORT, LOCAL_NODE_PORT]) {
      const result = await topology.tcp(node.netns, '127.0.0.1', port, { timeoutMs: 1500 });
      expect(result.ok ? `answered by ${result.reply.pod}` : result.error, JSON.stringify(result)).toBe('refused');
      const viaNodeIP = await topology.tcp(node.netns, node.ip, port);
      expect(viaNodeIP.ok, JSON.stringify(viaNodeIP)).toBe(true);
    }
  });
});
