// UDP (and SCTP where the kernel has it) Services with real packets, and the stale-flow cleanup:
// a UDP client that keeps its source port keeps its conntrack entry, so without the agent's
// conntrack deletions it would go on talking to an endpoint that left the Service. Both proxy modes.

import { beforeAll, describe, expect, inject, it } from 'vitest';
import { E2ECluster, sequential, sctpSkipReason, tally, reportAndDestroy } from '../harness/e2e-cluster.js';
import { kernelSkipReason } from '../harness/netns.js';
import type { PodHandle, ProbeResult } from '../harness/topology.js';

const skipReason = kernelSkipReason();
const sctpUnsupported = skipReason === undefined ? await sctpSkipReason() : skipReason;

describe.skipIf(skipReason !== undefined).each(['iptables', 'nftables'] as const)('UDP and SCTP services end to end (%s mode)', (mode) => {
  let cluster: E2ECluster;
  let pods: { a: PodHandle; b: PodHandle; client: PodHandle };
  let node1: string;

  beforeAll(async () => {
    cluster = await E2ECluster.start({
      kubeconfigPath: inject('kubeconfigPath'),
      apiserverURL: inject('apiserverURL'),
      nodes: ['node1', 'node2'],
      agentsOn: ['node1'],
      name: `e2e-udp-${mode}`,
      agentArgs: ['--proxy-mode', mode],
    });
    node1 = cluster.node('node1').netns;
    pods = {
      a: await cluster.addPod('node1', 'a', { udp: [9090] }),
      b: await cluster.addPod('node2', 'b', { udp: [9090] }),
      client: await cluster.addPod('node1', 'client', {}),
    };
  });

  reportAndDestroy(() => cluster, `udp.test.ts (${mode})`);

  it('a UDP ClusterIP Service: every endpoint answers, from the node and from a pod', async () => {
    const service = await cluster.createService({ name: 'dns', ports: [{ port: 53, targetPort: 9090, protocol: 'UDP' }] });
    await cluster.setEndpoints('dns', [{ pod: pods.a }, { pod: pods.b }]);
    await cluster.untilAnsweredBy('udp clusterIP: rules in', () => cluster.udp(node1, service.clusterIP, 53), ['a', 'b']);
    for (const [from, peer] of [
      [node1, cluster.node('node1').ip],
      [pods.client.netns, pods.client.ip],
    ] as const) {
      const { results, answered } = await cluster.timed('udp clusterIP: until both answered', () =>
        cluster.sampleUntilAll(() => cluster.udp(from, service.clusterIP, 53), ['a', 'b']),
      );
      const { failures, peers } = tally(results);
      expect(failures).toEqual([]);
      expect(answered).toEqual(new Set(['a', 'b']));
      expect(peers).toEqual(new Set([peer]));
    }
  });

  it('a stale UDP flow moves to the remaining endpoint when its endpoint leaves (same source port)', async () => {
    const service = await cluster.createService({ name: 'stale', ports: [{ port: 53, targetPort: 9090, protocol: 'UDP' }] });
    await cluster.setEndpoints('stale', [{ pod: pods.a }, { pod: pods.b }]);
    const sourcePort = 40_053;
    const probe = (): Promise<ProbeResult> => cluster.udp(pods.client.netns, service.clusterIP, 53, { sourcePort });
    await cluster.untilAnsweredBy('udp stale: rules in', probe, ['a', 'b']);
    // The sync that brought the endpoints also deletes the flows of the Service's endpoint-less
    // past; let it finish before pinning a flow.
    await cluster.settled();
    const first = await probe();
    if (!first.ok) throw new Error('unreachable');
    const pinned = first.reply.pod;
    const other = pinned === 'a' ? 'b' : 'a';
    // The conntrack entry pins the flow: the same endpoint answers every time.
    const before = tally(await sequential(5, probe));
    expect(before.failures).toEqual([]);
    expect(new Set(before.pods)).toEqual(new Set([pinned]));
    const pinnedPod = pinned === 'a' ? pods.a : pods.b;
    const otherPod = pinned === 'a' ? pods.b : pods.a;
    const flow = ['-p', 'udp', '--orig-port-src', String(sourcePort)];
    expect((await cluster.conntrackList('node1', flow)).join('\n')).toContain(`src=${pinnedPod.ip} `);

    // The pinned endpoint leaves the Service but keeps running: only the conntrack cleanup can move the flow.
    await cluster.setEndpoints('stale', [{ pod: pinned === 'a' ? pods.b : pods.a }]);
    await cluster.untilAnsweredBy('udp stale: flow moved (clusterIP)', probe, [other], 20_000);
    const after = tally(await sequential(5, probe));
    expect(after.failures).toEqual([]);
    expect(new Set(after.pods)).toEqual(new Set([other]));
    const entries = (await cluster.conntrackList('node1', flow)).join('\n');
    expect(entries).toContain(`src=${otherPod.ip} `);
    expect(entries).not.toContain(`src=${pinnedPod.ip} `);
    const direct = await cluster.udp(pods.client.netns, pinnedPod.ip, 9090);
    expect(direct.ok && direct.reply.pod).toBe(pinned);
  });

  it('a stale UDP NodePort flow from outside moves too', async () => {
    const service = await cluster.createService({ name: 'stale-np', type: 'NodePort', ports: [{ port: 53, targetPort: 9090, protocol: 'UDP' }] });
    const nodePort = service.nodePorts.get('') ?? 0;
    expect(nodePort).toBeGreaterThan(0);
    await cluster.setEndpoints('stale-np', [{ pod: pods.a }, { pod: pods.b }]);
    const sourcePort = 40_054;
    const probe = (): Promise<ProbeResult> => cluster.udp(cluster.externalNetns, cluster.node('node1').ip, nodePort, { sourcePort });
    await cluster.untilAnsweredBy('udp stale nodePort: rules in', probe, ['a', 'b']);
    await cluster.settled();
    const first = await probe();
    if (!first.ok) throw new Error('unreachable');
    const pinned = first.reply.pod;
    const other = pinned === 'a' ? 'b' : 'a';
    const before = tally(await sequential(5, probe));
    expect(new Set(before.pods)).toEqual(new Set([pinned]));
    // Cluster policy: masqueraded to node1's address.
    expect(before.peers).toEqual(new Set([cluster.node('node1').ip]));

    await cluster.setEndpoints('stale-np', [{ pod: pinned === 'a' ? pods.b : pods.a }]);
    await cluster.untilAnsweredBy('udp stale: flow moved (nodePort)', probe, [other], 20_000);
    const after = tally(await sequential(5, probe));
    expect(after.failures).toEqual([]);
    expect(new Set(after.pods)).toEqual(new Set([other]));
  });

  it('a UDP Service without endpoints refuses (ICMP port unreachable)', async () => {
    const service = await cluster.createService({ name: 'udp-empty', ports: [{ port: 53, targetPort: 9090, protocol: 'UDP' }] });
    await cluster.setEndpoints('udp-empty', []);
    const refused = await cluster.until('udp no endpoints: refused', () => cluster.udp(pods.client.netns, service.clusterIP, 53), (result) => !result.ok && result.error === 'refused');
    expect(refused.ok).toBe(false);
  });

  it.skipIf(sctpUnsupported !== undefined)(`an SCTP ClusterIP Service: every endpoint answers${sctpUnsupported !== undefined ? ` (skipped: ${sctpUnsupported})` : ''}`, async () => {
    const sctpA = await cluster.addPod('node1', 'sctp-a', { sctp: [7070] });
    const sctpB = await cluster.addPod('node2', 'sctp-b', { sctp: [7070] });
    const service = await cluster.createService({ name: 'sctp', ports: [{ port: 70, targetPort: 7070, protocol: 'SCTP' }] });
    await cluster.setEndpoints('sctp', [{ pod: sctpA }, { pod: sctpB }]);
    const probe = (): Promise<ProbeResult> => cluster.topology.sctp(pods.client.netns, service.clusterIP, 70);
    await cluster.untilAnsweredBy('sctp clusterIP: rules in', probe, ['sctp-a', 'sctp-b']);
    const { results, answered } = await cluster.sampleUntilAll(probe, ['sctp-a', 'sctp-b']);
    expect(tally(results).failures).toEqual([]);
    expect(answered).toEqual(new Set(['sctp-a', 'sctp-b']));
  });
});
