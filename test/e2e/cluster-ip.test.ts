// ClusterIP Services with real packets: the agent on node1 programs its netns; pods on node1 and
// node2 answer with their name and the address they saw, so each test checks which endpoint
// answered and whether the source was masqueraded. Both proxy modes.

import { beforeAll, describe, expect, inject, it } from 'vitest';
import { nftServicePortNames } from '../../src/nftables/vocabulary.js';
import { servicePortChainNames } from '../../src/render/names.js';
import { E2ECluster, reportAndDestroy, tally } from '../harness/e2e-cluster.js';
import { kernelSkipReason } from '../harness/netns.js';
import type { PodHandle } from '../harness/topology.js';

const skipReason = kernelSkipReason();

describe.skipIf(skipReason !== undefined).each(['iptables', 'nftables'] as const)('ClusterIP services end to end (%s mode)', (mode) => {
  let cluster: E2ECluster;
  let pods: { a: PodHandle; b: PodHandle; c: PodHandle; client: PodHandle };
  let node1: string;

  beforeAll(async () => {
    cluster = await E2ECluster.start({
      kubeconfigPath: inject('kubeconfigPath'),
      apiserverURL: inject('apiserverURL'),
      nodes: ['node1', 'node2'],
      agentsOn: ['node1'],
      name: `e2e-clusterip-${mode}`,
      agentArgs: ['--proxy-mode', mode],
    });
    node1 = cluster.node('node1').netns;
    pods = {
      a: await cluster.addPod('node1', 'a', { tcp: [8080, 8081] }),
      b: await cluster.addPod('node1', 'b', { tcp: [8080, 8081] }),
      c: await cluster.addPod('node2', 'c', { tcp: [8080, 8081] }),
      client: await cluster.addPod('node1', 'client', {}),
    };
  });

  reportAndDestroy(() => cluster, `cluster-ip.test.ts (${mode})`);

  it('one endpoint answers every connection, from the node (masqueraded) and from a pod (not)', async () => {
    const service = await cluster.createService({ name: 'one', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('one', [{ pod: pods.a }]);
    await cluster.untilAnsweredBy('clusterIP 1 endpoint: rules in', () => cluster.tcp(node1, service.clusterIP, 80), ['a']);

    const fromNode = await cluster.timed('clusterIP 1 endpoint: 10 connections from node', async () =>
      tally(await Promise.all(Array.from({ length: 10 }, () => cluster.tcp(node1, service.clusterIP, 80)))),
    );
    expect(fromNode.failures).toEqual([]);
    expect(new Set(fromNode.pods)).toEqual(new Set(['a']));
    expect(fromNode.peers).toEqual(new Set([cluster.node('node1').ip]));

    const fromPod = tally(await Promise.all(Array.from({ length: 10 }, () => cluster.tcp(pods.client.netns, service.clusterIP, 80))));
    expect(fromPod.failures).toEqual([]);
    expect(new Set(fromPod.pods)).toEqual(new Set(['a']));
    expect(fromPod.peers).toEqual(new Set([pods.client.ip]));
  });

  it('three endpoints (two nodes) all answer over repeated connections, from the node and from a pod', async () => {
    const service = await cluster.createService({ name: 'three', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('three', [{ pod: pods.a }, { pod: pods.b }, { pod: pods.c }]);
    await cluster.untilAnsweredBy('clusterIP 3 endpoints: rules in', () => cluster.tcp(node1, service.clusterIP, 80), ['a', 'b', 'c']);

    for (const from of [node1, pods.client.netns]) {
      const { results, answered } = await cluster.timed(`clusterIP 3 endpoints: until all answered (${from === node1 ? 'node' : 'pod'})`, () =>
        cluster.sampleUntilAll(() => cluster.tcp(from, service.clusterIP, 80), ['a', 'b', 'c']),
      );
      expect(tally(results).failures).toEqual([]);
      expect(answered).toEqual(new Set(['a', 'b', 'c']));
    }
  });

  it('a multi-port Service routes each port to its own target port', async () => {
    const service = await cluster.createService({
      name: 'multi',
      ports: [
        { name: 'web', port: 80, targetPort: 8080 },
        { name: 'admin', port: 81, targetPort: 8081 },
      ],
    });
    await cluster.setEndpoints('multi', [{ pod: pods.b }]);
    const web = await cluster.untilAnsweredBy('multi-port: rules in', () => cluster.tcp(pods.client.netns, service.clusterIP, 80), ['b']);
    const admin = await cluster.tcp(pods.client.netns, service.clusterIP, 81);
    expect(web.ok && web.reply.local).toBe(`${pods.b.ip}:8080`);
    expect(admin.ok && admin.reply.local).toBe(`${pods.b.ip}:8081`);
  });

  it('a Service without endpoints refuses connections at once', async () => {
    const service = await cluster.createService({ name: 'empty', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('empty', []);
    // 'refused' (ICMP port unreachable from the REJECT rule), well before the 2 s probe timeout.
    const refused = await cluster.until('no endpoints: refused', () => cluster.tcp(pods.client.netns, service.clusterIP, 80), (result) => !result.ok && result.error === 'refused');
    expect(refused.ok).toBe(false);
    const fromNode = await cluster.tcp(node1, service.clusterIP, 80);
    expect(fromNode.ok ? 'answered' : fromNode.error).toBe('refused');
    // It is our REJECT rule that refused, not some host on the way.
    if (mode === 'iptables') {
      const saved = await cluster.iptablesSave('node1');
      const rejects = saved.split('\n').filter((line) => line.includes(`${cluster.namespace}/empty`) && line.includes('-j REJECT'));
      expect(rejects.length).toBeGreaterThan(0);
    } else {
      // The no-endpoint-services verdict map sends it to reject-chain.
      expect(await cluster.nftTable('node1')).toContain(`${service.clusterIP} . tcp . 80 comment "${cluster.namespace}/empty" : goto reject-chain`);
    }
  });

  it('terminating endpoints serve only while no endpoint is ready', async () => {
    const service = await cluster.createService({ name: 'term', ports: [{ port: 80, targetPort: 8080 }] });
    const terminatingA = { pod: pods.a, ready: false, serving: true, terminating: true };
    await cluster.setEndpoints('term', [terminatingA, { pod: pods.b }]);
    await cluster.untilAnsweredBy('terminating: ready one preferred', () => cluster.tcp(node1, service.clusterIP, 80), ['b']);
    const withReady = tally(await Promise.all(Array.from({ length: 12 }, () => cluster.tcp(node1, service.clusterIP, 80))));
    expect(withReady.failures).toEqual([]);
    expect(new Set(withReady.pods)).toEqual(new Set(['b']));

    // b goes away: only the terminating-but-serving a is left, and it is used.
    await cluster.setEndpoints('term', [terminatingA]);
    await cluster.untilAnsweredBy('terminating: fallback to serving+terminating', () => cluster.tcp(node1, service.clusterIP, 80), ['a']);
    const fallback = tally(await Promise.all(Array.from({ length: 6 }, () => cluster.tcp(node1, service.clusterIP, 80))));
    expect(fallback.failures).toEqual([]);
    expect(new Set(fallback.pods)).toEqual(new Set(['a']));

    // Not serving any more: nothing is left, the connection is refused.
    await cluster.setEndpoints('term', [{ pod: pods.a, ready: false, serving: false, terminating: true }]);
    const refused = await cluster.until('terminating: not serving -> refused', () => cluster.tcp(node1, service.clusterIP, 80), (result) => !result.ok && result.error === 'refused');
    expect(refused.ok).toBe(false);
  });

  it('hairpin: a pod reaching itself through its Service is answered, masqueraded to the node IP', async () => {
    const service = await cluster.createService({ name: 'hairpin', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('hairpin', [{ pod: pods.a }]);
    const reply = await cluster.untilAnsweredBy('hairpin: answered', () => cluster.tcp(pods.a.netns, service.clusterIP, 80), ['a']);
    // Without SNAT the pod would answer itself directly and the connection would never complete.
    expect(reply.ok && reply.reply.peerIP).toBe(cluster.node('node1').ip);
  });

  it('headless and ExternalName Services get no rules, and pod IPs are not intercepted', async () => {
    const ns = cluster.namespace;
    await cluster.createService({ name: 'headless', clusterIP: 'None', ports: [{ name: 'web', port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('headless', [{ pod: pods.a }, { pod: pods.c }]);
    await cluster.createService({ name: 'extname', type: 'ExternalName', ports: [{ name: 'web', port: 80 }], spec: { externalName: 'example.com' } });
    // A barrier: a Service created after both is programmed by a sync that saw both.
    const barrier = await cluster.createService({ name: 'barrier', ports: [{ port: 80, targetPort: 8080 }] });
    await cluster.setEndpoints('barrier', [{ pod: pods.b }]);
    await cluster.untilAnsweredBy('headless/ExternalName: barrier programmed', () => cluster.tcp(node1, barrier.clusterIP, 80), ['b']);

    // The kernel's rules of the agent's mode (the nftables table names Services in chain names).
    const saved = mode === 'iptables' ? await cluster.iptablesSave('node1') : await cluster.nftTable('node1');
    expect(saved).toContain(`${ns}/barrier`);
    for (const name of ['headless', 'extname']) {
      expect(saved).not.toContain(`${ns}/${name}`);
      const chains = mode === 'iptables' ? servicePortChainNames(`${ns}/${name}:web`, 'TCP') : nftServicePortNames(ns, name, 'web', 'TCP');
      for (const chain of Object.values(chains)) expect(saved).not.toContain(chain);
    }
    // Traffic to a pod IP is plain routing: the right pod answers and sees the client's own IP.
    for (const pod of [pods.a, pods.c]) {
      const direct = await cluster.tcp(pods.client.netns, pod.ip, 8080);
      expect(direct.ok && direct.reply.pod).toBe(pod.name);
      expect(direct.ok && direct.reply.peerIP).toBe(pods.client.ip);
    }
  });
});
