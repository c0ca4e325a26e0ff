// Does the order of chain declarations change what iptables-legacy-restore costs? The same full
// payload (10k generated Services x 10 endpoints through the real pipeline) restored into fresh
// network namespaces twice per round: with its declarations in byte order of the chain names (as
// kube-proxy-ts writes them) and shuffled (as upstream kube-proxy writes them: Go map order).
// Prints wall times and the kernel's chain count after each restore; never fails on timing.
//
//   npx tsx bench/restore-order.ts [--services 10000] [--endpoints 10] [--rounds 2] [--seed 1]
//
// Why it matters (perf, iptables 1.8.9): libiptc keeps a table's chains in one name-sorted linked
// list and walks all of it to rebuild its index every 355 new chains. Declared in sorted order, each
// new chain is appended right after the one allocated before it and the walks run through memory
// in order; in random order every step of every walk is a cache miss.

import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { ModelStore } from '../src/model/store.js';
import { ExecNetfilter, legacyBinaries } from '../src/netfilter/exec.js';
import { renderRuleSet } from '../src/render/index.js';
import { buildFullPayload } from '../src/sync/payload.js';
import { createNetns } from '../test/harness/netns.js';
import { applyChange } from '../test/support/generate.js';
import { benchContext, benchGenerator, benchNode } from './generated-cluster.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
  },
});
const rounds = Number(values.rounds);
const seed = Number(values.seed);
if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, iptables)');

const generator = benchGenerator({ seed, endpoints: Number(values.endpoints), unreadyRate: 0 });
const store = new ModelStore(benchNode);
for (const change of generator.populate(Number(values.services))) applyChange(store, change);
const sorted = buildFullPayload(renderRuleSet(store.snapshot().state, benchContext), { jumps: 'append' }).payload;

/** The same lines, each table's declarations shuffled (a seeded Fisher-Yates). */
function shuffledDeclarations(payload: string): string {
  let state = seed >>> 0 || 1;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const lines = payload.split('\n');
  let start = 0;
  while (start < lines.length) {
    while (start < lines.length && !(lines[start] ?? '').startsWith(':')) start++;
    let end = start;
    while (end < lines.length && (lines[end] ?? '').startsWith(':')) end++;
    for (let index = end - 1; index > start; index--) {
      const other = start + Math.floor(random() * (index - start + 1));
      [lines[index], lines[other]] = [lines[other] ?? '', lines[index] ?? ''];
    }
    start = end;
  }
  return lines.join('\n');
}
const variants = [
  { name: 'declarations sorted (kube-proxy-ts)', payload: sorted },
  { name: 'declarations shuffled (kube-proxy: Go map order)', payload: shuffledDeclarations(sorted) },
];
const declared = sorted.split('\n').filter((line) => line.startsWith(':')).length;
console.log(`payload: ${(Buffer.byteLength(sorted) / 1e6).toFixed(1)} MB, ${declared} chains declared; ${rounds} round(s), variants alternating`);

const times = new Map<string, number[]>(variants.map((variant) => [variant.name, []]));
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? variants : [...variants].reverse();
  for (const variant of order) {
    const netns = await createNetns('order');
    try {
      const netfilter = new ExecNetfilter({ binaries: legacyBinaries, prefix: netns.prefix });
      const started = performance.now();
      const result = await netfilter.restore(variant.payload, { noFlush: true });
      const seconds = (performance.now() - started) / 1000;
      if (!result.ok) throw new Error(`${variant.name}: restore failed at line ${result.line ?? '?'}: ${result.message}`);
      const chains = execFileSync('ip', ['netns', 'exec', netns.name, 'iptables-legacy-save', '-t', 'nat'], { encoding: 'utf8', maxBuffer: 1 << 30 })
        .split('\n')
        .filter((line) => line.startsWith(':KUBE-')).length;
      times.get(variant.name)?.push(seconds);
      console.log(`  round ${round + 1}: ${variant.name}: ${seconds.toFixed(2)} s, nat table then has ${chains} KUBE- chains`);
    } finally {
      await netns.delete();
    }
  }
}

const median = (samples: readonly number[]): number => {
  const ordered = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(ordered.length / 2);
  return ordered.length % 2 === 1 ? (ordered[middle] ?? Number.NaN) : ((ordered[middle - 1] ?? 0) + (ordered[middle] ?? 0)) / 2;
};
const [mine, theirs] = variants.map((variant) => median(times.get(variant.name) ?? []));
for (const variant of variants) console.log(`median ${variant.name}: ${median(times.get(variant.name) ?? []).toFixed(2)} s`);
if (mine !== undefined && theirs !== undefined) console.log(`sorted / shuffled: ${(mine / theirs).toFixed(2)}x`);
