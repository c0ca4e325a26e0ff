// Session affinity (xt_recent) and endpoint churn under live traffic, with real packets through
// the agent on node1; in both proxy modes (nftables: affinity sets).

import { beforeAll, describe, expect, inject, it } from 'vitest';
import { E2ECluster, reportAndDestroy, sequential, tally } from '../harness/e2e-cluster.js';
import { kernelSkipReason } from '../harness/netns.js';
import type { PodHandle, ProbeResult } from '../harness/topology.js';

const skipReason = kernelSkipReason();

describe.skipIf(skipReason !== undefined).each(['iptables', 'nftables'] as const)('session affinity and endpoint churn end to end (%s mode)', (mode) => {
  let cluster: E2ECluster;
  let pods: { a: PodHandle; b: PodHandle; c: PodHandle; client: PodHandle; other: PodHandle };

  beforeAll(async () => {
    cluster = await E2ECluster.start({
      kubeconfigPath: inject('kubeconfigPath'),
      apiserverURL: inject('apiserverURL'),
      nodes: ['node1', 'node2'],
      agentsOn: ['node1'],
      name: `e2e-affinity-${mode}`,
      agentArgs: ['--proxy-mode', mode],
    });
    pods = {
      a: await cluster.addPod('node1', 'a', { tcp: [8080] }),
      b: await cluster.addPod('node1', 'b', { tcp: [8080] }),
      c: await cluster.addPod('node2', 'c', { tcp: [8080] }),
      client: await cluster.addPod('node1', 'client', {}),
      other: await cluster.addPod('node1', 'other-client', {}),
    };
  });

  reportAndDestroy(() => cluster, `affinity-and-churn.test.ts (${mode})`);

  it('sessionAffinity ClientIP: each client keeps its endpoint over many connections', async () => {
    const service = await cluster.createService({ name: 'sticky', ports: [{ port: 80, targetPort: 8080 }], spec: { sessionAffinity: 'ClientIP' } });
    await cluster.setEndpoints('sticky', [{ pod: pods.a }, { pod: pods.b }, { pod: pods.c }]);
    for (const client of [pods.client, pods.other]) {
      await cluster.untilAnsweredBy('affinity: rules in', () => cluster.tcp(client.netns, service.clusterIP, 80), ['a', 'b', 'c']);
      const results = await cluster.timed('affinity: 20 connections', () => sequential(20, () => cluster.tcp(client.netns, service.clusterIP, 80)));
      const { pods: answered, failures } = tally(results);
      expect(failures).toEqual([]);
      expect(answered).toHaveLength(20);
      expect(new Set(answered).size).toBe(1);
    }
  });

  it('sessionAffinity ClientIP with a short timeout: pinned while busy, free to move once it expires', async () => {
    const timeoutSeconds = 3;
    const service = await cluster.createService({
      name: 'sticky-short',
      ports: [{ port: 80, targetPort: 8080 }],
      spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds } } },
    });
    await cluster.setEndpoints('sticky-short', [{ pod: pods.a }, { pod: pods.b }, { pod: pods.c }]);
    const probe = (): Promise<ProbeResult> => cluster.tcp(pods.client.netns, service.clusterIP, 80);
    const first = await cluster.untilAnsweredBy('affinity timeout: rules in', probe, ['a', 'b', 'c']);
    if (!first.ok) throw new Error('unreachable');
    // Back-to-back connections refresh the affinity entry: the same endpoint every time.
    const busy = tally(await sequential(10, probe));
    expect(busy.failures).toEqual([]);
    expect(new Set(busy.pods)).toEqual(new Set([first.reply.pod]));

    // Idle for longer than the timeout between connections: the choice is random again, so
    // within a few rounds (each stays put with probability 1/3) another endpoint answers.
    const moved = await cluster.until(
      'affinity timeout: moved after expiry',
      async () => {
        await new Promise((resolve) => setTimeout(resolve, timeoutSeconds * 1000 + 500));
        return probe();
      },
      (result) => result.ok && result.reply.pod !== first.reply.pod,
      60_000,
    );
    expect(moved.ok && moved.reply.pod).not.toBe(first.reply.pod);
  });

  it('scaling endpoints up and down under traffic fails no request while one endpoint stays ready', async () => {
    const service = await cluster.createService({ name: 'churn', ports: [{ port: 80, targetPort: 8080 }] });
    const stable = await cluster.addPod('node1', 'stable', { tcp: [8080] });
    await cluster.setEndpoints('churn', [{ pod: stable }]);
    await cluster.untilAnsweredBy('churn: stable endpoint in', () => cluster.tcp(pods.client.netns, service.clusterIP, 80), ['stable']);

    // Two clients (a pod and the node itself) connect in a loop for the whole test.
    const results: ProbeResult[] = [];
    let stop = false;
    const loop = async (netns: string): Promise<void> => {
      while (!stop) results.push(await cluster.tcp(netns, service.clusterIP, 80, 3000));
    };
    const loops = [loop(pods.client.netns), loop(cluster.node('node1').netns)];
    const seenSince = (from: number, pod: string): boolean => results.slice(from).some((result) => result.ok && result.reply.pod === pod);
    const churned: PodHandle[] = [];
    try {
      await cluster.timed('churn: 3 rounds of scale up 1->4 and down 4->1', async () => {
        for (let round = 0; round < 3; round += 1) {
          // Scale up: three new pods start, then join the Service.
          const added: PodHandle[] = [];
          for (const [index, node] of (['node1', 'node2', 'node1'] as const).entries()) {
            added.push(await cluster.addPod(node, `r${round}-${index}`, { tcp: [8080] }));
          }
          churned.push(...added);
          const mark = results.length;
          await cluster.setEndpoints('churn', [{ pod: stable }, ...added.map((pod) => ({ pod }))]);
          await cluster.until('churn: new endpoints answer', async () => added.every((pod) => seenSince(mark, pod.name)), (done) => done, 30_000);
          // Scale down one at a time: each leaves the Service, and its pod is deleted once no
          // node's rules lead to it and no connection to it is still open.
          for (let remaining = added.length - 1; remaining >= 0; remaining -= 1) {
            const leaving = added[remaining];
            if (leaving === undefined) continue;
            await cluster.setEndpoints('churn', [{ pod: stable }, ...added.slice(0, remaining).map((pod) => ({ pod }))]);
            await cluster.drained('churn: endpoint drained after scale down', leaving);
            await cluster.removePod(leaving);
            churned.splice(churned.indexOf(leaving), 1);
          }
        }
      });
    } finally {
      stop = true;
      await Promise.all(loops);
      for (const pod of churned) await cluster.removePod(pod);
    }
    const { pods: answered, failures } = tally(results);
    process.stdout.write(`churn: ${results.length} connections, ${failures.length} failed\n`);
    expect(failures).toEqual([]);
    expect(results.length).toBeGreaterThan(50);
    expect(new Set(answered)).toEqual(new Set(['stable', ...[0, 1, 2].flatMap((round) => [0, 1, 2].map((index) => `r${round}-${index}`))]));
  });
});
