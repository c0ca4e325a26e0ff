// `kube-proxy-ts trace` against real packets: a node namespace programmed with `render`'s payload
// (plus a rule from "other software" the tracer cannot decide), then the same connections asked of
// `trace` (run inside the namespace, on its own iptables-save) and sent for real. They must agree on
// which endpoints answer, whether the source is masqueraded, and what is refused or dropped.
// A dual-stack node does the same over IPv6 (trace reads ip6tables-save for an IPv6 destination)
// and over IPv4 on the same dual-stack Services.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, run } from '../harness/exec.js';
import { kernelSkipReason } from '../harness/netns.js';
import { renderedNode, type RenderedNode } from '../harness/rendered-node.js';
import { EXTERNAL_IP, EXTERNAL_IP6, type NodeHandle, type PodHandle, type ProbeResult, type Topology } from '../harness/topology.js';
import { endpointSliceObject, serviceObject } from '../support/objects.js';
import { joinHostPort, type IPFamily } from '../../src/ip.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/trace-agrees.test.ts: ${skipReason}`);

const WEB_IP = '10.96.0.20';
const EMPTY_IP = '10.96.0.21';
const LOCAL_IP = '10.96.0.22';
const WEB_NODE_PORT = 30090;
const LOCAL_NODE_PORT = 30091;
const TRIES = 24;
/** Never matches a real TCP packet (40 bytes at least), but the tracer cannot know what -m length does. */
const FOREIGN_RULE = ['-A', 'FORWARD', '-m', 'length', '--length', '1:2', '-m', 'comment', '--comment', "a firewall's rule", '-j', 'DROP'];

function objects(node: NodeHandle, pods: readonly PodHandle[]): unknown[] {
  const port = (nodePort?: number) => [{ name: 'http', port: 80, targetPort: 8080, ...(nodePort === undefined ? {} : { nodePort }) }];
  const web = serviceObject({ namespace: 'default', name: 'web', type: 'NodePort', clusterIP: WEB_IP, ports: port(WEB_NODE_PORT), spec: { clusterIPs: [WEB_IP] } });
  const empty = serviceObject({ namespace: 'default', name: 'empty', clusterIP: EMPTY_IP, ports: port(), spec: { clusterIPs: [EMPTY_IP] } });
  const local = serviceObject({
    namespace: 'default',
    name: 'local',
    type: 'NodePort',
    clusterIP: LOCAL_IP,
    ports: port(LOCAL_NODE_PORT),
    spec: { clusterIPs: [LOCAL_IP], externalTrafficPolicy: 'Local' },
  });
  const slice = (serviceName: string, endpoints: Parameters<typeof endpointSliceObject>[0]['endpoints']) =>
    endpointSliceObject({ namespace: 'default', serviceName, name: `${serviceName}-1`, ports: [{ name: 'http', port: 8080 }], endpoints });
  return [
    web,
    // A not-ready endpoint that does not exist: neither trace nor a packet may lead to it.
    slice('web', [...pods.map((pod) => ({ address: pod.ip, nodeName: node.name })), { address: '10.244.1.250', nodeName: node.name, ready: false }]),
    empty,
    slice('empty', []),
    local,
    // Its only endpoint is on another node: Local policy drops outside traffic here.
    slice('local', [{ address: '10.244.2.77', nodeName: 'node2' }]),
  ];
}

interface TracedOutcome {
  verdict: string;
  endpoint: string | null;
  masquerade: boolean;
  assumptions: string[];
}

/**
 * What real packets showed, in the tracer's terms: `ACCEPT ip:port masq|kept`, `REJECT`, `DROP`.
 * Masqueraded means the pod saw the node's address (for the node's own connections that is also
 * its source, so there the two cannot be told apart by the pod; the node's address counts as masq).
 */
function realOutcome(result: ProbeResult, pods: readonly PodHandle[], client: string, nodeIP: string, family: IPFamily = 'IPv4'): string {
  if (!result.ok) {
    if (result.error === 'refused') return 'REJECT';
    if (result.error === 'timeout') return 'DROP';
    return `error ${result.error} ${result.detail}`;
  }
  const pod = pods.find((candidate) => candidate.name === result.reply.pod);
  const source = result.reply.peerIP === nodeIP ? 'masq' : result.reply.peerIP === client ? 'kept' : `seen as ${result.reply.peerIP}`;
  const podIP = family === 'IPv4' ? pod?.ip : pod?.ip6;
  return `ACCEPT ${podIP === undefined ? result.reply.pod : joinHostPort(podIP, 8080)} ${source}`;
}

/** `trace` run inside the node's namespace on its own iptables-save (ip6tables-save for an IPv6
 * destination), as an operator would. */
async function traced(node: NodeHandle, source: string, destination: string, from: 'pod' | 'node' | 'outside'): Promise<TracedOutcome[]> {
  const started = Date.now();
  const result = await exec(
    'ip',
    ['netns', 'exec', node.netns, 'env', '-u', 'KUBECONFIG', 'npx', 'tsx', 'src/cli.ts', 'trace', '--iptables-backend', 'nft', '--source', source, '--destination', destination, '--from', from, '-o', 'json'],
    { timeoutMs: 60_000 },
  );
  expect(result.code, result.stderr).toBe(0);
  console.log(`trace ${from} ${source} -> ${destination}: ${Date.now() - started} ms (process start included)`);
  return (JSON.parse(result.stdout) as { outcomes: TracedOutcome[] }).outcomes;
}

/** The outcomes where the foreign rule did not match (as it never does for real packets), as text. */
function expected(outcomes: readonly TracedOutcome[]): string[] {
  const real = outcomes.filter((outcome) => !outcome.assumptions.some((assumption) => assumption.includes("'-m length --length 1:2' matches")));
  return [...new Set(real.map((outcome) => (outcome.verdict === 'ACCEPT' ? `ACCEPT ${outcome.endpoint ?? '?'} ${outcome.masquerade ? 'masq' : 'kept'}` : outcome.verdict)))].sort();
}

/** What `tries` real connections showed, as `expected` writes it. */
async function sent(probe: () => Promise<ProbeResult>, outcome: (result: ProbeResult) => string, tries = TRIES): Promise<string[]> {
  const seen = new Set<string>();
  for (let attempt = 0; attempt < tries; attempt++) seen.add(outcome(await probe()));
  return [...seen].sort();
}

describe.skipIf(skipReason !== undefined)('trace agrees with real packets', () => {
  let rendered: RenderedNode | undefined;
  let topology: Topology | undefined;
  let node: NodeHandle;
  let pods: readonly PodHandle[];

  beforeAll(async () => {
    rendered = await renderedNode(objects);
    ({ topology, node, pods } = rendered);
    await run('ip', ['netns', 'exec', node.netns, 'iptables-nft', ...FOREIGN_RULE]);
  });

  afterAll(async () => {
    await rendered?.destroy();
  });

  const seen = (client: string) => (result: ProbeResult): string => realOutcome(result, pods, client, node.ip);

  it('a pod to the ClusterIP: both pods, its own address kept except on the hairpin to itself', async () => {
    const client = pods[0];
    if (client === undefined || topology === undefined) throw new Error('setup');
    const outcomes = await traced(node, client.ip, `${WEB_IP}:80`, 'pod');
    const want = expected(outcomes);
    expect(want).toEqual([`ACCEPT ${client.ip}:8080 masq`, `ACCEPT ${pods[1]?.ip ?? ''}:8080 kept`]);
    expect(await sent(() => topology!.tcp(client.netns, WEB_IP, 80), seen(client.ip))).toEqual(want);
    // The foreign rule was shown and explored: a DROP branch that names it.
    const dropped = outcomes.filter((outcome) => outcome.verdict === 'DROP');
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped[0]?.assumptions[0]).toMatch(/^filter FORWARD #\d+ '-m length --length 1:2' matches \(undecidable here: match 'length' is not modelled\)$/);
  });

  it('the node to the ClusterIP: both pods, masqueraded', async () => {
    if (topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, node.ip, `${WEB_IP}:80`, 'node'));
    expect(want).toEqual(pods.map((pod) => `ACCEPT ${pod.ip}:8080 masq`).sort());
    expect(await sent(() => topology!.tcp(node.netns, WEB_IP, 80), seen(node.ip))).toEqual(want);
  });

  it('the external client to the NodePort: both pods, masqueraded', async () => {
    if (topology === undefined) throw new Error('setup');
    const external = EXTERNAL_IP;
    const want = expected(await traced(node, external, `${node.ip}:${WEB_NODE_PORT}`, 'outside'));
    expect(want).toEqual(pods.map((pod) => `ACCEPT ${pod.ip}:8080 masq`).sort());
    expect(await sent(() => topology!.tcp(topology!.externalNetns, node.ip, WEB_NODE_PORT), seen(external))).toEqual(want);
  });

  it('a Service without endpoints: REJECT in trace, refused for real', async () => {
    const client = pods[0];
    if (client === undefined || topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, client.ip, `${EMPTY_IP}:80`, 'pod'));
    expect(want).toEqual(['REJECT']);
    expect(await sent(() => topology!.tcp(client.netns, EMPTY_IP, 80, { timeoutMs: 5000 }), seen(client.ip), 2)).toEqual(want);
  });

  it('externalTrafficPolicy Local without a local endpoint: DROP in trace, no answer for real', async () => {
    if (topology === undefined) throw new Error('setup');
    const external = EXTERNAL_IP;
    const want = expected(await traced(node, external, `${node.ip}:${LOCAL_NODE_PORT}`, 'outside'));
    expect(want).toEqual(['DROP']);
    expect(await sent(() => topology!.tcp(topology!.externalNetns, node.ip, LOCAL_NODE_PORT, { timeoutMs: 2000 }), seen(external), 1)).toEqual(want);
  });
});

// The same Services dual-stack (RequireDualStack), each family's endpoints in its own slice.
const DUAL_IPS = { web: ['10.96.0.20', 'fd00:10:96::20'], empty: ['10.96.0.21', 'fd00:10:96::21'], local: ['10.96.0.22', 'fd00:10:96::22'] } as const;
const FAMILIES: readonly IPFamily[] = ['IPv4', 'IPv6'];

function dualStackObjects(node: NodeHandle, pods: readonly PodHandle[]): unknown[] {
  const port = (nodePort?: number) => [{ name: 'http', port: 80, targetPort: 8080, ...(nodePort === undefined ? {} : { nodePort }) }];
  const dual = (name: string, ips: readonly [string, string], nodePort?: number, spec: Record<string, unknown> = {}) =>
    serviceObject({
      namespace: 'default', name, type: nodePort === undefined ? 'ClusterIP' : 'NodePort', clusterIP: ips[0], ports: port(nodePort),
      spec: { clusterIPs: [...ips], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack', ...spec },
    });
  const slices = (serviceName: string, endpoints: (family: IPFamily) => Parameters<typeof endpointSliceObject>[0]['endpoints']) =>
    FAMILIES.map((family) =>
      endpointSliceObject({ namespace: 'default', serviceName, name: `${serviceName}-${family.toLowerCase()}`, addressType: family, ports: [{ name: 'http', port: 8080 }], endpoints: endpoints(family) }));
  const podIP = (pod: PodHandle, family: IPFamily): string => (family === 'IPv4' ? pod.ip : (pod.ip6 ?? ''));
  return [
    dual('web', DUAL_IPS.web, WEB_NODE_PORT),
    ...slices('web', (family) => pods.map((pod) => ({ address: podIP(pod, family), nodeName: node.name }))),
    dual('empty', DUAL_IPS.empty),
    ...slices('empty', () => []),
    dual('local', DUAL_IPS.local, LOCAL_NODE_PORT, { externalTrafficPolicy: 'Local' }),
    ...slices('local', (family) => [{ address: family === 'IPv4' ? '10.244.2.77' : 'fd00:10:244:2::77', nodeName: 'node2' }]),
  ];
}

describe.skipIf(skipReason !== undefined)('trace agrees with real packets on a dual-stack node, over IPv6 and IPv4', () => {
  let rendered: RenderedNode | undefined;
  let topology: Topology | undefined;
  let node: NodeHandle;
  let pods: readonly PodHandle[];
  const pick = (pair: readonly [string, string], family: IPFamily): string => (family === 'IPv4' ? pair[0] : pair[1]);
  const nodeIP = (family: IPFamily): string => (family === 'IPv4' ? node.ip : (node.ip6 ?? ''));
  const podIP = (pod: PodHandle | undefined, family: IPFamily): string => (family === 'IPv4' ? (pod?.ip ?? '') : (pod?.ip6 ?? ''));
  const external = (family: IPFamily): string => (family === 'IPv4' ? EXTERNAL_IP : EXTERNAL_IP6);
  const seen = (client: string, family: IPFamily) => (result: ProbeResult): string => realOutcome(result, pods, client, nodeIP(family), family);

  beforeAll(async () => {
    rendered = await renderedNode(dualStackObjects, { dualStack: true });
    ({ topology, node, pods } = rendered);
  });

  afterAll(async () => {
    await rendered?.destroy();
  });

  it.each(FAMILIES)('%s: a pod to the ClusterIP: both pods, its own address kept except on the hairpin to itself', async (family) => {
    const client = pods[0];
    if (client === undefined || topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, podIP(client, family), joinHostPort(pick(DUAL_IPS.web, family), 80), 'pod'));
    expect(want).toEqual([`ACCEPT ${joinHostPort(podIP(client, family), 8080)} masq`, `ACCEPT ${joinHostPort(podIP(pods[1], family), 8080)} kept`].sort());
    expect(await sent(() => topology!.tcp(client.netns, pick(DUAL_IPS.web, family), 80), seen(podIP(client, family), family))).toEqual(want);
  });

  it.each(FAMILIES)('%s: the node to the ClusterIP: both pods, masqueraded', async (family) => {
    if (topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, nodeIP(family), joinHostPort(pick(DUAL_IPS.web, family), 80), 'node'));
    expect(want).toEqual(pods.map((pod) => `ACCEPT ${joinHostPort(podIP(pod, family), 8080)} masq`).sort());
    expect(await sent(() => topology!.tcp(node.netns, pick(DUAL_IPS.web, family), 80), seen(nodeIP(family), family))).toEqual(want);
  });

  it.each(FAMILIES)('%s: the external client to the NodePort: both pods, masqueraded', async (family) => {
    if (topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, external(family), joinHostPort(nodeIP(family), WEB_NODE_PORT), 'outside'));
    expect(want).toEqual(pods.map((pod) => `ACCEPT ${joinHostPort(podIP(pod, family), 8080)} masq`).sort());
    expect(await sent(() => topology!.tcp(topology!.externalNetns, nodeIP(family), WEB_NODE_PORT), seen(external(family), family))).toEqual(want);
  });

  it.each(FAMILIES)('%s: a Service without endpoints: REJECT in trace, refused for real', async (family) => {
    const client = pods[0];
    if (client === undefined || topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, podIP(client, family), joinHostPort(pick(DUAL_IPS.empty, family), 80), 'pod'));
    expect(want).toEqual(['REJECT']);
    expect(await sent(() => topology!.tcp(client.netns, pick(DUAL_IPS.empty, family), 80, { timeoutMs: 5000 }), seen(podIP(client, family), family), 2)).toEqual(want);
  });

  it.each(FAMILIES)('%s: externalTrafficPolicy Local without a local endpoint: DROP in trace, no answer for real', async (family) => {
    if (topology === undefined) throw new Error('setup');
    const want = expected(await traced(node, external(family), joinHostPort(nodeIP(family), LOCAL_NODE_PORT), 'outside'));
    expect(want).toEqual(['DROP']);
    expect(await sent(() => topology!.tcp(topology!.externalNetns, nodeIP(family), LOCAL_NODE_PORT, { timeoutMs: 2000 }), seen(external(family), family), 1)).toEqual(want);
  });
});
