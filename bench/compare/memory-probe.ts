// Where kube-proxy-ts's memory goes at scale. Lists every Service and EndpointSlice through the
// agent's own list code (from a running apiserver, or one it starts and loads), then fills the
// model, renders and plans a full sync as the syncer does, and turns the payload into the bytes
// that go to iptables-restore. For each step: the heap retained afterwards (after a forced GC) and
// the peak RSS during the step (VmHWM, reset before each step through /proc/self/clear_refs).
//
//   node --expose-gc --import tsx bench/compare/memory-probe.ts [--kubeconfig PATH | --services 10000]
//     [--endpoints 10] [--chains-per-part 0] [--proxy-mode iptables|nftables]
// With --proxy-mode nftables the last steps are the nftables ones: ruleset rendered, full plan
// (its transactions built one at a time, as the proxier applies them).

import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { apiserverSource } from '../../src/k8s/list-watch.js';
import { ModelStore } from '../../src/model/store.js';
import { RenderCache, renderRuleSet } from '../../src/render/index.js';
import { localTrafficFromCIDR, defaultRenderContext } from '../../src/render/types.js';
import { planFullSync } from '../../src/sync/diff.js';
import { planFullSync as planNftFullSync } from '../../src/nftables/diff.js';
import { NftRenderCache, renderNftRuleset } from '../../src/nftables/render.js';
import { DEFAULT_CHAINS_PER_TRANSACTION } from '../../src/nftables/nftables-proxier.js';
import { startControlPlane, type ControlPlane } from '../../test/harness/control-plane.js';
import { kubeClients } from '../../test/harness/kube.js';
import { NODE_NAME, createBase, loadServices } from './workload.js';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    'chains-per-part': { type: 'string', default: '0' },
    'proxy-mode': { type: 'string', default: 'iptables' },
  },
});
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function vmHwmMB(): number {
  const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

let lastHeap = 0;
/** Runs one step and prints the heap it leaves behind and the peak RSS while it ran. */
async function step<T>(name: string, body: () => T | Promise<T>): Promise<T> {
  gc?.();
  writeFileSync('/proc/self/clear_refs', '5');
  const result = await body();
  const peak = vmHwmMB();
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  const heap = usage.heapUsed / 2 ** 20;
  process.stdout.write(
    `${name.padEnd(40)} heap ${heap.toFixed(0).padStart(5)} MB (${heap - lastHeap >= 0 ? '+' : ''}${(heap - lastHeap).toFixed(0)})` +
      `  rss ${(usage.rss / 2 ** 20).toFixed(0).padStart(4)} MB  peak rss during step ${peak.toFixed(0).padStart(4)} MB\n`,
  );
  lastHeap = heap;
  return result;
}

let controlPlane: ControlPlane | undefined;
let kubeconfigPath = values.kubeconfig;
if (kubeconfigPath === undefined) {
  controlPlane = await startControlPlane();
  kubeconfigPath = controlPlane.kubeconfigPath;
  const clients = kubeClients(kubeconfigPath);
  await createBase(clients, '10.251.0.2');
  const seconds = await loadServices(clients, 0, Number(values.services), Number(values.endpoints), 32, () => undefined);
  process.stdout.write(`loaded ${values.services} Services in ${seconds.toFixed(0)} s\n`);
}
try {
  await step('start', () => undefined);
  const loaded = loadKubeConfig({ kubeconfigPath, env: {} });
  if (!loaded.ok) throw new Error(loaded.detail);
  const { connection } = loaded;
  const services = await step('list Services', () =>
    apiserverSource<V1Service>({ connection, path: '/api/v1/services' }).list(),
  );
  const slices = await step('list EndpointSlices', () =>
    apiserverSource<V1EndpointSlice>({
      connection,
      path: '/apis/discovery.k8s.io/v1/endpointslices',
    }).list(),
  );
  const store = await step('ModelStore filled', () => {
    const model = new ModelStore({ name: NODE_NAME, ips: ['10.251.0.2'], zone: undefined, labels: {}, podCIDRs: [] });
    for (const service of services.items) model.upsertService(service);
    for (const slice of slices.items) model.upsertEndpointSlice(slice);
    return model;
  });
  const snapshot = await step('snapshot (desired state)', () => store.snapshot());
  if (values['proxy-mode'] === 'nftables') {
    const nftContext = {
      masqueradeMark: '0x00004000', masqueradeAll: false, localTraffic: { ifLocal: 'ip saddr 172.16.0.0/12', ifNotLocal: 'ip saddr != 172.16.0.0/12' },
      nodePortIPs: 'all' as const, primaryNodeIP: '10.251.0.2', serviceCIDRs: [],
    };
    const ruleset = await step('nftables ruleset rendered', () => renderNftRuleset(snapshot.state, nftContext, new NftRenderCache()));
    const plan = await step('nftables full plan (no text yet)', () =>
      planNftFullSync(ruleset, undefined, { recreateBaseChains: true, chainsPerTransaction: DEFAULT_CHAINS_PER_TRANSACTION }),
    );
    await step(`  its ${plan.transactionCount} transactions built one by one, as sent`, () => {
      let bytes = 0;
      for (const transaction of plan.transactions()) bytes += Buffer.byteLength(`${transaction.join('\n')}\n`);
      return bytes;
    });
    process.stdout.write(`${services.items.length} Services, ${slices.items.length} EndpointSlices, ${ruleset.servicePorts.size} service ports, ${(plan.stats.bytes / 2 ** 20).toFixed(1)} MB of nft input\n`);
    if (snapshot.state.servicePorts.size + services.items.length + slices.items.length < 0) process.stdout.write('unreachable\n');
  } else {
  const context = { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('172.16.0.0/12'), nodeIPs: ['10.251.0.2'], localhostNodePorts: true };
  const ruleSet = await step('rule set rendered', () => renderRuleSet(snapshot.state, context, new RenderCache()));
  let bytes = 0;
  for (const chainsPerPart of (values['chains-per-part'] ?? '0').split(',').map(Number)) {
    let plan: ReturnType<typeof planFullSync> | undefined = await step(`full plan, ${chainsPerPart} chains per part`, () =>
      planFullSync(ruleSet, { existingChains: new Map(), missingJumps: ruleSet.jumps }, chainsPerPart),
    );
    let parts: readonly string[] = plan.parts ?? [plan.payload];
    bytes = 0;
    await step(`  to bytes (${parts.length} restore call(s))`, () => {
      for (const part of parts) bytes += Buffer.from(part).length;
    });
    plan = undefined;
    parts = [];
    await step('  plan dropped', () => undefined);
  }
  process.stdout.write(
    `${services.items.length} Services, ${slices.items.length} EndpointSlices, ${ruleSet.servicePorts.size} service ports, payload ${(bytes / 2 ** 20).toFixed(1)} MB\n`,
  );
  await step('listed objects reduced to name + resourceVersion', () => {
    for (const list of [services.items, slices.items] as { metadata?: { namespace?: string; name?: string; resourceVersion?: string } }[][]) {
      for (let index = 0; index < list.length; index++) {
        const metadata = list[index]?.metadata;
        list[index] = { metadata: { namespace: metadata?.namespace ?? '', name: metadata?.name ?? '', resourceVersion: metadata?.resourceVersion ?? '' } };
      }
    }
  });
  // Keep everything alive to the end, as the agent does.
  if (snapshot.state.servicePorts.size + services.items.length + slices.items.length < 0) process.stdout.write('unreachable\n');
  }
} finally {
  await controlPlane?.stop();
}
