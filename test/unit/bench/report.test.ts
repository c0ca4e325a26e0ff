// The comparison's arithmetic (bench/compare/report.ts): medians, pooled percentiles, targets.

import { describe, expect, it } from 'vitest';

import { evaluateTargets, latencyTargets, nftablesTargets, scaleTable, summarizeRun, type ScaleResult } from '../../../bench/compare/report.js';
import type { ProxyRunResult, TrialResult } from '../../../bench/compare/run-proxy.js';

function trial(kind: TrialResult['kind'], latencyMs: number, payloadBytes: number): TrialResult {
  return { kind, serviceIndex: 1, writtenAtMs: 0, latencyMs, kernelLatencyMs: undefined, restoreMs: latencyMs - 10, payloadBytes, payloadLines: 10, restoresUntilApplied: 1 };
}

function run(
  id: ProxyRunResult['id'],
  options: { first: number; extra: number[]; latency: number; bytes: number; rssMB: number; updateLatency?: number },
): ProxyRunResult {
  const trials = [1, 2, 3, 4].flatMap((step) => [
    trial('endpoint', options.latency * step, options.bytes),
    trial('service', options.latency * step * 2, options.bytes),
    trial('update', (options.updateLatency ?? options.latency) * step, options.bytes),
  ]);
  return {
    id,
    firstSync: { seconds: options.first, timedOut: false, restoreSeconds: options.first - 1, restoreCalls: 1, payloadBytes: 1e6, payloadLines: 1e4, cpuSeconds: 1, childrenCpuSeconds: 1, peakRssBytes: options.rssMB * 2 ** 20 },
    chains: { svc: 10, sep: 100, total: 120, seconds: 0.1 },
    extraFirstSyncs: options.extra.map((seconds) => ({ seconds, restoreSeconds: seconds - 1 })),
    trials,
    process: { cpuSeconds: 2, childrenCpuSeconds: 3, rssBytes: options.rssMB * 2 ** 20, peakRssBytes: options.rssMB * 2 ** 20, wallSeconds: 60 },
    restoreCalls: { ipv4: 9, ipv6: 0, failed: 0 },
    metrics: {},
    syncLog: [],
    machine: { busyPercent: 20, loadAverage: [1, 1, 1] },
  };
}

function scale(ours: ProxyRunResult, theirs: ProxyRunResult, services = 100): ScaleResult {
  return {
    services,
    endpointsPerService: 10,
    workload: { services: 100, servicePorts: 110, endpoints: 1000, byType: {}, sessionAffinity: 2, externalTrafficPolicyLocal: 3 },
    loadSeconds: 1,
    runs: { 'kube-proxy-ts': ours, 'kube-proxy': theirs },
  } as ScaleResult;
}

describe('bench report', () => {
  it('compares first syncs by the median of all starts', () => {
    const summary = summarizeRun(run('kube-proxy-ts', { first: 20, extra: [10, 12], latency: 100, bytes: 2000, rssMB: 300 }));
    expect(summary.firstSyncSeconds).toBe(12);
    expect(summary.firstSyncStarts).toBe(3);
    expect([summary.firstSyncMin, summary.firstSyncMax]).toEqual([10, 20]);
    expect(summary.firstSyncRestoreMedian).toBe(11);
  });

  it('pools both trial kinds for p99 and judges each target against kube-proxy', () => {
    const ours = run('kube-proxy-ts', { first: 14, extra: [], latency: 100, bytes: 2000, rssMB: 390 });
    const theirs = run('kube-proxy', { first: 15, extra: [], latency: 300, bytes: 200_000, rssMB: 600 });
    const summary = summarizeRun(ours);
    expect(summary.all.count).toBe(8);
    expect(summary.all.max).toBe(800);
    const targets = evaluateTargets(scale(ours, theirs));
    expect(targets.map((target) => [target.name.split(' ')[0], target.met])).toEqual([
      ['network', true],
      ['per-change', true],
      ['first', true],
      ['agent', true],
    ]);
    const slower = evaluateTargets(scale(run('kube-proxy-ts', { first: 16, extra: [], latency: 200, bytes: 30_000, rssMB: 401 }), theirs));
    expect(slower.map((target) => target.met)).toEqual([false, false, false, false]);
  });

  it('summarises Service updates on their own, outside the pooled endpoint/Service-add figure', () => {
    const summary = summarizeRun(run('kube-proxy-ts', { first: 14, extra: [], latency: 100, bytes: 2000, rssMB: 300, updateLatency: 1000 }));
    expect(summary.update.count).toBe(4);
    expect(summary.update.max).toBe(4000);
    expect(summary.all.max).toBe(800);
  });

  it('judges p99 per scale and kind: at most kube-proxy\'s, and at most half of it from 5k Services on', () => {
    const theirs = run('kube-proxy', { first: 15, extra: [], latency: 300, bytes: 200_000, rssMB: 600 });
    // Every kind at 2/3 of kube-proxy's: enough at 100 Services, not at 5k.
    const ours = run('kube-proxy-ts', { first: 14, extra: [], latency: 200, bytes: 2000, rssMB: 300 });
    const faster = { ...ours, trials: ours.trials.map((entry) => (entry.kind === 'service' ? { ...entry, latencyMs: (entry.latencyMs ?? 0) / 2 } : entry)) };
    const targets = latencyTargets([scale(faster, theirs, 100), scale(ours, theirs, 5000)]);
    expect(targets.map((target) => [target.services, target.name.split(' p99')[0], target.limit, target.met])).toEqual([
      [100, 'endpoint change', '<= 1x', true],
      [100, 'Service add', '<= 1x', true],
      [100, 'Service update (session affinity)', '<= 1x', true],
      [5000, 'endpoint change', '<= 0.5x', false],
      [5000, 'Service add', '<= 0.5x', false],
      [5000, 'Service update (session affinity)', '<= 0.5x', false],
    ]);
  });

  it('prints one row per metric with both proxies and their ratio', () => {
    const table = scaleTable(scale(run('kube-proxy-ts', { first: 12, extra: [], latency: 100, bytes: 2000, rssMB: 300 }), run('kube-proxy', { first: 15, extra: [], latency: 300, bytes: 200_000, rssMB: 600 })));
    expect(table).toMatch(/^first full sync \(s, median of starts\)\s+12\.00\s+15\.00\s+0\.80x$/m);
    expect(table).toMatch(/^peak RSS \(MB\)\s+300\s+600\s+0\.50x$/m);
    expect(table).toMatch(/^service update p50 \(ms\)\s+250\s+750\s+0\.33x$/m);
  });

  it('nftables mode: 0.2x of kube-proxy at the largest scale, and the per-change slope from the smallest scale', () => {
    const theirs = run('kube-proxy', { first: 100, extra: [], latency: 1000, bytes: 50_000, rssMB: 600 });
    const small = run('kube-proxy-ts', { first: 10, extra: [], latency: 100, bytes: 2000, rssMB: 200 });
    // At 10k: first sync 0.15x, p99 0.3x, bytes flat (1.05x), nft time ~3x the small scale's.
    const large = run('kube-proxy-ts', { first: 15, extra: [], latency: 300, bytes: 2100, rssMB: 390 });
    const targets = nftablesTargets([scale(small, theirs, 1000), scale(large, theirs, 10_000)]);
    expect(targets.map((target) => [target.name.replace(/ (\(|<=|flat).*$/, ''), target.ours, target.theirs, target.met])).toEqual([
      ['first full sync', 15, 100, true],
      ['network programming latency p99', 2358, 7860, false],
      ['per-change transaction p50 bytes', 2100, 2000, true],
      ['per-change nft time p50', 890, 290, false],
      ['agent peak RSS', 390, 600, true],
    ]);
  });
});
