// The cost of the pure pipeline at scale: 10,000 generated Services x 10 endpoints through
// ModelStore -> renderRuleSet -> payload, and the deltas the agent computes for single changes
// (one endpoint, one Service added, one removed). Prints figures; never fails on timing.
//
//   npx tsx bench/render-bench.ts [--services 10000] [--endpoints 10] [--repetitions 50] [--seed 1]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { ModelStore } from '../src/model/store.js';
import { RenderCache, renderRuleSet } from '../src/render/index.js';
import type { RuleSet } from '../src/render/types.js';
import { planPartialSync, type SyncPlan } from '../src/sync/diff.js';
import { buildFullPayload } from '../src/sync/payload.js';
import { applyChange, type MutationKind } from '../test/support/generate.js';
import { benchContext, benchGenerator, benchNode } from './generated-cluster.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    repetitions: { type: 'string', default: '50' },
    seed: { type: 'string', default: '1' },
  },
});
const serviceCount = Number(values.services);
const endpointCount = Number(values.endpoints);
const repetitions = Number(values.repetitions);
const seed = Number(values.seed);

const node = benchNode;
const context = benchContext;

interface Row {
  readonly step: string;
  readonly time: string;
  readonly bytes: string;
  readonly lines: string;
  readonly note: string;
}
const rows: Row[] = [];

function ms(value: number): string {
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(0)} ms`;
}

function once<T>(body: () => T): { result: T; elapsed: number } {
  const start = performance.now();
  const result = body();
  return { result, elapsed: performance.now() - start };
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? Number.NaN;
}

function summary(samples: readonly number[]): { median: number; p90: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: percentile(sorted, 0.5), p90: percentile(sorted, 0.9) };
}

// ---- the cluster ------------------------------------------------------------------------------

const generator = benchGenerator({ seed, endpoints: endpointCount, unreadyRate: 0.03 });
const changes = generator.populate(serviceCount);
const objectCount = changes.length;

const store = new ModelStore(node);
const built = once(() => {
  for (const change of changes) applyChange(store, change);
  return store.snapshot();
});
let state = built.result.state;
let endpointTotal = 0;
for (const servicePort of state.servicePorts.values()) endpointTotal += servicePort.allEndpoints.length;
rows.push({
  step: 'build model (ModelStore, all objects + snapshot)',
  time: ms(built.elapsed),
  bytes: '',
  lines: '',
  note: `${objectCount} objects -> ${state.servicePorts.size} service ports, ${endpointTotal} endpoints`,
});

const cache = new RenderCache();
const rendered = once(() => renderRuleSet(state, context, cache));
let applied: RuleSet = rendered.result;
let chainCount = 0;
for (const rules of applied.servicePorts.values()) chainCount += rules.chains.length;
rows.push({ step: 'full render (cold cache)', time: ms(rendered.elapsed), bytes: '', lines: '', note: `${chainCount} per-service chains; target < 1 s` });

const payload = once(() => buildFullPayload(applied, { jumps: 'append' }));
rows.push({
  step: 'full payload build',
  time: ms(payload.elapsed),
  bytes: `${(payload.result.stats.bytes / 1e6).toFixed(1)} MB`,
  lines: String(payload.result.stats.lines),
  note: `comments per endpoint: ${endpointTotal > (context.largeClusterEndpointsThreshold ?? 1000) ? 'dropped (large cluster)' : 'kept'}`,
});

const warm = once(() => renderRuleSet(state, context, cache));
const noChange = once(() => planPartialSync(applied, warm.result));
rows.push({
  step: 'no change: render (warm) + plan',
  time: ms(warm.elapsed + noChange.elapsed),
  bytes: String(noChange.result.stats.bytes),
  lines: String(noChange.result.stats.lines),
  note: `reused ${cache.stats.reused}, rendered ${cache.stats.rendered}`,
});

// ---- deltas -----------------------------------------------------------------------------------

interface DeltaSample {
  readonly model: number;
  readonly render: number;
  readonly plan: number;
  readonly total: number;
  readonly result: SyncPlan;
  /** Service ports the change touched (a two-port Service's endpoint change touches both). */
  readonly servicePorts: number;
}

function delta(kind: MutationKind): DeltaSample | undefined {
  const mutation = generator.mutation(kind);
  if (mutation === undefined) return undefined;
  const start = performance.now();
  for (const change of mutation.changes) applyChange(store, change);
  const snapshot = store.snapshot();
  const afterModel = performance.now();
  const desired = renderRuleSet(snapshot.state, context, cache);
  const afterRender = performance.now();
  const result = planPartialSync(applied, desired);
  const end = performance.now();
  applied = desired;
  state = snapshot.state;
  return {
    model: afterModel - start,
    render: afterRender - afterModel,
    plan: end - afterRender,
    total: end - start,
    result,
    servicePorts: snapshot.changedServicePortKeys.size,
  };
}

function measure(label: string, kind: MutationKind, target: string): void {
  // A few unmeasured rounds first: the JIT settles on the delta path.
  for (let index = 0; index < 5; index++) delta(kind);
  const samples: DeltaSample[] = [];
  while (samples.length < repetitions) {
    const sample = delta(kind);
    if (sample !== undefined) samples.push(sample);
  }
  const total = summary(samples.map((sample) => sample.total));
  const bytes = summary(samples.map((sample) => sample.result.stats.bytes));
  const lines = summary(samples.map((sample) => sample.result.stats.lines));
  const part = (pick: (sample: DeltaSample) => number): string => ms(summary(samples.map(pick)).median);
  const perServicePort = summary(samples.map((sample) => sample.result.stats.bytes / Math.max(1, sample.servicePorts)));
  rows.push({
    step: label,
    time: `${ms(total.median)} / p90 ${ms(total.p90)}`,
    bytes: `${bytes.median} / p90 ${bytes.p90}`,
    lines: `${lines.median} / p90 ${lines.p90}`,
    note:
      `median model ${part((sample) => sample.model)}, render ${part((sample) => sample.render)}, plan ${part((sample) => sample.plan)}; ` +
      `bytes per service port changed ${perServicePort.median.toFixed(0)} / p90 ${perServicePort.p90.toFixed(0)}${target}`,
  });
}

measure('one endpoint flips ready', 'flipReady', '; target < 10 ms, < 2 KB');
measure('one endpoint added', 'addEndpoint', '');
measure('one endpoint removed', 'removeEndpoint', '');
measure('add one Service', 'addService', '');
measure('remove one Service', 'removeService', '');

// ---- report -----------------------------------------------------------------------------------

const header: Row = { step: 'step', time: 'time (median / p90)', bytes: 'payload bytes', lines: 'lines', note: 'notes' };
const widths = {
  step: Math.max(...[header, ...rows].map((row) => row.step.length)),
  time: Math.max(...[header, ...rows].map((row) => row.time.length)),
  bytes: Math.max(...[header, ...rows].map((row) => row.bytes.length)),
  lines: Math.max(...[header, ...rows].map((row) => row.lines.length)),
};
const format = (row: Row): string =>
  `| ${row.step.padEnd(widths.step)} | ${row.time.padStart(widths.time)} | ${row.bytes.padStart(widths.bytes)} | ${row.lines.padStart(widths.lines)} | ${row.note}`;

process.stdout.write(
  `render-bench: ${serviceCount} Services x ${endpointCount} endpoints, ${repetitions} repetitions per delta, seed ${seed}, node ${process.version}\n`,
);
process.stdout.write(`${format(header)}\n`);
process.stdout.write(`|${'-'.repeat(widths.step + 2)}|${'-'.repeat(widths.time + 2)}|${'-'.repeat(widths.bytes + 2)}|${'-'.repeat(widths.lines + 2)}|------\n`);
for (const row of rows) process.stdout.write(`${format(row)}\n`);
process.stdout.write(`heap used: ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB\n`);
