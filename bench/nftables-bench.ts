// The nftables mode against a real kernel (a throwaway network namespace): the cold full sync of
// N generated Services x M endpoints, then single changes (one endpoint added / removed / flipped)
// as partial syncs; and what one more Service costs nft once N exist, with upstream's anonymous
// numgen vmaps vs named maps (the cost behind kubernetes PR #140723). Prints figures only.
//
//   npx tsx bench/nftables-bench.ts [--services 1000,5000] [--endpoints 10] [--changes 20] [--chains-per-transaction N]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { ModelStore } from '../src/model/store.js';
import { Nft } from '../src/nftables/nft.js';
import { DEFAULT_CHAINS_PER_TRANSACTION, NftablesProxier } from '../src/nftables/nftables-proxier.js';
import type { NftContext } from '../src/nftables/types.js';
import { createNetns, type Netns } from '../test/harness/netns.js';
import { applyChange, type MutationKind } from '../test/support/generate.js';
import { benchGenerator, benchNode } from './generated-cluster.js';

const { values } = parseArgs({ options: { services: { type: 'string', default: '1000,5000' }, endpoints: { type: 'string', default: '10' }, changes: { type: 'string', default: '20' }, 'chains-per-transaction': { type: 'string' } } });
const scales = values.services.split(',').map(Number);
const endpoints = Number(values.endpoints);
const changes = Number(values.changes);
const chainsPerTransaction = Number(values['chains-per-transaction'] ?? DEFAULT_CHAINS_PER_TRANSACTION);
const context: NftContext = {
  masqueradeMark: '0x00004000', masqueradeAll: false,
  localTraffic: { ifLocal: 'ip saddr 10.244.0.0/16', ifNotLocal: 'ip saddr != 10.244.0.0/16' },
  nodePortIPs: benchNode.ips, primaryNodeIP: benchNode.ips[0], serviceCIDRs: [],
};
const ms = (seconds: number): string => `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
const quantile = (samples: readonly number[], q: number): number => [...samples].sort((a, b) => a - b)[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? Number.NaN;

async function timedNft(netns: Netns, lines: readonly string[]): Promise<number> {
  const start = performance.now();
  const result = await netns.exec('nft', ['-f', '-'], `${lines.join('\n')}\n`);
  if (result.code !== 0) throw new Error(result.stderr);
  return (performance.now() - start) / 1000;
}

/** One more service chain (4 endpoints) with an anonymous or a named numgen map. */
function oneMoreService(index: number, kind: 'anonymous' | 'named'): string[] {
  const t = 'ip kube-proxy';
  const chain = `bench-svc-${index}`;
  const targets = [0, 1, 2, 3].map((n) => `bench-ep-${index}-${n}`);
  const lines = targets.flatMap((target, n) => [`add chain ${t} ${target}`, `add rule ${t} ${target} meta l4proto tcp dnat to 10.99.${index % 250}.${n + 1}:80`]);
  lines.push(`add chain ${t} ${chain}`);
  if (kind === 'anonymous') {
    lines.push(`add rule ${t} ${chain} numgen random mod 4 vmap { ${targets.map((target, n) => `${n} : goto ${target}`).join(' , ')} }`);
  } else {
    lines.push(`add map ${t} ${chain}-eps { typeof numgen random mod 4 : verdict ; }`);
    lines.push(`add element ${t} ${chain}-eps { ${targets.map((target, n) => `${n} : goto ${target}`).join(', ')} }`);
    lines.push(`add rule ${t} ${chain} numgen random mod 4 vmap @${chain}-eps`);
  }
  return lines;
}

for (const scale of scales) {
  const generator = benchGenerator({ seed: 1, endpoints, unreadyRate: 0.03 });
  const store = new ModelStore(benchNode);
  for (const change of generator.populate(scale)) applyChange(store, change);
  const netns = await createNetns('nft-bench');
  try {
    const proxier = new NftablesProxier({ family: 'IPv4', store, nft: new Nft({ prefix: netns.prefix }), conntrackCleanup: undefined, context: () => context, fullSyncPeriodMs: 3_600_000, chainsPerTransaction });
    const full = await proxier.sync('initial');
    if (full.result !== 'applied') throw new Error(JSON.stringify(full));
    const endpointCount = [...full.state.servicePorts.values()].reduce((sum, port) => sum + port.allEndpoints.length, 0);
    console.log(`\n## ${scale} Services x ${endpoints} endpoints (${full.state.servicePorts.size} service ports, ${endpointCount} endpoints)`);
    console.log(`cold full sync: total ${ms(full.totalSeconds)} (model ${ms(full.phases.modelSeconds)}, render ${ms(full.phases.renderSeconds)}, plan ${ms(full.phases.diffSeconds)}, nft ${ms(full.phases.restoreSeconds)}); ` +
      `${full.plan?.transactions.length} transactions, ${((full.writes?.bytes ?? 0) / 1e6).toFixed(1)} MB, ${full.writes?.lines} lines, ${full.rulesTotal['kube-proxy']} rules`);

    const kinds: MutationKind[] = ['addEndpoint', 'removeEndpoint', 'flipReady'];
    const totals: number[] = [];
    const nftTimes: number[] = [];
    const bytes: number[] = [];
    for (let index = 0; index < changes; index++) {
      const mutation = generator.mutation(kinds[index % kinds.length] ?? 'addEndpoint');
      if (mutation === undefined) continue;
      for (const change of mutation.changes) applyChange(store, change);
      const report = await proxier.sync('change');
      if (report.result === 'failed') throw new Error(report.message);
      totals.push(report.totalSeconds);
      nftTimes.push(report.phases.restoreSeconds);
      bytes.push(report.writes?.bytes ?? 0);
    }
    console.log(`one endpoint change (${totals.length} syncs): total median ${ms(quantile(totals, 0.5))}, p90 ${ms(quantile(totals, 0.9))}, max ${ms(Math.max(...totals))}; ` +
      `nft median ${ms(quantile(nftTimes, 0.5))}; transaction median ${quantile(bytes, 0.5)} B, max ${Math.max(...bytes)} B`);
    // Where a small transaction's time goes (nft 1.0.6, strace): before `add rule`, `add element`,
    // `delete element` or `delete chain` nft dumps every chain, set, flowtable and object of the
    // family into its cache; `add chain` (also with a block of rules), `flush chain` and
    // `add set|map` (also with `elements = { }`) need only the table. The writer uses the latter.
    const probe = async (label: string, lines: string[]): Promise<string> => {
      const samples: number[] = [];
      for (let index = 0; index < 3; index++) samples.push(await timedNft(netns, lines));
      return `${label} ${ms(quantile(samples, 0.5))}`;
    };
    const t = 'ip kube-proxy';
    const map = 'add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ;';
    const floor = [
      await probe('add chain', [`add chain ${t} bench-probe`]),
      await probe('flush chain', [`flush chain ${t} bench-probe`]),
      await probe('add rule', [`add rule ${t} bench-probe meta l4proto tcp dnat to 10.99.0.1:80`]),
      await probe('add chain { rule }', [`flush chain ${t} bench-probe`, `add chain ${t} bench-probe { meta l4proto tcp dnat to 10.99.0.1:80 ; }`]),
      await probe('add element', [`add element ${t} service-ips { 10.99.0.1 . tcp . 80 : goto bench-probe }`]),
      await probe('add map { elements }', [`${map} elements = { 10.99.0.2 . tcp . 80 : goto bench-probe } ; }`]),
      await probe('delete element', [`${map} elements = { 10.99.0.3 . tcp . 80 : goto bench-probe } ; }`, `delete element ${t} service-ips { 10.99.0.3 . tcp . 80 }`]),
      await probe('delete chain', [`add chain ${t} bench-probe-2`, `delete chain ${t} bench-probe-2`]),
    ];
    const dumpStart = performance.now();
    await netns.exec('nft', ['-t', 'list', 'chains', 'ip']);
    console.log(`one-line transactions (median of 3): ${floor.join(', ')}; nft's chain dump alone (nft -t list chains): ${ms((performance.now() - dumpStart) / 1000)}`);
    if (scale <= 1000) {
      const listStart = performance.now();
      await netns.exec('nft', ['list', 'table', 'ip', 'kube-proxy']);
      console.log(`for reference, listing the whole table (what a per-sync listing would cost): ${ms((performance.now() - listStart) / 1000)}`);
    }

    // One more Service with an anonymous map vs a named map, on top of this table (upstream's shape: anonymous).
    const anonymous: number[] = [];
    const named: number[] = [];
    for (let index = 0; index < 5; index++) {
      anonymous.push(await timedNft(netns, oneMoreService(index * 2, 'anonymous')));
      named.push(await timedNft(netns, oneMoreService(index * 2 + 1, 'named')));
    }
    console.log(`one more Service once ${scale} exist (5 each): anonymous vmap median ${ms(quantile(anonymous, 0.5))}, named map median ${ms(quantile(named, 0.5))}`);
  } finally {
    await netns.delete();
  }
}
