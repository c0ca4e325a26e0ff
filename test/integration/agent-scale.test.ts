// 1,000 Services, each with an EndpointSlice of three endpoints, created at once (bounded
// concurrency) against a real apiserver: the agent's kernel state converges to exactly their
// chains, and its heap stays within a sane bound. Prints the figures (convergence time, memory).

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kernelSkipReason } from '../harness/netns.js';
import {
  chainsWithPrefix,
  endpointChainName,
  serviceChainNames,
  startAgentInProcess,
  type InProcessAgent,
} from '../harness/agent-in-process.js';
import {
  createEndpointSlice,
  createNamespace,
  createService,
  deleteNamespace,
  kubeClients,
  mapWithConcurrency,
  type KubeClients,
} from '../harness/kube.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/agent-scale.test.ts: ${skipReason}`);

const SERVICES = 1_000;
const ENDPOINTS_PER_SERVICE = 3;
const CONCURRENCY = 32;
const MB = 1024 * 1024;

/** 10.245.x.y, unique per (service, endpoint). */
function endpointIP(service: number, endpoint: number): string {
  const index = service * ENDPOINTS_PER_SERVICE + endpoint;
  return `10.245.${Math.floor(index / 250)}.${(index % 250) + 1}`;
}

function serviceName(index: number): string {
  return `svc-${String(index).padStart(4, '0')}`;
}

function formatMemory(usage: NodeJS.MemoryUsage): string {
  return `rss ${(usage.rss / MB).toFixed(1)} MB, heapUsed ${(usage.heapUsed / MB).toFixed(1)} MB, heapTotal ${(usage.heapTotal / MB).toFixed(1)} MB`;
}

describe.skipIf(skipReason !== undefined)(`agent with ${SERVICES} Services`, () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  let namespace: string | undefined;

  beforeAll(async () => {
    const kubeconfigPath = inject('kubeconfigPath');
    clients = kubeClients(kubeconfigPath);
    // kube-proxy's default minSyncPeriod (1s) coalesces the flood of events; no sync reports or
    // payloads are kept, so they do not count towards the heap.
    node = await startAgentInProcess({ kubeconfigPath, syncPeriod: '30s', minSyncPeriod: '1s', historyLimit: 0 });
  });

  afterAll(async () => {
    // The agent first, so it does not churn through 2,000 deletions.
    await node?.stop();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
  });

  it('converges to exactly one KUBE-SVC chain per Service and keeps its heap bounded', async () => {
    const ns = await createNamespace(clients.core);
    namespace = ns;
    // Chains that exist already (the apiserver's own `kubernetes` Service has an endpoint).
    const baseline = await node.kernel('nat');
    const baselineServices = chainsWithPrefix(baseline, 'KUBE-SVC-');
    const baselineEndpoints = chainsWithPrefix(baseline, 'KUBE-SEP-');
    const expectedServices = new Set<string>();
    const expectedEndpoints = new Set<string>();
    for (let index = 0; index < SERVICES; index++) {
      expectedServices.add(serviceChainNames(ns, serviceName(index), 'http').cluster);
      for (let endpoint = 0; endpoint < ENDPOINTS_PER_SERVICE; endpoint++) {
        expectedEndpoints.add(endpointChainName(ns, serviceName(index), 'http', endpointIP(index, endpoint), 8080));
      }
    }
    expect(expectedServices.size).toBe(SERVICES);
    const syncsBefore = node.status().syncs;
    const memoryBefore = process.memoryUsage();

    const started = performance.now();
    await mapWithConcurrency(Array.from({ length: SERVICES }, (_, index) => index), CONCURRENCY, async (index) => {
      const name = serviceName(index);
      await createService(clients.core, { namespace: ns, name, ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
      await createEndpointSlice(clients.discovery, {
        namespace: ns,
        serviceName: name,
        ports: [{ name: 'http', port: 8080 }],
        endpoints: Array.from({ length: ENDPOINTS_PER_SERVICE }, (_, endpoint) => ({ address: endpointIP(index, endpoint) })),
      });
    });
    const createdMs = performance.now() - started;

    const converged = await node.waitFor(
      `the kernel holds ${SERVICES} new KUBE-SVC chains`,
      async () => {
        const nat = await node.kernel('nat');
        const services = chainsWithPrefix(nat, 'KUBE-SVC-');
        const ours = [...services].filter((chain) => !baselineServices.has(chain));
        return ours.length >= SERVICES ? nat : undefined;
      },
      240_000,
    );
    const convergedMs = performance.now() - started;
    await node.agent.idle();
    const memoryAfter = process.memoryUsage();

    // Exactly: every expected chain, nothing else besides what was there before.
    const services = chainsWithPrefix(converged, 'KUBE-SVC-');
    expect(new Set([...services].filter((chain) => !baselineServices.has(chain)))).toEqual(expectedServices);
    const endpoints = chainsWithPrefix(converged, 'KUBE-SEP-');
    expect(new Set([...endpoints].filter((chain) => !baselineEndpoints.has(chain)))).toEqual(expectedEndpoints);
    const dispatch = converged.rules.filter((rule) => rule.startsWith('-A KUBE-SERVICES ') && rule.includes(`"${ns}/`));
    expect(dispatch).toHaveLength(SERVICES);

    const report = node.status().lastReport;
    const heapGrowthMB = (memoryAfter.heapUsed - memoryBefore.heapUsed) / MB;
    process.stdout.write(
      [
        `agent scale: ${SERVICES} Services x ${ENDPOINTS_PER_SERVICE} endpoints, created with concurrency ${CONCURRENCY}`,
        `  created in ${(createdMs / 1000).toFixed(1)} s; kernel converged ${(convergedMs / 1000).toFixed(1)} s after the first create`,
        `  syncs meanwhile: ${node.status().syncs - syncsBefore}; last sync ${report?.kind ?? '?'} ${report?.result ?? '?'} in ${((report?.totalSeconds ?? 0) * 1000).toFixed(1)} ms`,
        `  memory before: ${formatMemory(memoryBefore)}`,
        `  memory after:  ${formatMemory(memoryAfter)} (heap growth ${heapGrowthMB.toFixed(1)} MB, test process incl. API clients)`,
        '',
      ].join('\n'),
    );
    // Generous: the agent's model, rule set and caches for 1,000 services are a few tens of MB.
    expect(heapGrowthMB).toBeLessThan(300);
  });
});
