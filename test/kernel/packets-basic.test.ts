// Real packets without an apiserver: objects in a file, the real `render` command (each mode), its
// payload loaded into a node's network namespace, and connections from a pod, the node and an external
// client answered (or refused) by the pods of the Topology harness.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSkipReason } from '../harness/netns.js';
import { renderedNode, type RenderedNode } from '../harness/rendered-node.js';
import { EXTERNAL_IP, type NodeHandle, type PodHandle, type ProbeResult, type Topology } from '../harness/topology.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/packets-basic.test.ts: ${skipReason}`);

const CLUSTER_IP = '10.96.0.10';
const NO_ENDPOINTS_IP = '10.96.0.11';
const NODE_PORT = 30080;
const TRIES = 24;

function objects(pods: readonly PodHandle[]): unknown[] {
  const service = (name: string, clusterIP: string, type: 'ClusterIP' | 'NodePort'): V1Service => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'default', name },
    spec: {
      type,
      clusterIP,
      clusterIPs: [clusterIP],
      selector: { app: name },
      ports: [
        { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, ...(type === 'NodePort' ? { nodePort: NODE_PORT } : {}) },
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: 9090 },
      ],
    },
  });
  const slice: V1EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'default', name: 'web-abcde', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: pods.map((pod) => ({
      addresses: [pod.ip],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: pod.node.name,
    })),
    ports: [
      { name: 'http', protocol: 'TCP', port: 8080 },
      { name: 'dns', protocol: 'UDP', port: 9090 },
    ],
  };
  // `empty` selects no pod: its slice lists no endpoints, as the controller writes it.
  const emptySlice: V1EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'default', name: 'empty-fghij', labels: { 'kubernetes.io/service-name': 'empty' } },
    addressType: 'IPv4',
    endpoints: [],
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  };
  return [service('web', CLUSTER_IP, 'NodePort'), slice, service('empty', NO_ENDPOINTS_IP, 'ClusterIP'), emptySlice];
}

/**
 * Which pods answered `tries` probes, and from which source address they saw the client. TCP
 * probes must all be answered. UDP ones may go unanswered: the harness's socat UDP servers drop
 * the odd datagram even when a client sends straight to the pod with no rules at all, so a lost
 * one says nothing about the rules (a refusal would, and still fails). Each UDP probe waits out its
 * timeout, so UDP sampling stops (`until`) once enough pods have answered.
 */
async function answeringPods(
  probe: () => Promise<ProbeResult>,
  options: { readonly tries?: number; readonly lossy?: boolean; readonly until?: number } = {},
): Promise<{ pods: Set<string>; peers: Set<string> }> {
  const pods = new Set<string>();
  const peers = new Set<string>();
  for (let attempt = 0; attempt < (options.tries ?? TRIES); attempt++) {
    const result = await probe();
    if (!result.ok) {
      if (options.lossy === true && result.error === 'timeout') continue;
      throw new Error(`probe ${attempt + 1} failed: ${result.error} ${result.detail}`);
    }
    pods.add(result.reply.pod);
    peers.add(result.reply.peerIP);
    if (options.until !== undefined && pods.size >= options.until) break;
  }
  return { pods, peers };
}

describe.skipIf(skipReason !== undefined).each(['iptables', 'nftables'] as const)('packets through the rules of `render` (%s mode)', (mode) => {
  let rendered: RenderedNode | undefined;
  let topology: Topology | undefined;
  let node: NodeHandle;
  let pods: readonly PodHandle[];

  beforeAll(async () => {
    rendered = await renderedNode((_, podHandles) => objects(podHandles), { mode });
    ({ topology, node, pods } = rendered);
  });

  afterAll(async () => {
    await rendered?.destroy();
  });

  it('a pod reaching the ClusterIP over TCP is answered by both pods, its own address kept', async () => {
    const client = pods[0];
    if (client === undefined || topology === undefined) throw new Error('setup');
    const { pods: answered, peers } = await answeringPods(() => topology!.tcp(client.netns, CLUSTER_IP, 80));
    expect([...answered].sort()).toEqual(['pod-a', 'pod-b']);
    // From inside the cluster CIDR: no masquerade, except the hairpin back to itself.
    expect([...peers].sort()).toEqual([client.ip, node.ip].sort());
  });

  it('a pod reaching the ClusterIP over UDP is answered by both pods', async () => {
    const client = pods[1];
    if (client === undefined || topology === undefined) throw new Error('setup');
    const { pods: answered } = await answeringPods(() => topology!.udp(client.netns, CLUSTER_IP, 53, { timeoutMs: 800 }), {
      lossy: true,
      until: 2,
    });
    expect([...answered].sort()).toEqual(['pod-a', 'pod-b']);
  });

  it('the node reaching the ClusterIP is answered by both pods, masqueraded', async () => {
    if (topology === undefined) throw new Error('setup');
    const { pods: answered, peers } = await answeringPods(() => topology!.tcp(node.netns, CLUSTER_IP, 80));
    expect([...answered].sort()).toEqual(['pod-a', 'pod-b']);
    expect([...peers]).toEqual([node.ip]);
  });

  it('a Service without endpoints is refused at once, from a pod and from the node', async () => {
    const client = pods[0];
    if (client === undefined || topology === undefined) throw new Error('setup');
    for (const from of [client.netns, node.netns]) {
      const result = await topology.tcp(from, NO_ENDPOINTS_IP, 80, { timeoutMs: 5000 });
      expect(result.ok ? 'answered' : result.error, JSON.stringify(result)).toBe('refused');
    }
  });

  it('the NodePort from the external client is answered by both pods, masqueraded to the node', async () => {
    if (topology === undefined) throw new Error('setup');
    const { pods: answered, peers } = await answeringPods(() => topology!.tcp(topology!.externalNetns, node.ip, NODE_PORT));
    expect([...answered].sort()).toEqual(['pod-a', 'pod-b']);
    // externalTrafficPolicy Cluster: the endpoint could be on another node, so the source is rewritten.
    expect([...peers]).toEqual([node.ip]);
    expect(peers.has(EXTERNAL_IP)).toBe(false);
  });
});
