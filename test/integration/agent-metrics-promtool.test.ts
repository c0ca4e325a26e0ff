// The running agent's real /metrics, after it has synced a Service of a real apiserver, through
// `promtool check metrics` (Prometheus's own exposition parser and linter): every problem it
// reports must be one of the names we keep on purpose (test/support/promtool.ts says which and why).

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kernelSkipReason } from '../harness/netns.js';
import { httpGet, matching, parsePrometheusText, serviceChainNames, startAgentInProcess, type InProcessAgent } from '../harness/agent-in-process.js';
import { createEndpointSlice, createNamespace, createService, deleteNamespace, kubeClients, type KubeClients } from '../harness/kube.js';
import { ACCEPTED_METRIC_LINT, checkMetrics } from '../support/promtool.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-metrics-promtool.test.ts: ${skipReason}`);

describe.skipIf(skipReason !== undefined)("the agent's /metrics through promtool check metrics", () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  let namespace: string | undefined;

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    node = await startAgentInProcess({ kubeconfigPath, syncPeriod: '5s', minSyncPeriod: '100ms' });
  });

  afterAll(async () => {
    await node?.stop();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
  });

  it('parses and lints clean but for the names kept from kube-proxy and prom-client', async () => {
    // A Service with an endpoint, so that the labelled series (sync durations, rule counts, network
    // programming latency) are there as well as the families.
    namespace = await createNamespace(clients.core);
    await createService(clients.core, { namespace, name: 'web', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
    await createEndpointSlice(clients.discovery, {
      namespace, serviceName: 'web', ports: [{ name: 'http', port: 8080 }], endpoints: [{ address: '10.244.7.1' }],
    });
    const web = serviceChainNames(namespace, 'web', 'http');
    await node.waitFor('web is programmed', async () => (await node.kernel('nat')).chains.has(web.cluster));
    const url = `http://127.0.0.1:${node.agent.metricsPort ?? 0}/metrics`;
    const body = await node.waitFor('the sync and its programming latency are exported', async () => {
      const answer = await httpGet(url);
      const samples = parsePrometheusText(answer.body);
      const synced = matching(samples, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds', { ip_family: 'IPv4' }).length > 0;
      const programmed = matching(samples, 'kubeproxy_network_programming_duration_seconds_count', { ip_family: 'IPv4' }).some((sample) => sample.value > 0);
      return answer.status === 200 && synced && programmed ? answer.body : undefined;
    });

    const lint = await checkMetrics(body);
    expect(lint.unexpected, lint.stderr).toEqual([]);
    // 3: lint problems (the accepted ones) only; 1 would be text promtool cannot parse.
    expect([0, 3], `promtool check metrics exited ${lint.code}: ${lint.stderr}`).toContain(lint.code);
    // Every accepted problem is about a metric the agent really exports (no stale entries).
    for (const name of ACCEPTED_METRIC_LINT.keys()) expect(body, name).toContain(`# TYPE ${name} `);
  });
});
