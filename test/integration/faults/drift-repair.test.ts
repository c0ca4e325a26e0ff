// Fault: the node's rules changed behind the agent's back, one kind of drift at a time (a rule
// deleted, added, changed or reordered in an owned chain, shared ones included; a chain flushed or
// deleted; a jump from a built-in chain deleted; a whole table flushed), against the real apiserver
// and a real kernel in a network namespace. No apiserver change follows any of them: only the
// periodic drift check can bring the rules back. Prints the time to repair each kind (goal: within
// two syncPeriods: a periodic sync begins the read of the tables, outside the sync; the next sync
// compares it and repairs) and checks the repair was counted under its kind.

import { describe, expect, it } from 'vitest';
import { nftBinaries } from '../../../src/netfilter/exec.js';
import type { TableName } from '../../../src/netfilter/vocabulary.js';
import { kernelSkipReason } from '../../harness/netns.js';
import { createEndpointSlice, createService } from '../../harness/kube.js';
import { agentSuite } from '../../support/agent-suite.js';
import { comparableView, driftCases } from '../../support/drift-cases.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/faults/drift-repair.test.ts: ${skipReason}`);

const SYNC_PERIOD_MS = 2000;

describe.skipIf(skipReason !== undefined)('fault: drift in the chains the agent owns', () => {
  const suite = agentSuite({ syncPeriod: `${SYNC_PERIOD_MS / 1000}s`, minSyncPeriod: '100ms' });

  async function view(): Promise<string> {
    const node = suite.node();
    return comparableView(await Promise.all((['filter', 'nat'] as const).map(async (table): Promise<[TableName, string]> => [table, await node.save(table)])));
  }

  it('repairs every kind of drift by the periodic check (within two syncPeriods), counted per kind', async () => {
    const node = suite.node();
    const clients = suite.clients();
    const ns = await suite.namespace();
    for (const [name, count] of [['web', 3], ['api', 1]] as const) {
      await createService(clients.core, { namespace: ns, name, type: 'NodePort', ports: [{ name: 'http', port: 80, targetPort: 8080 }] });
      await createEndpointSlice(clients.discovery, {
        namespace: ns, serviceName: name, ports: [{ name: 'http', port: 8080 }],
        endpoints: Array.from({ length: count }, (_, index) => ({ address: `10.244.${name === 'web' ? 1 : 2}.${index + 1}` })),
      });
    }
    const ruleSet = await node.waitFor('both Services are programmed and the agent is idle', async () => {
      await node.agent.idle();
      const report = node.status().lastReport;
      if (report === undefined || report.result === 'failed') return undefined;
      // Both with all their endpoints (a Service's rules come before its EndpointSlice's).
      const endpoints = new Map([...report.state.servicePorts.values()].map((servicePort) => [`${servicePort.namespace}/${servicePort.name}`, servicePort.allEndpoints.length]));
      return endpoints.get(`${ns}/web`) === 3 && endpoints.get(`${ns}/api`) === 1 ? report.ruleSet : undefined;
    });
    const pristine = await view();
    const figures: { name: string; kind: string; repairMs: number }[] = [];
    for (const drift of driftCases(ruleSet, node.netns, nftBinaries)) {
      const [finding] = drift.expected;
      if (finding === undefined) continue;
      const before = await node.metric('kube_proxy_ts_drift_repairs_total', { table: finding.table, kind: finding.kind });
      await drift.tamper();
      const tamperedAt = Date.now();
      expect(await view(), `${drift.name}: the tampering changed the kernel`).not.toBe(pristine);
      await node.waitFor(`${drift.name}: repaired`, async () => (await view()) === pristine, 5 * SYNC_PERIOD_MS);
      figures.push({ name: drift.name, kind: finding.kind, repairMs: Date.now() - tamperedAt });
      await node.waitFor(`${drift.name}: counted`, async () => (await node.metric('kube_proxy_ts_drift_repairs_total', { table: finding.table, kind: finding.kind })) > before, 5000);
    }
    const worst = Math.max(...figures.map((figure) => figure.repairMs));
    console.log(
      `drift repair, syncPeriod ${SYNC_PERIOD_MS} ms (time from the end of the tampering command until the kernel holds the applied rules again):\n` +
        figures.map((figure) => `  ${figure.name.padEnd(44)} ${figure.kind.padEnd(16)} ${String(figure.repairMs).padStart(5)} ms`).join('\n') +
        `\n  worst: ${worst} ms (${(worst / SYNC_PERIOD_MS).toFixed(2)} syncPeriods)`,
    );
    // Every kind is repaired by the check, none waits for the hourly full sync.
    expect(node.reports.filter((report) => report.kind === 'full' && report.reason === 'periodic')).toEqual([]);
  });
});
