// Where kube-proxy-ts's memory goes at scale: lists every Service and EndpointSlice of a running
// apiserver through the agent's own list code, then feeds the model, renders and plans a full sync,
// printing the heap retained after each step (after a forced GC) and the process RSS.
//
//   node --expose-gc --import tsx bench/compare/memory-probe.ts --kubeconfig PATH [--node NAME]

import { parseArgs } from 'node:util';
import { CoreV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice, type V1Service } from '@kubernetes/client-node';
import { clientNodeSource } from '../../src/k8s/list-watch.js';
import { ModelStore } from '../../src/model/store.js';
import { RenderCache, renderRuleSet } from '../../src/render/index.js';
import { defaultRenderContext } from '../../src/render/types.js';
import { planFullSync } from '../../src/sync/diff.js';
import { DEFAULT_CHAINS_PER_PART } from '../../src/sync/full-parts.js';

const { values } = parseArgs({ options: { kubeconfig: { type: 'string' }, node: { type: 'string', default: 'bench-node' } } });
if (values.kubeconfig === undefined) throw new Error('--kubeconfig is required');
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

let lastHeap = 0;
function report(step: string): void {
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  const heap = usage.heapUsed / 2 ** 20;
  process.stdout.write(
    `${step.padEnd(44)} heap ${heap.toFixed(0).padStart(5)} MB (${(heap - lastHeap >= 0 ? '+' : '') + (heap - lastHeap).toFixed(0)} MB)  rss ${(usage.rss / 2 ** 20).toFixed(0)} MB  external ${(usage.external / 2 ** 20).toFixed(0)} MB\n`,
  );
  lastHeap = heap;
}

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(values.kubeconfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
report('start');
const services = await clientNodeSource<V1Service>({
  kubeConfig,
  path: '/api/v1/services',
  typeName: 'V1Service',
  listPage: (request) => core.listServiceForAllNamespaces(request),
}).list();
report(`listed ${services.items.length} Services`);
const slices = await clientNodeSource<V1EndpointSlice>({
  kubeConfig,
  path: '/apis/discovery.k8s.io/v1/endpointslices',
  typeName: 'V1EndpointSlice',
  listPage: (request) => discovery.listEndpointSliceForAllNamespaces(request),
}).list();
report(`listed ${slices.items.length} EndpointSlices`);
const managedFieldsBytes =
  JSON.stringify(services.items.map((item) => item.metadata?.managedFields ?? [])).length +
  JSON.stringify(slices.items.map((item) => item.metadata?.managedFields ?? [])).length;
process.stdout.write(`  (managedFields as JSON: ${(managedFieldsBytes / 2 ** 20).toFixed(1)} MB)\n`);
for (const item of [...services.items, ...slices.items]) {
  if (item.metadata !== undefined) delete item.metadata.managedFields;
}
report('same objects without managedFields');

const store = new ModelStore({ name: values.node, ips: ['10.251.0.2'], zone: undefined, labels: {} });
for (const service of services.items) store.upsertService(service);
for (const slice of slices.items) store.upsertEndpointSlice(slice);
report('ModelStore filled');
const snapshot = store.snapshot();
report('snapshot (desired state)');
const context = { ...defaultRenderContext, clusterCIDR: '172.16.0.0/12', nodeIPs: ['10.251.0.2'], localhostNodePorts: true };
const ruleSet = renderRuleSet(snapshot.state, context, new RenderCache());
report('rule set rendered');
const plan = planFullSync(ruleSet, { existingChains: new Map(), missingJumps: ruleSet.jumps }, DEFAULT_CHAINS_PER_PART);
report(`full plan: ${plan.parts?.length ?? 1} parts, ${(plan.stats.bytes / 2 ** 20).toFixed(1)} MB`);
process.stdout.write(`kept: ${[services.items.length, slices.items.length, snapshot.state.servicePorts.size, ruleSet.servicePorts.size, plan.payload.length].join(' ')}\n`);
