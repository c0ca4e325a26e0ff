// Real IPv4 and IPv6 packets through one dual-stack node: the real `render` command prints each
// family's rules (--ip-family), iptables-restore and ip6tables-restore load them into the node's
// namespace, and pods with both an IPv4 and an IPv6 address answer with their name and the source
// they saw. Every case runs over both families on the same dual-stack Services. ULA (fd00::/8) and
// documentation prefixes only, all inside the topology's namespaces.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1EndpointSlice, V1Service, V1ServiceSpec } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ExecNetfilter, ipv6Binaries, nftBinaries } from '../../src/netfilter/exec.js';
import { exec } from '../harness/exec.js';
import { sequential, tally } from '../harness/e2e-cluster.js';
import { kernelSkipReason } from '../harness/netns.js';
import { CLUSTER_CIDR, CLUSTER_CIDR6, EXTERNAL_IP, EXTERNAL_IP6, Topology, type NodeHandle, type PodHandle } from '../harness/topology.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/kernel/packets-dual-stack.test.ts: ${skipReason}`);

type Family = 'IPv4' | 'IPv6';
const FAMILIES: readonly Family[] = ['IPv4', 'IPv6'];
/** Per Service, its address of each family: [IPv4, IPv6]. */
const IPS = {
  web: ['10.96.0.10', 'fd00:10:96::10'],
  empty: ['10.96.0.11', 'fd00:10:96::11'],
  sticky: ['10.96.0.12', 'fd00:10:96::12'],
  external: ['192.0.2.7', 'fd00:40::7'],
  allowed: ['203.0.113.9', 'fd00:40::9'],
  denied: ['203.0.113.10', 'fd00:40::a'],
  internal: ['10.96.0.13', 'fd00:10:96::13'],
  internalNone: ['10.96.0.14', 'fd00:10:96::14'],
} as const;
const at = (pair: readonly [string, string], family: Family): string => (family === 'IPv4' ? pair[0] : pair[1]);
const TRIES = 16;

function objects(pods: readonly PodHandle[]): unknown[] {
  const service = (name: string, clusterIPs: readonly [string, string], spec: Partial<V1ServiceSpec> = {}, ingress: readonly string[] = []): V1Service => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'default', name },
    spec: {
      type: 'ClusterIP',
      ipFamilyPolicy: 'RequireDualStack',
      ipFamilies: ['IPv4', 'IPv6'],
      clusterIP: clusterIPs[0],
      clusterIPs: [...clusterIPs],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
      ...spec,
    },
    ...(ingress.length > 0 ? { status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } } } : {}),
  });
  /** `nodeOf` says which node each endpoint is on (default its own): internalTrafficPolicy Local
   * must then skip the ones said to be elsewhere, although they would answer. */
  const slices = (name: string, members: readonly PodHandle[], nodeOf: (pod: PodHandle) => string = (pod) => pod.node.name): V1EndpointSlice[] =>
    FAMILIES.map((family) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: 'default', name: `${name}-${family.toLowerCase()}`, labels: { 'kubernetes.io/service-name': name } },
      addressType: family,
      endpoints: members.map((pod) => ({
        addresses: [family === 'IPv4' ? pod.ip : (pod.ip6 ?? '')],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: nodeOf(pod),
      })),
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    }));
  const lb = (name: string, ingress: readonly [string, string], ranges: readonly string[], nodePort: number): V1Service =>
    service(name, [`10.96.1.${nodePort - 30000}`, `fd00:10:96::1:${nodePort - 30000}`], {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      healthCheckNodePort: nodePort + 1000,
      loadBalancerSourceRanges: [...ranges],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort }],
    }, ingress);
  return [
    service('web', IPS.web, { type: 'NodePort', externalIPs: [...IPS.external], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] }),
    ...slices('web', pods),
    service('empty', IPS.empty),
    ...slices('empty', []),
    service('sticky', IPS.sticky, { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } } }),
    ...slices('sticky', pods),
    // Source ranges of both families: the external client is inside one pair and outside the other.
    lb('allowed', IPS.allowed, [`${EXTERNAL_IP}/32`, `${EXTERNAL_IP6}/128`], 30081),
    ...slices('allowed', pods),
    lb('denied', IPS.denied, ['198.51.100.0/24', 'fd00:50::/64'], 30082),
    ...slices('denied', pods),
    // internalTrafficPolicy Local: pod-b is said to be on node2, so only pod-a may answer; with
    // every endpoint elsewhere, nothing may (DROP, not REJECT: the Service has endpoints).
    service('internal', IPS.internal, { internalTrafficPolicy: 'Local' }),
    ...slices('internal', pods, (pod) => (pod.name === 'pod-a' ? pod.node.name : 'node2')),
    service('internal-none', IPS.internalNone, { internalTrafficPolicy: 'Local' }),
    ...slices('internal-none', pods, () => 'node2'),
  ];
}

describe.skipIf(skipReason !== undefined)('dual-stack Services with real IPv4 and IPv6 packets', () => {
  let topology: Topology | undefined;
  let node: NodeHandle;
  let pods: PodHandle[];
  let client: PodHandle;
  let directory: string | undefined;
  const nodeIP = (family: Family): string => (family === 'IPv4' ? node.ip : (node.ip6 ?? ''));
  const podIP = (pod: PodHandle, family: Family): string => (family === 'IPv4' ? pod.ip : (pod.ip6 ?? ''));
  const externalIP = (family: Family): string => (family === 'IPv4' ? EXTERNAL_IP : EXTERNAL_IP6);

  beforeAll(async () => {
    topology = await Topology.create(['node1'], { dualStack: true });
    node = topology.node('node1');
    pods = [await topology.addPod(node, 'pod-a', { tcp: [8080] }), await topology.addPod(node, 'pod-b', { tcp: [8080] })];
    client = await topology.addPod(node, 'client', {});
    for (const pair of [IPS.external, IPS.allowed, IPS.denied]) {
      await topology.routeFromExternal(`${pair[0]}/32`, node);
      await topology.routeFromExternal(`${pair[1]}/128`, node);
    }
    directory = await mkdtemp(join(tmpdir(), 'kpt-dual-stack-'));
    const file = join(directory, 'objects.yaml');
    await writeFile(file, objects(pods).map((object) => stringify(object)).join('---\n'));
    for (const family of FAMILIES) {
      const rendered = await exec(
        'npx',
        ['tsx', 'src/cli.ts', 'render', '--objects', file, '--node-name', node.name, '--node-ip', `${node.ip},${node.ip6 ?? ''}`,
          '--cluster-cidr', `${CLUSTER_CIDR},${CLUSTER_CIDR6}`, '--ip-family', family],
        { timeoutMs: 60_000 },
      );
      expect(rendered.code, rendered.stderr).toBe(0);
      const binaries = family === 'IPv4' ? nftBinaries : ipv6Binaries(nftBinaries);
      const netfilter = new ExecNetfilter({ binaries, prefix: ['ip', 'netns', 'exec', node.netns] });
      expect(await netfilter.restore(rendered.stdout, { noFlush: true }), rendered.stdout).toEqual({ ok: true });
    }
  });

  afterAll(async () => {
    await topology?.destroy();
    if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  });

  const probe = (from: string, ip: string, port = 80) => () => topology!.tcp(from, ip, port, { timeoutMs: 1500 });

  it.each(FAMILIES)('%s: a pod reaching the ClusterIP is answered by both pods and keeps its own address', async (family) => {
    const result = tally(await sequential(TRIES, probe(client.netns, at(IPS.web, family))));
    expect(result.failures).toEqual([]);
    expect(new Set(result.pods)).toEqual(new Set(['pod-a', 'pod-b']));
    expect(result.peers).toEqual(new Set([podIP(client, family)]));
  });

  it.each(FAMILIES)('%s: the node reaching the ClusterIP is masqueraded to its own address', async (family) => {
    const result = tally(await sequential(TRIES, probe(node.netns, at(IPS.web, family))));
    expect(result.failures).toEqual([]);
    expect(new Set(result.pods)).toEqual(new Set(['pod-a', 'pod-b']));
    expect(result.peers).toEqual(new Set([nodeIP(family)]));
  });

  it.each(FAMILIES)('%s: the NodePort and an externalIP answer the outside client, masqueraded (externalTrafficPolicy Cluster)', async (family) => {
    for (const target of [nodeIP(family), at(IPS.external, family)]) {
      const port = target === nodeIP(family) ? 30080 : 80;
      const result = tally(await sequential(TRIES, probe(topology!.externalNetns, target, port)));
      expect(result.failures, target).toEqual([]);
      expect(new Set(result.pods), target).toEqual(new Set(['pod-a', 'pod-b']));
      expect(result.peers, target).toEqual(new Set([nodeIP(family)]));
    }
  });

  it.each(FAMILIES)('%s: a Service without endpoints is REJECTed at once', async (family) => {
    const result = await topology!.tcp(client.netns, at(IPS.empty, family), 80);
    expect(result.ok ? 'answered' : result.error).toBe('refused');
  });

  it.each(FAMILIES)('%s: ClientIP session affinity sends every connection of a client to one pod', async (family) => {
    const result = tally(await sequential(TRIES, probe(client.netns, at(IPS.sticky, family))));
    expect(result.failures).toEqual([]);
    expect(new Set(result.pods).size).toBe(1);
    expect(result.peers).toEqual(new Set([podIP(client, family)]));
  });

  it.each(FAMILIES)('%s: a load-balancer IP admits a client inside its source ranges with its address kept (Local), and drops one outside', async (family) => {
    const allowed = tally(await sequential(TRIES, probe(topology!.externalNetns, at(IPS.allowed, family))));
    expect(allowed.failures).toEqual([]);
    expect(new Set(allowed.pods)).toEqual(new Set(['pod-a', 'pod-b']));
    expect(allowed.peers).toEqual(new Set([externalIP(family)]));
    const denied = await topology!.tcp(topology!.externalNetns, at(IPS.denied, family), 80, { timeoutMs: 1000 });
    expect(denied.ok ? 'answered' : denied.error).toBe('timeout');
  });

  it.each(FAMILIES)('%s: internalTrafficPolicy Local sends pods only to the local endpoint, source kept, and drops when none is local', async (family) => {
    const result = tally(await sequential(TRIES, probe(client.netns, at(IPS.internal, family))));
    expect(result.failures).toEqual([]);
    expect(new Set(result.pods)).toEqual(new Set(['pod-a']));
    expect(result.peers).toEqual(new Set([podIP(client, family)]));
    const fromNode = tally(await sequential(4, probe(node.netns, at(IPS.internal, family))));
    expect(fromNode.failures).toEqual([]);
    expect(new Set(fromNode.pods)).toEqual(new Set(['pod-a']));
    const none = await topology!.tcp(client.netns, at(IPS.internalNone, family), 80, { timeoutMs: 1000 });
    expect(none.ok ? 'answered' : none.error).toBe('timeout');
  });
});
