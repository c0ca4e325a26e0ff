// What a `trace` costs on a large node: generated Services x endpoints rendered to the text a node's
// iptables-save would show, then parsed into the tracer's tables and traced for one cluster IP
// (explained with the model). Prints figures; never fails on timing.
//
//   npx tsx bench/trace-bench.ts [--services 10000] [--endpoints 10] [--seed 1]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { buildDesiredState } from '../src/model/build.js';
import { renderRuleSet } from '../src/render/index.js';
import { fullPayload } from '../src/sync/payload.js';
import { explainTrace } from '../src/trace/explain.js';
import { parseSavedTables } from '../src/trace/tables.js';
import { benchContext, benchGenerator, benchNode } from './generated-cluster.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
  },
});
const generator = benchGenerator({ seed: Number(values.seed), endpoints: Number(values.endpoints), unreadyRate: 0.1 });
generator.populate(Number(values.services));
const { state } = buildDesiredState({ ...generator.objects(), node: benchNode });
const text = fullPayload(renderRuleSet(state, benchContext), { jumps: 'append' });

/** Wall and CPU milliseconds of `body` (CPU is the steadier figure on a busy machine). */
function timed<T>(body: () => T): { result: T; wall: number; cpu: number } {
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  const result = body();
  const cpu = process.cpuUsage(cpuStart);
  return { result, wall: performance.now() - wallStart, cpu: (cpu.user + cpu.system) / 1000 };
}
const ms = (figures: { wall: number; cpu: number }): string => `${figures.wall.toFixed(0)} ms wall, ${figures.cpu.toFixed(0)} ms CPU`;

const parsing = timed(() => parseSavedTables(text));
const parsed = parsing.result;
if (!parsed.ok) throw new Error(parsed.message);

const target = [...state.servicePorts.values()].find((servicePort) => servicePort.clusterEndpoints.length > 1);
if (target === undefined) throw new Error('no Service with several endpoints');
const tracing = timed(() => explainTrace({
  saved: parsed.saved,
  packet: { source: '10.244.0.99', destination: target.clusterIPs[0] ?? '', destinationPort: target.port, protocol: target.protocol, origin: 'pod', localAddresses: benchNode.ips },
  model: state,
}));
const report = tracing.result;

console.log(`trace at ${values.services} Services x ${values.endpoints} endpoints: ${(Buffer.byteLength(text) / 1e6).toFixed(1)} MB of rules`);
console.log(`  parse iptables-save text: ${ms(parsing)}`);
console.log(`  trace + explain ${target.servicePortName}: ${ms(tracing)}, ${report.outcomes.length} outcomes, ${report.excluded?.length ?? 0} endpoints excluded`);
