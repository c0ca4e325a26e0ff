// The agent's HTTP surfaces against a real apiserver: /metrics with kube-proxy's names (sync
// duration, last sync timestamp, network programming latency from the EndpointSlice trigger
// time) and linted by promtool, /healthz that needs this node's Node object, and healthCheckNodePort servers for
// externalTrafficPolicy Local Services that report this node's local endpoints.

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kernelSkipReason } from '../harness/netns.js';
import {
  endpointChainName,
  httpGet,
  matching,
  parsePrometheusText,
  serviceChainNames,
  startAgentInProcess,
  type InProcessAgent,
  type MetricSample,
} from '../harness/agent-in-process.js';
import {
  createEndpointSlice,
  createNamespace,
  createNode,
  createService,
  deleteNamespace,
  deleteNode,
  deleteService,
  kubeClients,
  setEndpoints,
  type KubeClients,
} from '../harness/kube.js';
import { ACCEPTED_METRIC_LINT, checkMetrics } from '../support/promtool.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-metrics-health.test.ts: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('agent metrics, /healthz and healthCheckNodePorts', () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  let namespace: string | undefined;

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    // The Node object does not exist yet: the first test creates it.
    node = await startAgentInProcess({ kubeconfigPath, syncPeriod: '5s', minSyncPeriod: '100ms' });
  });

  afterAll(async () => {
    await node?.stop();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    if (node !== undefined) await deleteNode(clients.core, node.nodeName);
  });

  async function scrape(): Promise<MetricSample[]> {
    const answer = await httpGet(`http://127.0.0.1:${node.agent.metricsPort ?? 0}/metrics`);
    expect(answer.status).toBe(200);
    return parsePrometheusText(answer.body);
  }

  function value(samples: readonly MetricSample[], name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
    const found = matching(samples, name, labels);
    return found.length === 0 ? undefined : found.reduce((sum, sample) => sum + sample.value, 0);
  }

  const healthz = (path: '/healthz' | '/livez') => httpGet(`http://127.0.0.1:${node.agent.healthPort ?? 0}${path}`);

  it('/healthz answers 200 after the first sync only once the Node exists; /livez does not need it', async () => {
    const before = await healthz('/healthz');
    expect(before.status).toBe(503);
    expect(JSON.parse(before.body)).toMatchObject({ nodeEligible: false, healthy: true });
    expect((await healthz('/livez')).status).toBe(200);

    await createNode(clients.core, { name: node.nodeName, internalIP: '192.0.2.10' });
    const after = await node.waitFor('/healthz answers 200', async () => {
      const answer = await healthz('/healthz');
      return answer.status === 200 ? answer : undefined;
    });
    expect(JSON.parse(after.body)).toMatchObject({ nodeEligible: true, healthy: true, status: { IPv4: { healthy: true } } });
    const samples = await scrape();
    expect(value(samples, 'kubeproxy_proxy_healthz_total', { code: '503' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'kubeproxy_proxy_healthz_total', { code: '200' })).toBeGreaterThanOrEqual(1);
  });

  it("the metrics port also answers kube-proxy's /proxyMode and /configz with the running configuration", async () => {
    const base = `http://127.0.0.1:${node.agent.metricsPort ?? 0}`;
    expect(await httpGet(`${base}/proxyMode`)).toMatchObject({ status: 200, body: 'iptables' });
    const configz = await httpGet(`${base}/configz`);
    expect(configz.status).toBe(200);
    expect(JSON.parse(configz.body)).toMatchObject({
      'kubeproxy.config.k8s.io': { hostnameOverride: node.nodeName, clusterCIDR: '10.244.0.0/16', syncPeriod: '5s', minSyncPeriod: '100ms', mode: 'iptables' },
    });
  });

  it("exports kube-proxy's conntrack-INVALID drop counter from its nfacct object", async () => {
    const name = 'ct_state_invalid_dropped_pkts';
    const forward = (await node.kernel('filter')).rules.find((rule) => rule.startsWith('-A KUBE-FORWARD') && rule.includes('INVALID'));
    expect(forward).toMatch(/-m nfacct --nfacct-name +ct_state_invalid_dropped_pkts -j DROP$/);
    // Make the kernel count: a rule of our own on that object in the node's OUTPUT, and three
    // refused connections to 127.0.0.1:9 (one SYN each matches; the RSTs go the other way).
    const match = ['OUTPUT', '-o', 'lo', '-p', 'tcp', '--dport', '9', '-m', 'nfacct', '--nfacct-name', name];
    expect((await node.netns.exec('ip', ['link', 'set', 'lo', 'up'])).code).toBe(0);
    expect((await node.netns.exec('iptables-nft', ['-I', ...match])).code).toBe(0);
    try {
      for (let attempt = 0; attempt < 3; attempt += 1) await node.netns.exec('curl', ['-s', '--max-time', '2', 'http://127.0.0.1:9/']);
    } finally {
      await node.netns.exec('iptables-nft', ['-D', ...match]);
    }
    const kernelCount = Number(/pkts = (\d+)/.exec((await node.netns.exec('nfacct', ['get', name])).stdout)?.[1] ?? -1);
    expect(kernelCount).toBe(3);
    expect(value(await scrape(), 'kubeproxy_iptables_ct_state_invalid_dropped_packets_total')).toBe(kernelCount);
  });

  it('/metrics reports sync durations, the last sync time and network programming latency of a fresh change', async () => {
    const first = await scrape();
    expect(value(first, 'kubeproxy_sync_proxy_rules_duration_seconds_count', { ip_family: 'IPv4' })).toBeGreaterThanOrEqual(1);
    expect(value(first, 'kubeproxy_sync_proxy_rules_duration_seconds_bucket', { ip_family: 'IPv4', le: '+Inf' })).toBeGreaterThanOrEqual(1);
    const lastSync = value(first, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family: 'IPv4' }) ?? 0;
    expect(lastSync).toBeGreaterThan(0);
    expect(lastSync).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    // Objects that changed before the agent started say nothing about its latency.
    // (A labelled histogram has no series before its first observation.)
    expect(value(first, 'kubeproxy_network_programming_duration_seconds_count', { ip_family: 'IPv4' }) ?? 0).toBe(0);

    namespace ??= await createNamespace(clients.core);
    await createService(clients.core, { namespace, name: 'web', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    // createEndpointSlice stamps endpoints.kubernetes.io/last-change-trigger-time with now.
    await createEndpointSlice(clients.discovery, {
      namespace, serviceName: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.7.1' }],
    });
    const web = serviceChainNames(namespace, 'web', 'http');
    await node.waitFor('web is programmed', async () => (await node.kernel('nat')).chains.has(web.cluster));
    const after = await node.waitFor('the programming latency is observed', async () => {
      const samples = await scrape();
      return (value(samples, 'kubeproxy_network_programming_duration_seconds_count', { ip_family: 'IPv4' }) ?? 0) > 0 ? samples : undefined;
    });
    const sum = value(after, 'kubeproxy_network_programming_duration_seconds_sum', { ip_family: 'IPv4' }) ?? -1;
    expect(sum).toBeGreaterThanOrEqual(0);
    expect(value(after, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family: 'IPv4' })).toBeGreaterThan(lastSync);
    expect(value(after, 'kubeproxy_sync_proxy_rules_duration_seconds_count', { ip_family: 'IPv4' })).toBeGreaterThan(
      value(first, 'kubeproxy_sync_proxy_rules_duration_seconds_count', { ip_family: 'IPv4' }) ?? 0,
    );
  });

  it('/metrics, with a Service synced and its latency observed, lints clean through promtool check metrics but for the names kept from kube-proxy and prom-client', async () => {
    // Runs after the test above: the labelled series (sync durations, rule counts, network
    // programming latency) are there as well as the families.
    const answer = await httpGet(`http://127.0.0.1:${node.agent.metricsPort ?? 0}/metrics`);
    expect(answer.status).toBe(200);
    expect(matching(parsePrometheusText(answer.body), 'kubeproxy_network_programming_duration_seconds_count', { ip_family: 'IPv4' }).some((s) => s.value > 0)).toBe(true);
    const lint = await checkMetrics(answer.body);
    expect(lint.unexpected, lint.stderr).toEqual([]);
    // 3: lint problems (the accepted ones) only; 1 would be text promtool cannot parse.
    expect([0, 3], `promtool check metrics exited ${lint.code}: ${lint.stderr}`).toContain(lint.code);
    // Every accepted problem is about a metric the agent really exports (no stale entries).
    for (const name of ACCEPTED_METRIC_LINT.keys()) expect(answer.body, name).toContain(`# TYPE ${name} `);
  });

  it('serves the healthCheckNodePort of an externalTrafficPolicy Local LoadBalancer with the local endpoint count', async () => {
    namespace ??= await createNamespace(clients.core);
    const service = await createService(clients.core, {
      namespace, name: 'lb', type: 'LoadBalancer', ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      spec: { externalTrafficPolicy: 'Local' },
    });
    const healthCheckNodePort = service.spec?.healthCheckNodePort ?? 0;
    expect(healthCheckNodePort).toBeGreaterThan(0);
    const slice = await createEndpointSlice(clients.discovery, {
      namespace, serviceName: 'lb', ports: [{ name: 'http', port: 8080 }],
      endpoints: [
        { address: '10.244.8.1', nodeName: node.nodeName },
        { address: '10.244.8.2', nodeName: node.nodeName },
        { address: '10.244.9.1', nodeName: 'another-node' },
      ],
    });
    const url = `http://127.0.0.1:${healthCheckNodePort}/`;

    const local = await node.waitFor('the health check answers 200', async () => {
      const answer = await httpGet(url);
      return answer.status === 200 ? answer : undefined;
    });
    expect(local.headers['x-load-balancing-endpoint-weight']).toBe('2');
    expect(JSON.parse(local.body)).toEqual({ service: { namespace, name: 'lb' }, localEndpoints: 2, serviceProxyHealthy: true });
    expect(await node.metric('kube_proxy_ts_health_check_node_port_servers')).toBe(1);

    // Only a terminating local endpoint (still serving): upstream counts ready endpoints only, so
    // load balancers drain the node while the rules keep its last connections flowing.
    await setEndpoints(clients.discovery, namespace, slice.metadata?.name ?? '', [
      { address: '10.244.8.1', nodeName: node.nodeName, ready: false, serving: true, terminating: true },
      { address: '10.244.9.1', nodeName: 'another-node' },
    ]);
    const draining = await node.waitFor('the health check answers 503 with only a terminating local endpoint', async () => {
      const answer = await httpGet(url);
      return answer.status === 503 ? answer : undefined;
    });
    expect(draining.headers['x-load-balancing-endpoint-weight']).toBe('0');
    expect(JSON.parse(draining.body)).toMatchObject({ localEndpoints: 0, serviceProxyHealthy: true });
    const localChain = serviceChainNames(namespace, 'lb', 'http').local;
    const nat = await node.kernel('nat');
    expect(nat.rules.filter((rule) => rule.startsWith(`-A ${localChain} `)).join('\n')).toContain(endpointChainName(namespace, 'lb', 'http', '10.244.8.1', 8080));

    // Only a remote endpoint left: load balancers must stop sending traffic to this node.
    await setEndpoints(clients.discovery, namespace, slice.metadata?.name ?? '', [{ address: '10.244.9.1', nodeName: 'another-node' }]);
    const none = await node.waitFor('the health check answers 503', async () => {
      const answer = await httpGet(url);
      return answer.status === 503 ? answer : undefined;
    });
    expect(none.headers['x-load-balancing-endpoint-weight']).toBe('0');
    expect(JSON.parse(none.body)).toMatchObject({ localEndpoints: 0, serviceProxyHealthy: true });

    // The Service goes: so does its server.
    await deleteService(clients.core, namespace, 'lb');
    await node.waitFor('the health check server is closed', async () => {
      try {
        await httpGet(url, 1_000);
        return false;
      } catch (error: unknown) {
        return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
      }
    });
    expect(await node.metric('kube_proxy_ts_health_check_node_port_servers')).toBe(0);
  });
});
