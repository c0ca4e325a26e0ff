// Against upstream kube-proxy itself in nftables mode (the pinned release) on the real apiserver,
// on a dual-stack node (an IPv4 and an IPv6 InternalIP and podCIDR, --cluster-cidr v4,v6):
// 1. kube-proxy-ts `--proxy-mode nftables` on a fresh node writes the very `ip kube-proxy` and
//    `ip6 kube-proxy` tables kube-proxy writes for the same Services and Node (compared as `nft -j`
//    objects, handles aside), the ServiceCIDR drop rule included, with nodePortAddresses CIDRs
//    (nodeport-ips: the node's interface addresses inside them, a second address of each family);
// 2. takeover: kube-proxy stops with its table in place, a Service goes away meanwhile, and
//    kube-proxy-ts starts on that node: its table then equals the fresh node's, nothing stale.

import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { nftServicePortNames } from '../../src/nftables/vocabulary.js';
import { AgentProcess, ApiBridge } from '../harness/agent-process.js';
import {
  createEndpointSlice, createNamespace, createNode, createService, deleteEndpointSlice, deleteNamespace, deleteNode, deleteService,
  kubeClients, setLoadBalancerIngress, uniqueName, type EndpointInput, type KubeClients,
} from '../harness/kube.js';
import { addNodeAddress, createNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { normalisedNftTable, type NormalisedTable } from '../harness/nft-table.js';
import { KUBE_PROXY_HOST_NEUTRAL_FLAGS } from '../harness/upstream-kube-proxy.js';
import { kubeBinaries } from '../harness/versions.js';

const skipReason = kernelSkipReason();
const NODE_IP = '10.252.0.2';
const NODE_IP6 = 'fd00:252::2';
const CLUSTER_CIDRS = '10.244.0.0/16,fd00:10:244::/56';

/** Both proxies open NodePorts on the node's addresses in these (upstream reads them off the interfaces). */
const NODE_PORT_ADDRESSES = '10.252.0.0/24,fd00:252::/64';

/** A node namespace with the node's addresses on an interface of its own, and a second address of each family inside NODE_PORT_ADDRESSES. */
async function nodeNetns(label: string): Promise<Netns> {
  const netns = await createNetns(label);
  await addNodeAddress(netns, `${NODE_IP}/24`, `${NODE_IP6}/64`);
  for (const [flag, address] of [['-4', '10.252.0.9/24'], ['-6', 'fd00:252::9/64']] as const) {
    expect((await netns.exec('ip', [flag, 'addr', 'add', address, 'dev', 'node0', ...(flag === '-6' ? ['nodad'] : [])])).code).toBe(0);
  }
  return netns;
}

/** Both families' tables. */
async function tables(netns: Netns): Promise<{ readonly ip: NormalisedTable | string; readonly ip6: NormalisedTable | string }> {
  return { ip: await normalisedNftTable(netns, 'ip'), ip6: await normalisedNftTable(netns, 'ip6') };
}

async function until(label: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${label}: not reached in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe.skipIf(skipReason !== undefined)('kube-proxy --proxy-mode nftables and kube-proxy-ts side by side', () => {
  let clients: KubeClients;
  let upstreamNode: Netns;
  let freshNode: Netns;
  let bridge: ApiBridge | undefined;
  let kubeProxy: ChildProcess | undefined;
  const agents: AgentProcess[] = [];
  let namespace: string | undefined;
  const nodeName = uniqueName('nft-node');

  beforeAll(async () => {
    clients = kubeClients(inject('kubeconfigPath'));
    upstreamNode = await nodeNetns('nft-upstream');
    freshNode = await nodeNetns('nft-fresh');
    bridge = await ApiBridge.start(upstreamNode.name, inject('apiserverURL'));
    await createNode(clients.core, { name: nodeName, internalIP: [NODE_IP, NODE_IP6], podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] });
  });

  afterAll(async () => {
    kubeProxy?.kill('SIGKILL');
    for (const agent of agents) await agent.stop();
    await bridge?.stop();
    await upstreamNode?.delete();
    await freshNode?.delete();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    await deleteNode(clients.core, nodeName);
  });

  it('writes the table kube-proxy writes, and takes a node over from it', async () => {
    namespace = await createNamespace(clients.core);
    const ns = namespace;
    const http = [{ name: 'http', port: 80, targetPort: 8080 }];
    const slice = (service: string, endpoints: readonly EndpointInput[]): Promise<unknown> =>
      createEndpointSlice(clients.discovery, { namespace: ns, serviceName: service, name: `${service}-slice`, ports: [{ name: 'http', port: 8080 }], endpoints });
    await createService(clients.core, { namespace: ns, name: 'web', ports: http, spec: { sessionAffinity: 'ClientIP' } });
    await slice('web', [{ address: '10.244.1.10', nodeName }, { address: '10.244.2.10', nodeName: 'elsewhere' }]);
    await createService(clients.core, { namespace: ns, name: 'local', type: 'NodePort', ports: http, spec: { externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.50'] } });
    await slice('local', [{ address: '10.244.1.11', nodeName }, { address: '10.244.2.11', nodeName: 'elsewhere' }]);
    await createService(clients.core, { namespace: ns, name: 'lb', type: 'LoadBalancer', ports: http, spec: { loadBalancerSourceRanges: ['203.0.113.0/24', '10.252.0.0/24'] } });
    await setLoadBalancerIngress(clients.core, ns, 'lb', ['198.51.100.7']);
    await slice('lb', [{ address: '10.244.2.12', nodeName: 'elsewhere' }, { address: '10.244.3.12', nodeName: 'other', ready: false }]);
    await createService(clients.core, { namespace: ns, name: 'empty', type: 'NodePort', ports: http });
    await slice('empty', []);
    await createService(clients.core, {
      namespace: ns, name: 'multi', ports: [...http, { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }],
      spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } },
    });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'multi', name: 'multi-slice', ports: [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }],
      endpoints: [{ address: '10.244.1.13', nodeName }, { address: '10.244.2.13', nodeName: 'elsewhere' }],
    });
    await createService(clients.core, { namespace: ns, name: 'itp', ports: http, spec: { internalTrafficPolicy: 'Local' } });
    await slice('itp', [{ address: '10.244.1.14', nodeName }, { address: '10.244.2.14', nodeName: 'elsewhere' }]);
    // Dual-stack: each family of a RequireDualStack Service from its own slice; an IPv6-only
    // LoadBalancer with source ranges of both families and externalTrafficPolicy Local; an IPv6
    // Service without endpoints.
    const slice6 = (service: string, endpoints: readonly EndpointInput[]): Promise<unknown> =>
      createEndpointSlice(clients.discovery, { namespace: ns, serviceName: service, name: `${service}-slice6`, addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints });
    await createService(clients.core, {
      namespace: ns, name: 'dual', type: 'NodePort', ports: http,
      spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], sessionAffinity: 'ClientIP', externalIPs: ['192.0.2.52', 'fd00:40::52'] },
    });
    await slice('dual', [{ address: '10.244.1.20', nodeName }, { address: '10.244.2.20', nodeName: 'elsewhere' }]);
    await slice6('dual', [{ address: 'fd00:10:244:1::20', nodeName }, { address: 'fd00:10:244:2::20', nodeName: 'elsewhere' }]);
    await createService(clients.core, {
      namespace: ns, name: 'six', type: 'LoadBalancer', ports: http,
      spec: { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'], externalTrafficPolicy: 'Local', loadBalancerSourceRanges: ['fd00:50::/64', 'fd00:252::/64', '203.0.113.0/24'] },
    });
    await setLoadBalancerIngress(clients.core, ns, 'six', ['fd00:40::53']);
    await slice6('six', [{ address: 'fd00:10:244:1::21', nodeName }, { address: 'fd00:10:244:2::21', nodeName: 'elsewhere' }]);
    await createService(clients.core, { namespace: ns, name: 'empty6', type: 'NodePort', ports: http, spec: { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'] } });
    await slice6('empty6', []);
    // The chain each programmed Service must have before a table is complete.
    const marks = ['web', 'local', 'lb', 'multi', 'dual'].map((name) => nftServicePortNames(ns, name, 'http', 'TCP').cluster).concat([nftServicePortNames(ns, 'itp', 'http', 'TCP').local]);
    const marks6 = ['dual', 'six'].map((name) => nftServicePortNames(ns, name, 'http', 'TCP').cluster);
    const complete = async (netns: Netns): Promise<boolean> => {
      const listed = await netns.exec('nft', ['list', 'chains', 'ip']);
      const listed6 = await netns.exec('nft', ['list', 'chains', 'ip6']);
      return (
        marks.every((chain) => listed.stdout.includes(`chain ${chain} {`)) &&
        marks6.every((chain) => listed6.stdout.includes(`chain ${chain} {`)) &&
        (await netns.exec('nft', ['list', 'map', 'ip', 'kube-proxy', 'no-endpoint-services'])).stdout.includes(`${ns}/empty`) &&
        (await netns.exec('nft', ['list', 'map', 'ip6', 'kube-proxy', 'no-endpoint-services'])).stdout.includes(`${ns}/empty6`) &&
        // The ServiceCIDR drop rule is in (kube-proxy reads ServiceCIDRs beside its first sync).
        (await netns.exec('nft', ['list', 'chain', 'ip6', 'kube-proxy', 'cluster-ips-check'])).stdout.includes('drop')
      );
    };

    const binaries = await kubeBinaries();
    kubeProxy = spawn('ip', [
      'netns', 'exec', upstreamNode.name, binaries.kubeProxy, '--proxy-mode=nftables', `--kubeconfig=${inject('kubeconfigPath')}`, `--hostname-override=${nodeName}`,
      `--cluster-cidr=${CLUSTER_CIDRS}`, `--nodeport-addresses=${NODE_PORT_ADDRESSES}`, `--metrics-bind-address=${NODE_IP}:10249`, `--healthz-bind-address=${NODE_IP}:10256`, ...KUBE_PROXY_HOST_NEUTRAL_FLAGS, '--v=2',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    kubeProxy.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const exited = new Promise<void>((resolve) => kubeProxy?.on('exit', () => resolve()));
    await until('kube-proxy programs every Service', () => complete(upstreamNode)).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${log.trimEnd().split('\n').slice(-30).join('\n')}`);
    });
    kubeProxy.kill('SIGTERM');
    await exited;
    kubeProxy = undefined;
    const upstream = await tables(upstreamNode);

    // 1. A fresh node of the same name.
    const args = { nodeName, kubeconfigPath: inject('kubeconfigPath'), clusterCIDR: CLUSTER_CIDRS, extraArgs: ['--proxy-mode', 'nftables', '--nodeport-addresses', NODE_PORT_ADDRESSES] };
    agents.push(await AgentProcess.start({ ...args, netns: freshNode.name }, inject('apiserverURL')));
    await until('kube-proxy-ts programs every Service', () => complete(freshNode));
    expect(Object.keys(upstream.ip).length).toBeGreaterThan(60);
    expect(Object.keys(upstream.ip6).length).toBeGreaterThan(40);
    // The apiserver's default ServiceCIDR (its --service-cluster-ip-range pair) in each family's drop rule.
    expect(JSON.stringify(upstream.ip)).toContain('Drop traffic to unallocated ClusterIPs');
    expect(JSON.stringify(upstream.ip6)).toContain('Drop traffic to unallocated ClusterIPs');
    // nodeport-ips: every address of the node inside nodePortAddresses, the second ones too.
    expect(JSON.stringify(upstream.ip)).toContain('10.252.0.9');
    expect(JSON.stringify(upstream.ip6)).toContain('fd00:252::9');
    const fresh = await tables(freshNode);
    expect(fresh.ip).toEqual(upstream.ip);
    expect(fresh.ip6).toEqual(upstream.ip6);

    // 2. While no proxy runs on kube-proxy's node, `web` goes away; the fresh node follows.
    await deleteService(clients.core, ns, 'web');
    await deleteEndpointSlice(clients.discovery, ns, 'web-slice');
    const web = nftServicePortNames(ns, 'web', 'http', 'TCP').cluster;
    const gone = async (netns: Netns): Promise<boolean> => !(await netns.exec('nft', ['list', 'chains', 'ip'])).stdout.includes(web);
    // Stale chains go a periodic sync (2 s here) after they were flushed.
    await until('the fresh node drops web', () => gone(freshNode), 30_000);
    // The agent brings its own bridge to the apiserver into the namespace (same port).
    await bridge?.stop();
    bridge = undefined;
    agents.push(await AgentProcess.start({ ...args, netns: upstreamNode.name }, inject('apiserverURL')));
    await until('the taken-over node drops web', () => gone(upstreamNode), 30_000);
    expect(await tables(upstreamNode)).toEqual(await tables(freshNode));
  });
});
