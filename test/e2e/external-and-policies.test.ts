// Traffic from outside the cluster (NodePort, load-balancer ingress IPs, externalIPs,
// loadBalancerSourceRanges) and the traffic policies, with two agents: one per node namespace,
// both watching the same apiserver, each programming its own node's view. In both proxy modes.

import { beforeAll, describe, expect, inject, it } from 'vitest';
import { nftServicePortNames } from '../../src/nftables/vocabulary.js';
import { servicePortChainNames } from '../../src/render/names.js';
import { E2ECluster, reportAndDestroy, tally } from '../harness/e2e-cluster.js';
import { kernelSkipReason } from '../harness/netns.js';
import { EXTERNAL_IP, type PodHandle, type ProbeResult } from '../harness/topology.js';

const skipReason = kernelSkipReason();

type Mode = 'iptables' | 'nftables';

describe.skipIf(skipReason !== undefined).each(['iptables', 'nftables'] as const)('external traffic and traffic policies end to end (two agents, %s mode)', (mode: Mode) => {
  let cluster: E2ECluster;
  let pods: { a1: PodHandle; a2: PodHandle; b1: PodHandle; client1: PodHandle; client2: PodHandle };
  let node1IP: string;
  let node2IP: string;
  let external: string;

  beforeAll(async () => {
    cluster = await E2ECluster.start({
      kubeconfigPath: inject('kubeconfigPath'),
      apiserverURL: inject('apiserverURL'),
      nodes: ['node1', 'node2'],
      name: `e2e-external-${mode}`,
      agentArgs: ['--proxy-mode', mode],
    });
    node1IP = cluster.node('node1').ip;
    node2IP = cluster.node('node2').ip;
    external = cluster.externalNetns;
    pods = {
      a1: await cluster.addPod('node1', 'a1', { tcp: [8080] }),
      a2: await cluster.addPod('node1', 'a2', { tcp: [8080] }),
      b1: await cluster.addPod('node2', 'b1', { tcp: [8080] }),
      client1: await cluster.addPod('node1', 'client1', {}),
      client2: await cluster.addPod('node2', 'client2', {}),
    };
  });

  reportAndDestroy(() => cluster, `external-and-policies.test.ts (${mode})`);

  /** The rules of the denied Service's firewall chain, as the mode writes them. */
  async function firewallRules(node: string, serviceName: string): Promise<string[]> {
    if (mode === 'iptables') {
      const firewall = servicePortChainNames(`${cluster.namespace}/${serviceName}`, 'TCP').firewall;
      return (await cluster.iptablesSave(node)).split('\n').filter((line) => line.startsWith(`-A ${firewall} `));
    }
    return chainBodies(await cluster.nftTable(node)).get(nftServicePortNames(cluster.namespace, serviceName, '', 'TCP').firewall) ?? [];
  }

  /** Endpoint IPs the DNAT rules of a Service's port send to on a node. */
  async function dnatTargets(node: string, serviceName: string): Promise<string[]> {
    if (mode === 'iptables') return localEndpointsIn(await cluster.iptablesSave(node), `${cluster.namespace}/${serviceName}`);
    const ips = new Set<string>();
    for (const [chain, rules] of chainBodies(await cluster.nftTable(node))) {
      if (!chain.startsWith('endpoint-') || !chain.includes(`-${cluster.namespace}/${serviceName}/`)) continue;
      for (const rule of rules) {
        const match = /dnat to (\d+\.\d+\.\d+\.\d+):\d+/.exec(rule);
        if (match?.[1] !== undefined) ips.add(match[1]);
      }
    }
    return [...ips].sort();
  }

  it('NodePort from the external client via either node IP reaches every endpoint, masqueraded to that node IP', async () => {
    const service = await cluster.createService({ name: 'np', type: 'NodePort', ports: [{ port: 80, targetPort: 8080 }] });
    const nodePort = service.nodePorts.get('') ?? 0;
    expect(nodePort).toBeGreaterThanOrEqual(30000);
    await cluster.setEndpoints('np', [{ pod: pods.a1 }, { pod: pods.b1 }]);
    for (const nodeIP of [node1IP, node2IP]) {
      const probe = (): Promise<ProbeResult> => cluster.tcp(external, nodeIP, nodePort);
      await cluster.untilAnsweredBy(`nodePort via ${nodeIP}: rules in`, probe, ['a1', 'b1']);
      const { results, answered } = await cluster.timed(`nodePort via ${nodeIP}: until both answered`, () => cluster.sampleUntilAll(probe, ['a1', 'b1']));
      const { failures, peers } = tally(results);
      expect(failures).toEqual([]);
      expect(answered).toEqual(new Set(['a1', 'b1']));
      // Cluster policy: SNAT to the node the client talked to, so replies return through it.
      expect(peers).toEqual(new Set([nodeIP]));
    }
  });

  it('load-balancer ingress IPs and externalIPs answer from outside', async () => {
    const lbIP = '192.0.2.10';
    const externalIP = '192.0.2.20';
    await cluster.createService({ name: 'lb', type: 'LoadBalancer', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('lb', [{ pod: pods.a1 }, { pod: pods.b1 }]);
    await cluster.setLoadBalancerIngress('lb', [lbIP]);
    await cluster.createService({ name: 'extip', ports: [{ port: 80, targetPort: 8080 }], spec: { externalIPs: [externalIP] } });
    await cluster.setEndpoints('extip', [{ pod: pods.a2 }]);
    await cluster.topology.routeFromExternal(`${lbIP}/32`, cluster.node('node1'));
    await cluster.topology.routeFromExternal(`${externalIP}/32`, cluster.node('node1'));

    const lbProbe = (): Promise<ProbeResult> => cluster.tcp(external, lbIP, 80);
    await cluster.untilAnsweredBy('LB ingress IP: rules in', lbProbe, ['a1', 'b1']);
    const lb = await cluster.sampleUntilAll(lbProbe, ['a1', 'b1']);
    expect(tally(lb.results).failures).toEqual([]);
    expect(lb.answered).toEqual(new Set(['a1', 'b1']));
    expect(tally(lb.results).peers).toEqual(new Set([node1IP]));

    const extProbe = (): Promise<ProbeResult> => cluster.tcp(external, externalIP, 80);
    await cluster.untilAnsweredBy('externalIP: rules in', extProbe, ['a2']);
    const ext = tally(await Promise.all(Array.from({ length: 5 }, extProbe)));
    expect(ext.failures).toEqual([]);
    expect(new Set(ext.pods)).toEqual(new Set(['a2']));
  });

  it('loadBalancerSourceRanges admits an allowed source and drops the others', async () => {
    const deniedIP = '192.0.2.31';
    const allowedIP = '192.0.2.30';
    // Created first, so the allowed Service below serves as a barrier: once it answers, the
    // agent has programmed this one too.
    await cluster.createService({
      name: 'lb-denied',
      type: 'LoadBalancer',
      ports: [{ port: 80, targetPort: 8080 }],
      spec: { loadBalancerSourceRanges: ['198.51.100.0/24'] },
    });
    await cluster.setEndpoints('lb-denied', [{ pod: pods.a1 }]);
    await cluster.setLoadBalancerIngress('lb-denied', [deniedIP]);
    await cluster.createService({
      name: 'lb-allowed',
      type: 'LoadBalancer',
      ports: [{ port: 80, targetPort: 8080 }],
      spec: { loadBalancerSourceRanges: [`${EXTERNAL_IP}/32`, '198.51.100.0/24'] },
    });
    await cluster.setEndpoints('lb-allowed', [{ pod: pods.a1 }]);
    await cluster.setLoadBalancerIngress('lb-allowed', [allowedIP]);
    for (const ip of [allowedIP, deniedIP]) await cluster.topology.routeFromExternal(`${ip}/32`, cluster.node('node1'));

    await cluster.untilAnsweredBy('source ranges: allowed source answered', () => cluster.tcp(external, allowedIP, 80), ['a1']);
    const denied = await cluster.timed('source ranges: denied source (1 s probe)', () => cluster.tcp(external, deniedIP, 80, 1000));
    // Dropped, not rejected: the client hears nothing.
    expect(denied.ok ? `answered by ${denied.reply.pod}` : denied.error).toBe('timeout');
    // The denied Service's firewall chain is in place and admits only its own range.
    const rules = await firewallRules('node1', 'lb-denied');
    expect(rules.join('\n')).toContain(mode === 'iptables' ? '-s 198.51.100.0/24' : '198.51.100.0/24');
    expect(rules.some((line) => line.includes(EXTERNAL_IP))).toBe(false);
    // The same endpoint answers directly, so it is the firewall rule that dropped the connection.
    const direct = await cluster.tcp(pods.client1.netns, pods.a1.ip, 8080);
    expect(direct.ok && direct.reply.pod).toBe('a1');
  });

  it('externalTrafficPolicy Local: node-local endpoints only, client IP preserved, healthCheckNodePort 200 / 503', async () => {
    const service = await cluster.createService({
      name: 'etp-local',
      type: 'LoadBalancer',
      ports: [{ port: 80, targetPort: 8080 }],
      spec: { externalTrafficPolicy: 'Local' },
    });
    const nodePort = service.nodePorts.get('') ?? 0;
    const healthCheckNodePort = service.healthCheckNodePort;
    expect(healthCheckNodePort).toBeGreaterThan(0);
    // Both endpoints are on node1; node2 has none.
    await cluster.setEndpoints('etp-local', [{ pod: pods.a1 }, { pod: pods.a2 }]);

    const viaNode1 = (): Promise<ProbeResult> => cluster.tcp(external, node1IP, nodePort);
    await cluster.untilAnsweredBy('eTP Local: rules in on node1', viaNode1, ['a1', 'a2']);
    const { results, answered } = await cluster.sampleUntilAll(viaNode1, ['a1', 'a2']);
    const { failures, peers } = tally(results);
    expect(failures).toEqual([]);
    expect(answered).toEqual(new Set(['a1', 'a2']));
    // Not masqueraded: the pod sees the external client itself.
    expect(peers).toEqual(new Set([EXTERNAL_IP]));

    const node1Health = await cluster.until(
      'eTP Local: healthCheckNodePort 200 on node1',
      () => cluster.httpGet(external, node1IP, healthCheckNodePort, '/'),
      (response) => response.status === 200,
    );
    expect(JSON.parse(node1Health.body)).toMatchObject({ service: { namespace: cluster.namespace, name: 'etp-local' }, localEndpoints: 2 });
    const node2Health = await cluster.until(
      'eTP Local: healthCheckNodePort 503 on node2',
      () => cluster.httpGet(external, node2IP, healthCheckNodePort, '/'),
      (response) => response.status === 503,
    );
    expect(JSON.parse(node2Health.body)).toMatchObject({ localEndpoints: 0 });

    // node2 has no local endpoint: its NodePort drops the connection instead of forwarding it.
    const viaNode2 = await cluster.tcp(external, node2IP, nodePort, 1000);
    expect(viaNode2.ok ? `answered by ${viaNode2.reply.pod}` : viaNode2.error).toBe('timeout');

    // An endpoint appears on node2: its health check turns 200 and its NodePort serves it alone.
    await cluster.setEndpoints('etp-local', [{ pod: pods.a1 }, { pod: pods.a2 }, { pod: pods.b1 }]);
    await cluster.until('eTP Local: node2 health 200 after a local endpoint', () => cluster.httpGet(external, node2IP, healthCheckNodePort, '/'), (response) => response.status === 200);
    await cluster.untilAnsweredBy('eTP Local: node2 NodePort serves b1', () => cluster.tcp(external, node2IP, nodePort), ['b1']);
    const node2Only = tally(await Promise.all(Array.from({ length: 8 }, () => cluster.tcp(external, node2IP, nodePort))));
    expect(node2Only.failures).toEqual([]);
    expect(new Set(node2Only.pods)).toEqual(new Set(['b1']));
    expect(node2Only.peers).toEqual(new Set([EXTERNAL_IP]));
  });

  it('two agents, internalTrafficPolicy Local: a pod on each node reaches only its own node\'s endpoint', async () => {
    const local = await cluster.createService({ name: 'itp-local', ports: [{ port: 80, targetPort: 8080 }], spec: { internalTrafficPolicy: 'Local' } });
    const shared = await cluster.createService({ name: 'itp-cluster', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('itp-local', [{ pod: pods.a1 }, { pod: pods.b1 }]);
    await cluster.setEndpoints('itp-cluster', [{ pod: pods.a1 }, { pod: pods.b1 }]);

    for (const [client, own] of [
      [pods.client1, 'a1'],
      [pods.client2, 'b1'],
    ] as const) {
      const probe = (): Promise<ProbeResult> => cluster.tcp(client.netns, local.clusterIP, 80);
      await cluster.untilAnsweredBy(`iTP Local: rules in for ${client.name}`, probe, [own]);
      const results = tally(await Promise.all(Array.from({ length: 12 }, probe)));
      expect(results.failures).toEqual([]);
      expect(new Set(results.pods)).toEqual(new Set([own]));
      // The same endpoints behind a Cluster-policy Service: both answer from either node.
      const { results: clusterResults, answered } = await cluster.sampleUntilAll(() => cluster.tcp(client.netns, shared.clusterIP, 80), ['a1', 'b1']);
      expect(tally(clusterResults).failures).toEqual([]);
      expect(answered).toEqual(new Set(['a1', 'b1']));
    }

    // Each agent wrote only its own view: node1's rules name a1 for the local chain, node2's b1.
    expect(await dnatTargets('node1', 'itp-local')).toEqual([pods.a1.ip]);
    expect(await dnatTargets('node2', 'itp-local')).toEqual([pods.b1.ip]);
  });
});

/** Endpoint IPs the DNAT rules of `servicePortName` send to, in an iptables-save text. */
function localEndpointsIn(saved: string, servicePortName: string): string[] {
  const ips = new Set<string>();
  for (const line of saved.split('\n')) {
    if (!line.includes(servicePortName)) continue;
    const match = /-j DNAT --to-destination (\d+\.\d+\.\d+\.\d+):\d+/.exec(line);
    if (match?.[1] !== undefined) ips.add(match[1]);
  }
  return [...ips].sort();
}

/** Rules per chain in an `nft list table` text. */
function chainBodies(listing: string): Map<string, string[]> {
  const chains = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of listing.split('\n')) {
    const trimmed = line.trim();
    const start = /^chain (\S+) \{$/.exec(trimmed);
    if (start?.[1] !== undefined) {
      chains.set(start[1], (current = []));
    } else if (trimmed === '}') {
      current = undefined;
    } else if (current !== undefined && trimmed !== '' && !trimmed.startsWith('type ') && !trimmed.startsWith('comment ')) {
      current.push(trimmed);
    }
  }
  return chains;
}
