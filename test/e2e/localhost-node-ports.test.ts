// NodePorts on 127.0.0.1 (iptables.localhostNodePorts, on by default as in kube-proxy) end to end:
// an agent with the defaults on one node sets net.ipv4.conf.all.route_localnet=1 in its node's
// namespace and answers 127.0.0.1:<nodePort> from the node with the Service's pods, masqueraded to
// the node's address; an agent with the setting off on the other node leaves the sysctl alone and
// nothing answers there on 127.0.0.1. Last, an agent that cannot set the sysctl (as in a container
// that is not privileged, with no init container) keeps serving with them off and says why.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentProcess, metricSum } from '../harness/agent-process.js';
import { startAgentInProcess, type InProcessAgent } from '../harness/agent-in-process.js';
import { E2ECluster, reportAndDestroy, tally } from '../harness/e2e-cluster.js';
import { exec } from '../harness/exec.js';
import { kernelSkipReason } from '../harness/netns.js';
import { CLUSTER_CIDR, type PodHandle, type ProbeResult } from '../harness/topology.js';

const skipReason = kernelSkipReason();

async function routeLocalnet(netns: string): Promise<string> {
  return (await exec('ip', ['netns', 'exec', netns, 'cat', '/proc/sys/net/ipv4/conf/all/route_localnet'])).stdout.trim();
}

describe.skipIf(skipReason !== undefined)('NodePorts on 127.0.0.1 end to end', () => {
  let cluster: E2ECluster;
  let offAgent: AgentProcess | undefined;
  let inProcess: InProcessAgent | undefined;
  let pods: { a: PodHandle; b: PodHandle };
  let nodePort: number;

  beforeAll(async () => {
    cluster = await E2ECluster.start({
      kubeconfigPath: inject('kubeconfigPath'),
      apiserverURL: inject('apiserverURL'),
      nodes: ['on', 'off'],
      agentsOn: ['on'],
      name: 'e2e-localhost',
    });
    const off = cluster.node('off');
    offAgent = await AgentProcess.start(
      { netns: off.netns, nodeName: off.name, kubeconfigPath: inject('kubeconfigPath'), clusterCIDR: CLUSTER_CIDR, extraArgs: ['--iptables-localhost-nodeports=false'] },
      inject('apiserverURL'),
    );
    pods = { a: await cluster.addPod('on', 'a', { tcp: [8080] }), b: await cluster.addPod('off', 'b', { tcp: [8080] }) };
    const service = await cluster.createService({ name: 'np', type: 'NodePort', ports: [{ port: 80, targetPort: 8080 }] });
    nodePort = service.nodePorts.get('') ?? 0;
    await cluster.setEndpoints('np', [{ pod: pods.a }, { pod: pods.b }]);
  });

  reportAndDestroy(() => cluster, 'localhost-node-ports.test.ts');
  // Registered after reportAndDestroy, so it runs before the cluster is torn down.
  afterAll(async () => {
    await offAgent?.stop();
    await inProcess?.stop();
  });

  it('with the defaults the agent sets route_localnet, and 127.0.0.1:<nodePort> on the node reaches every endpoint, masqueraded to the node IP', async () => {
    const on = cluster.node('on');
    const agent = cluster.agent('on');
    // A fresh namespace starts at 0: the agent set it (it runs as root here, as kube-proxy does).
    expect(await routeLocalnet(on.netns)).toBe('1');
    expect(agent.log()).toContain('localhost NodePorts on: set net.ipv4.conf.all.route_localnet=1');

    const probe = (): Promise<ProbeResult> => cluster.tcp(on.netns, '127.0.0.1', nodePort);
    await cluster.untilAnsweredBy('127.0.0.1:<nodePort> on node on: rules in', probe, ['a', 'b']);
    const { results, answered } = await cluster.sampleUntilAll(probe, ['a', 'b']);
    const { failures, peers } = tally(results);
    expect(failures).toEqual([]);
    expect(answered).toEqual(new Set(['a', 'b']));
    // As kube-proxy: traffic from 127.0.0.1 is masqueraded (a pod could never answer 127.0.0.1),
    // to the node address on the way to the pod, on this node and across to the other one.
    expect(peers).toEqual(new Set([on.ip]));

    const metrics = await agent.metrics();
    expect(metrics).toContain('kube_proxy_ts_localhost_nodeports{reason="enabled"} 1');
    // kube-proxy's nfacct counter on the 127.0.0.0/8 NodePort rules saw those connections.
    expect(metricSum(metrics, 'kubeproxy_iptables_localhost_nodeports_accepted_packets_total')).toBeGreaterThanOrEqual(results.length);
  });

  it('with --iptables-localhost-nodeports=false route_localnet is left alone and nothing answers on 127.0.0.1; the node IP does', async () => {
    const off = cluster.node('off');
    const agent = offAgent;
    if (agent === undefined) throw new Error('setup');
    await cluster.untilAnsweredBy('node IP:<nodePort> on node off: rules in', () => cluster.tcp(off.netns, off.ip, nodePort), ['a', 'b']);
    const result = await cluster.tcp(off.netns, '127.0.0.1', nodePort, 1500);
    expect(result.ok ? `answered by ${result.reply.pod}` : result.error, JSON.stringify(result)).toBe('refused');
    expect(await routeLocalnet(off.netns)).toBe('0');
    expect(agent.log()).toContain('localhost NodePorts off: iptables.localhostNodePorts is false');
    expect(await agent.metrics()).toContain('kube_proxy_ts_localhost_nodeports{reason="config"} 0');
  });

  it('an agent that cannot set route_localnet serves on without localhost NodePorts, and says why in its log and metrics', async () => {
    // What an agent container that is not privileged sees when no init container set the sysctl.
    const readOnlyProcSys = {
      get: async (): Promise<number> => 0,
      set: async (name: string): Promise<void> => {
        throw new Error(`EROFS: read-only file system, open '/proc/sys/${name}'`);
      },
    };
    inProcess = await startAgentInProcess({ kubeconfigPath: inject('kubeconfigPath'), clusterCIDR: CLUSTER_CIDR, sysctl: readOnlyProcSys });
    expect(inProcess.status().ready).toBe(true);
    expect(await inProcess.metric('kube_proxy_ts_localhost_nodeports', { reason: 'route_localnet' })).toBe(0);
    const log = inProcess.logTail(200);
    expect(log).toMatch(/"level":"error".*"component":"localhost-nodeports"/);
    expect(log).toContain('localhost NodePorts off: net.ipv4.conf.all.route_localnet is 0 and cannot be set to 1 (EROFS');
    // The rules of a node with them off, as kube-proxy's with --iptables-localhost-nodeports=false.
    const trailer = (await inProcess.save('nat')).split('\n').filter((line) => line.startsWith('-A KUBE-SERVICES') && line.endsWith('-j KUBE-NODEPORTS'));
    expect(trailer).toHaveLength(1);
    expect(trailer[0]).toMatch(/! -d 127\.0\.0\.0\/8 .*--dst-type LOCAL/);
    expect(await inProcess.save('filter')).not.toContain('block incoming localnet connections');
  });
});
