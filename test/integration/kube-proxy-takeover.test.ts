// Against upstream kube-proxy itself (the pinned release, iptables mode) on the real apiserver:
// 1. kube-proxy-ts on a fresh node writes the very nat and filter tables kube-proxy writes for the
//    same Services (same chains, same rules; the order of dispatch rules aside), both with their
//    defaults, localhost NodePorts included;
// 2. replacing a running kube-proxy: kube-proxy is stopped with its rules left in place, a Service
//    goes away meanwhile, and kube-proxy-ts starts on that node. Its first sync takes the node over:
//    the tables then equal those of a kube-proxy-ts node that saw the change, nothing stale, nothing twice.
// The node and the apiserver are dual-stack, so both proxies run one proxier per family: the
// ip6tables tables are compared as the iptables ones are, with dual-stack and IPv6-only Services.

import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { legacyBinaries, nftBinaries } from '../../src/netfilter/exec.js';
import { parseSave, rulesByChain, serviceChainNames, startAgentInProcess, type InProcessAgent, type KernelTable } from '../harness/agent-in-process.js';
import { ApiBridge } from '../harness/agent-process.js';
import {
  createEndpointSlice,
  createNamespace,
  createNode,
  createService,
  deleteEndpointSlice,
  deleteNamespace,
  deleteNode,
  deleteService,
  kubeClients,
  setLoadBalancerIngress,
  uniqueName,
  type EndpointInput,
  type KubeClients,
} from '../harness/kube.js';
import { addNodeAddress, createNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { KUBE_PROXY_HOST_NEUTRAL_FLAGS } from '../harness/upstream-kube-proxy.js';
import { kubeBinaries } from '../harness/versions.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/kube-proxy-takeover.test.ts: ${skipReason}`);

const NODE_IP = '10.252.0.2';
const NODE_IP6 = 'fd00:252::2';
const CLUSTER_CIDRS = '10.244.0.0/16,fd00:10:244::/56';
const CLUSTER_CIDR = '10.244.0.0/16';
const FAMILIES = ['IPv4', 'IPv6'] as const;
const ZONE = 'zone-a';
const TABLES = ['nat', 'filter'] as const;
// Dispatch chains hold one rule per service port in an order that is not part of the contract.
const DISPATCH = new Set(['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-EXTERNAL-SERVICES', 'PREROUTING', 'OUTPUT', 'POSTROUTING', 'INPUT', 'FORWARD']);

const byChain = (table: KernelTable): Record<string, string[]> => rulesByChain(table, DISPATCH);

// The same flags for both proxies: the defaults, then another way of telling pod traffic and masqueradeAll.
const SETTINGS: readonly (readonly [string, readonly string[]])[] = [
  ['defaults', []],
  ['detectLocalMode InterfaceNamePrefix, masqueradeAll', ['--detect-local-mode=InterfaceNamePrefix', '--pod-interface-name-prefix=veth', '--masquerade-all']],
  ['detectLocalMode NodeCIDR, NodePorts on the primary IP', ['--detect-local-mode=NodeCIDR', '--nodeport-addresses=primary']],
  ['detectLocalMode BridgeInterface, NodePorts on a CIDR', ['--detect-local-mode=BridgeInterface', '--pod-bridge-interface=cni0', '--nodeport-addresses=10.252.0.0/24']],
];
const POD_CIDR = '10.244.1.0/24';
const POD_CIDR6 = 'fd00:10:244:1::/64';

describe.skipIf(skipReason !== undefined).each(SETTINGS)('kube-proxy and kube-proxy-ts side by side (%s)', (_settings, flags) => {
  let clients: KubeClients;
  let netns: Netns;
  let bridge: ApiBridge | undefined;
  let kubeProxy: ChildProcess | undefined;
  let agent: InProcessAgent | undefined;
  let fresh: InProcessAgent | undefined;
  let namespace: string | undefined;
  const nodeName = uniqueName('takeover-node');

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    netns = await createNetns('takeover');
    await addNodeAddress(netns, `${NODE_IP}/24`, `${NODE_IP6}/64`);
    // kube-proxy reaches the shared apiserver at its own URL from inside the node namespace.
    bridge = await ApiBridge.start(netns.name, inject('apiserverURL'));
    await createNode(clients.core, { name: nodeName, internalIP: [NODE_IP, NODE_IP6], zone: ZONE, podCIDRs: [POD_CIDR, POD_CIDR6] });
  });

  afterAll(async () => {
    kubeProxy?.kill('SIGKILL');
    await agent?.stop();
    await fresh?.stop();
    await bridge?.stop();
    await netns?.delete();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    await deleteNode(clients.core, nodeName);
  });

  it('writes the tables kube-proxy writes, and takes a node over from it', async () => {
    namespace = await createNamespace(clients.core);
    const ns = namespace;
    const slice = async (service: string, endpoints: readonly EndpointInput[]): Promise<void> => {
      await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: service, name: `${service}-slice`, ports: [{ name: 'http', port: 8080 }], endpoints });
    };
    const http = [{ name: 'http', port: 80, targetPort: 8080 }];
    await createService(clients.core, { namespace: ns, name: 'web', ports: http, spec: { sessionAffinity: 'ClientIP' } });
    await slice('web', [{ address: '10.244.1.10', nodeName }, { address: '10.244.2.10', nodeName: 'elsewhere' }]);
    await createService(clients.core, { namespace: ns, name: 'local', type: 'NodePort', ports: http, spec: { externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.50'] } });
    await slice('local', [{ address: '10.244.1.11', nodeName }, { address: '10.244.2.11', nodeName: 'elsewhere' }]);
    await createService(clients.core, {
      namespace: ns, name: 'lb', type: 'LoadBalancer', ports: http, spec: { loadBalancerSourceRanges: ['203.0.113.0/24'] },
    });
    await setLoadBalancerIngress(clients.core, ns, 'lb', ['198.51.100.7']);
    await slice('lb', [{ address: '10.244.2.12', nodeName: 'elsewhere' }, { address: '10.244.3.12', nodeName: 'other', ready: false }]);
    await createService(clients.core, { namespace: ns, name: 'empty', ports: http });
    await slice('empty', []);
    // Two protocols on one Service; a timeout on the affinity.
    await createService(clients.core, {
      namespace: ns, name: 'multi', ports: [...http, { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' }],
      spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } },
    });
    await createEndpointSlice(clients.discovery, {
      namespace: ns, serviceName: 'multi', name: 'multi-slice',
      ports: [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }],
      endpoints: [{ address: '10.244.1.13', nodeName }, { address: '10.244.2.13', nodeName: 'elsewhere' }, { address: '10.244.3.13', nodeName: 'other' }],
    });
    // internalTrafficPolicy Local; only terminating (still serving) endpoints; topology hints for this zone.
    await createService(clients.core, { namespace: ns, name: 'itp', ports: http, spec: { internalTrafficPolicy: 'Local' } });
    await slice('itp', [{ address: '10.244.1.14', nodeName }, { address: '10.244.2.14', nodeName: 'elsewhere' }]);
    await createService(clients.core, { namespace: ns, name: 'draining', ports: http });
    await slice('draining', [
      { address: '10.244.1.15', nodeName, ready: false, serving: true, terminating: true },
      { address: '10.244.2.15', nodeName: 'elsewhere', ready: false, serving: false, terminating: true },
    ]);
    await createService(clients.core, { namespace: ns, name: 'zoned', ports: http, spec: { trafficDistribution: 'PreferClose' } });
    await slice('zoned', [
      { address: '10.244.1.16', nodeName, zone: ZONE, forZones: [ZONE] },
      { address: '10.244.2.16', nodeName: 'elsewhere', zone: 'zone-b', forZones: ['zone-b'] },
    ]);
    // A load balancer without NodePorts, external IPs with the Cluster policy.
    await createService(clients.core, {
      namespace: ns, name: 'nonp', type: 'LoadBalancer', ports: http, spec: { allocateLoadBalancerNodePorts: false, externalIPs: ['192.0.2.51'] },
    });
    await setLoadBalancerIngress(clients.core, ns, 'nonp', ['198.51.100.8']);
    await slice('nonp', [{ address: '10.244.2.17', nodeName: 'elsewhere' }]);
    // What neither proxy programs: headless, ExternalName, another proxy's Service.
    await createService(clients.core, { namespace: ns, name: 'headless', ports: http, clusterIP: 'None' });
    await slice('headless', [{ address: '10.244.1.18', nodeName }]);
    await createService(clients.core, { namespace: ns, name: 'alias', type: 'ExternalName', ports: http, spec: { externalName: 'example.com' } });
    await createService(clients.core, { namespace: ns, name: 'theirs', ports: http, labels: { 'service.kubernetes.io/service-proxy-name': 'other-proxy' } });
    await slice('theirs', [{ address: '10.244.1.19', nodeName }]);
    // Dual-stack: each family of a RequireDualStack Service from its own slice; an IPv6-only
    // LoadBalancer with source ranges and externalTrafficPolicy Local; an IPv6 Service without endpoints.
    const slice6 = async (service: string, endpoints: readonly EndpointInput[]): Promise<void> => {
      await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: service, name: `${service}-slice6`, addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints });
    };
    await createService(clients.core, {
      namespace: ns, name: 'dual', type: 'NodePort', ports: http,
      spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'], sessionAffinity: 'ClientIP', externalIPs: ['192.0.2.52', 'fd00:40::52'] },
    });
    await slice('dual', [{ address: '10.244.1.20', nodeName }, { address: '10.244.2.20', nodeName: 'elsewhere' }]);
    await slice6('dual', [{ address: 'fd00:10:244:1::20', nodeName }, { address: 'fd00:10:244:2::20', nodeName: 'elsewhere' }]);
    await createService(clients.core, {
      namespace: ns, name: 'six', type: 'LoadBalancer', ports: http,
      spec: { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'], externalTrafficPolicy: 'Local', loadBalancerSourceRanges: ['fd00:50::/64', '203.0.113.0/24'] },
    });
    await setLoadBalancerIngress(clients.core, ns, 'six', ['fd00:40::53']);
    await slice6('six', [{ address: 'fd00:10:244:1::21', nodeName }, { address: 'fd00:10:244:2::21', nodeName: 'elsewhere' }]);
    await createService(clients.core, { namespace: ns, name: 'empty6', ports: http, spec: { ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'] } });
    await slice6('empty6', []);
    const chains = ['web', 'local', 'lb', 'multi', 'itp', 'draining', 'zoned', 'nonp', 'dual'].map((name) => serviceChainNames(ns, name, 'http'));
    const chains6 = ['dual', 'six'].map((name) => serviceChainNames(ns, name, 'http'));

    // Upstream kube-proxy, as the node's proxy until now, with its defaults (localhost NodePorts on).
    const binaries = await kubeBinaries();
    kubeProxy = spawn(
      'ip',
      [
        'netns', 'exec', netns.name, binaries.kubeProxy,
        '--proxy-mode=iptables',
        `--kubeconfig=${inject('kubeconfigPath')}`,
        `--hostname-override=${nodeName}`,
        `--cluster-cidr=${CLUSTER_CIDRS}`,
        `--metrics-bind-address=${NODE_IP}:10249`,
        `--healthz-bind-address=${NODE_IP}:10256`,
        ...KUBE_PROXY_HOST_NEUTRAL_FLAGS,
        '--v=2',
        ...flags,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let kubeProxyLog = '';
    const logTail = (): string => kubeProxyLog.trimEnd().split('\n').slice(-30).join('\n');
    kubeProxy.stderr?.on('data', (chunk: Buffer) => {
      kubeProxyLog += chunk.toString();
    });
    const exited = new Promise<void>((resolve) => kubeProxy?.on('exit', () => resolve()));

    // Which backend it used, and the tables once every chain of ours is in.
    const save = async (backend: 'nft' | 'legacy', table: string, family: 'IPv4' | 'IPv6' = 'IPv4'): Promise<string> =>
      (await netns.exec(`${family === 'IPv4' ? 'iptables' : 'ip6tables'}-${backend}-save`, ['-t', table])).stdout;
    const deadline = Date.now() + 60_000;
    let backend: 'nft' | 'legacy' | undefined;
    for (;;) {
      for (const candidate of ['nft', 'legacy'] as const) {
        const nat = parseSave(await save(candidate, 'nat'));
        const nat6 = parseSave(await save(candidate, 'nat', 'IPv6'));
        if (
          chains.every((names) => nat.chains.has(names.cluster) || nat.chains.has(names.local)) && nat.chains.has('KUBE-PROXY-CANARY') &&
          chains6.every((names) => nat6.chains.has(names.cluster) || nat6.chains.has(names.local)) && nat6.chains.has('KUBE-PROXY-CANARY')
        ) backend = candidate;
      }
      if (backend !== undefined) break;
      if (Date.now() > deadline) throw new Error(`kube-proxy did not program the Services in 60 s:\n${logTail()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    kubeProxy.kill('SIGTERM');
    await exited;
    kubeProxy = undefined;
    const upstream = Object.fromEntries(await Promise.all(TABLES.map(async (table) => [table, byChain(parseSave(await save(backend ?? 'nft', table)))] as const)));
    const upstream6 = Object.fromEntries(await Promise.all(TABLES.map(async (table) => [table, byChain(parseSave(await save(backend ?? 'nft', table, 'IPv6')))] as const)));
    // IPv6 as upstream lays it out: no NodePorts on ::1, no localnet guard; each family's own addresses.
    const upstream6Nat = upstream6['nat'] ?? {};
    // (NodePorts on every IPv6 address unless `primary` names the node's: an IPv4-only CIDR list leaves IPv6 all.)
    const allIPv6 = !flags.includes('--nodeport-addresses=primary');
    expect((upstream6Nat['KUBE-SERVICES'] ?? []).some((rule) => rule.includes('! -d ::1/128') && rule.endsWith('-j KUBE-NODEPORTS'))).toBe(allIPv6);
    expect(Object.values(upstream6Nat).flat().join('\n')).not.toMatch(/\b10\.244\./);
    expect(Object.values(upstream6Nat).flat().join('\n')).toContain('--to-destination [fd00:10:244:1::20]:8080');
    // The shapes are there as kube-proxy renders them: this is what the comparison is about.
    const upstreamNat = upstream['nat'] ?? {};
    const [, local, lb, , itp, , zoned] = chains;
    expect(Object.keys(upstreamNat)).toEqual(
      expect.arrayContaining([local?.external, lb?.firewall, itp?.local, serviceChainNames(ns, 'multi', 'dns', 'UDP').cluster]),
    );
    // Hints for this node's zone: one endpoint of two.
    expect((upstreamNat[zoned?.cluster ?? ''] ?? []).filter((rule) => rule.includes('-j KUBE-SEP-'))).toHaveLength(1);
    const everyRule = Object.values(upstreamNat).flat().join('\n');
    for (const ignored of ['headless', 'alias', 'theirs']) expect(everyRule).not.toContain(`${ns}/${ignored}:`);
    // The settings took effect upstream: pod traffic by interface, every cluster IP connection masqueraded.
    const expectedMatch = flags.includes('--masquerade-all')
      ? '-i veth+'
      : flags.includes('--detect-local-mode=NodeCIDR')
        ? `! -s ${POD_CIDR}`
        : flags.includes('--detect-local-mode=BridgeInterface')
          ? '! -i cni0'
          : `! -s ${CLUSTER_CIDR}`;
    expect(everyRule).toContain(expectedMatch);
    if (flags.includes('--masquerade-all')) expect(everyRule).not.toContain(`! -s ${CLUSTER_CIDR}`);
    // Localhost NodePorts (kube-proxy's default) where nodePortAddresses leaves 127.0.0.1 in: NodePorts
    // on every local address, the 127.0.0.0/8 drop in KUBE-FIREWALL; elsewhere kube-proxy turns them off.
    const localhost = !flags.some((flag) => flag.startsWith('--nodeport-addresses'));
    const upstreamFilter = upstream['filter'] ?? {};
    expect((upstreamFilter['KUBE-FIREWALL'] ?? []).some((rule) => rule.includes('127.0.0.0/8') && rule.includes('"block incoming localnet connections"')), 'KUBE-FIREWALL').toBe(localhost);
    expect((upstreamNat['KUBE-SERVICES'] ?? []).some((rule) => rule.includes('! -d 127.0.0.0/8')), 'KUBE-SERVICES').toBe(false);
    if (localhost) expect(upstreamNat['KUBE-SERVICES'] ?? []).toContainEqual(expect.stringContaining('-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'));

    const binariesUsed = backend === 'legacy' ? legacyBinaries : nftBinaries;
    const tables = async (on: InProcessAgent, family: 'IPv4' | 'IPv6' = 'IPv4'): Promise<Record<string, Record<string, string[]>>> =>
      Object.fromEntries(await Promise.all(TABLES.map(async (table) => [table, byChain(await on.kernel(table, family))] as const)));

    // 1. kube-proxy-ts on a fresh node of the same name and backend.
    const proxyOptions = { kubeconfigPath: inject('kubeconfigPath'), nodeName, clusterCIDR: CLUSTER_CIDRS, binaries: binariesUsed, extraArgs: flags, families: FAMILIES };
    fresh = await startAgentInProcess(proxyOptions);
    const freshTables = await tables(fresh);
    for (const table of TABLES) expect(freshTables[table], `${table} of a fresh kube-proxy-ts node vs kube-proxy; kube-proxy's log ends:\n${logTail()}`).toEqual(upstream[table]);
    const freshTables6 = await tables(fresh, 'IPv6');
    for (const table of TABLES) expect(freshTables6[table], `IPv6 ${table} of a fresh kube-proxy-ts node vs kube-proxy`).toEqual(upstream6[table]);

    // 2. While no proxy runs on kube-proxy's node, `web` goes away; the fresh node follows.
    await deleteService(clients.core, ns, 'web');
    await deleteEndpointSlice(clients.discovery, ns, 'web-slice');
    const webChain = chains[0]?.cluster ?? '';
    await fresh.waitFor('the fresh node drops web', async () => !(await fresh!.kernel('nat')).chains.has(webChain));
    await fresh.agent.idle();
    const expected = await tables(fresh);
    const expected6 = await tables(fresh, 'IPv6');

    agent = await startAgentInProcess({ ...proxyOptions, netns });
    const first = agent.reports[0];
    expect(first).toMatchObject({ kind: 'full', fullReason: 'first', result: 'applied' });
    const takenOver = await tables(agent);
    expect(Object.keys(takenOver['nat'] ?? {})).not.toContain(webChain);
    for (const table of TABLES) expect(takenOver[table], `${table} after taking over from kube-proxy`).toEqual(expected[table]);
    const takenOver6 = await tables(agent, 'IPv6');
    for (const table of TABLES) expect(takenOver6[table], `IPv6 ${table} after taking over from kube-proxy`).toEqual(expected6[table]);
  });
});
