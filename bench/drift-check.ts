// What the periodic drift check (sync/drift-check.ts, every syncPeriod) costs at 10k Services x
// 10 endpoints: the generated rule set restored into a fresh network namespace, then checks as the
// agent runs them: the first one after start (nothing remembered), the following ones on an
// unchanged kernel (chains settled by the memo), and one after a dispatch rule was deleted from
// KUBE-SERVICES (found, and the size of its repair). Each time is split into reading the tables
// (iptables-save, another process) and comparing (the agent's own CPU). Never fails on timing.
//
//   npx tsx bench/drift-check.ts [--services 10000] [--endpoints 10] [--backend nft|legacy] [--rounds 3]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { ModelStore } from '../src/model/store.js';
import { ExecNetfilter, legacyBinaries, nftBinaries } from '../src/netfilter/exec.js';
import { TABLES, type TableName } from '../src/netfilter/vocabulary.js';
import { renderRuleSet } from '../src/render/index.js';
import { planFullSync } from '../src/sync/diff.js';
import { checkDrift, DriftMemo } from '../src/sync/drift.js';
import { DEFAULT_CHAINS_PER_PART } from '../src/sync/full-parts.js';
import { createNetns } from '../test/harness/netns.js';
import { applyChange } from '../test/support/generate.js';
import { benchContext, benchGenerator, benchNode } from './generated-cluster.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    backend: { type: 'string', default: 'nft' },
    rounds: { type: 'string', default: '3' },
  },
});
if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, iptables)');
const binaries = values.backend === 'legacy' ? legacyBinaries : nftBinaries;

const generator = benchGenerator({ seed: 1, endpoints: Number(values.endpoints), unreadyRate: 0 });
const store = new ModelStore(benchNode);
for (const change of generator.populate(Number(values.services))) applyChange(store, change);
const ruleSet = renderRuleSet(store.snapshot().state, benchContext);
const plan = planFullSync(ruleSet, { existingChains: new Map(), missingJumps: ruleSet.jumps }, values.backend === 'legacy' ? 0 : DEFAULT_CHAINS_PER_PART);

const netns = await createNetns('drift-bench');
try {
  const netfilter = new ExecNetfilter({ binaries, prefix: netns.prefix });
  for (const part of plan.parts ?? [plan.payload]) {
    const result = await netfilter.restore(part, { noFlush: true });
    if (!result.ok) throw new Error(`restore failed: ${result.message}`);
  }
  const memo = new DriftMemo();
  const check = async (label: string): Promise<void> => {
    const readStart = performance.now();
    const saved = new Map<TableName, string>();
    let bytes = 0;
    for (const table of TABLES) {
      const result = await netfilter.save(table);
      if (!result.ok) throw new Error(result.message);
      saved.set(table, result.text);
      bytes += result.text.length;
    }
    const compareStart = performance.now();
    const result = checkDrift(ruleSet, saved, memo);
    const end = performance.now();
    const findings = result.findings.map((finding) => `${finding.table} ${finding.chain} ${finding.kind}`).join(', ') || 'none';
    console.log(
      `  ${label.padEnd(34)} total ${((end - readStart) / 1000).toFixed(2)} s = iptables-save ${((compareStart - readStart) / 1000).toFixed(2)} s (${(bytes / 1e6).toFixed(1)} MB)` +
        ` + compare ${((end - compareStart) / 1000).toFixed(2)} s; ${result.chainsChecked} chains, ${result.chainsFromMemo} from the memo; drift: ${findings}` +
        (result.repair !== undefined ? `; repair ${result.repair.stats.bytes} bytes` : ''),
    );
  };
  console.log(`drift check at ${values.services} Services x ${values.endpoints} endpoints, iptables-${values.backend}:`);
  await check('first check (nothing remembered)');
  for (let round = 1; round <= Number(values.rounds); round++) await check(`check ${round + 1} (unchanged kernel)`);
  const dispatch = (await netns.exec(binaries.iptables, ['-w', '-t', 'nat', '-D', 'KUBE-SERVICES', '1']));
  if (dispatch.code !== 0) throw new Error(dispatch.stderr);
  await check('after a KUBE-SERVICES rule deletion');
} finally {
  await netns.delete();
}
