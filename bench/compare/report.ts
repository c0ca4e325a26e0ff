// Turns the runs into figures: percentiles, one table per scale (metric x kube-proxy-ts /
// kube-proxy / ratio), the targets at the largest scale, and a small hand-written SVG chart of
// p50/p99 latency against scale.

import type { ProxyRunResult, TrialResult } from './run-proxy.js';
import type { ChangeKind, WorkloadSummary } from './workload.js';

/** Linear interpolation between closest ranks; NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] as number;
  const highValue = sorted[high] as number;
  return lowValue + (highValue - lowValue) * (rank - low);
}

function defined(values: readonly (number | undefined)[]): number[] {
  return values.filter((value): value is number => value !== undefined && Number.isFinite(value));
}

export interface LatencySummary {
  readonly count: number;
  readonly timeouts: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export function latencySummary(trials: readonly TrialResult[], pickValue: (trial: TrialResult) => number | undefined = (trial) => trial.latencyMs): LatencySummary {
  const values = defined(trials.map(pickValue));
  return {
    count: values.length,
    timeouts: trials.length - values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: values.length > 0 ? Math.max(...values) : Number.NaN,
  };
}

export interface ProxySummary {
  /** Median over the measured run and the extra starts. */
  readonly firstSyncSeconds: number;
  readonly firstSyncStarts: number;
  readonly firstSyncMin: number;
  readonly firstSyncMax: number;
  readonly firstSyncRestoreMedian: number;
  readonly endpoint: LatencySummary;
  readonly service: LatencySummary;
  /** Service update (session affinity switched on). */
  readonly update: LatencySummary;
  /** Endpoint change and Service add pooled (the issue 6 target; runs before the update kind existed pooled these two). */
  readonly all: LatencySummary;
  readonly kernelEndpoint: LatencySummary;
  readonly kernelService: LatencySummary;
  readonly payloadBytesP50: number;
  readonly payloadBytesMax: number;
  readonly payloadLinesP50: number;
  readonly restoreMsP50: number;
  readonly cpuSeconds: number;
  readonly childrenCpuSeconds: number;
  readonly peakRssMB: number;
}

export function summarizeRun(run: ProxyRunResult): ProxySummary {
  const endpoint = run.trials.filter((trial) => trial.kind === 'endpoint');
  const service = run.trials.filter((trial) => trial.kind === 'service');
  const update = run.trials.filter((trial) => trial.kind === 'update');
  const bytes = defined(run.trials.map((trial) => trial.payloadBytes));
  const starts = [run.firstSync.seconds, ...(run.extraFirstSyncs ?? []).map((start) => start.seconds)];
  const restores = [run.firstSync.restoreSeconds, ...(run.extraFirstSyncs ?? []).map((start) => start.restoreSeconds)];
  return {
    firstSyncSeconds: percentile(starts, 50),
    firstSyncStarts: starts.length,
    firstSyncMin: Math.min(...starts),
    firstSyncMax: Math.max(...starts),
    firstSyncRestoreMedian: percentile(restores, 50),
    endpoint: latencySummary(endpoint),
    service: latencySummary(service),
    update: latencySummary(update),
    all: latencySummary([...endpoint, ...service]),
    kernelEndpoint: latencySummary(endpoint, (trial) => trial.kernelLatencyMs),
    kernelService: latencySummary(service, (trial) => trial.kernelLatencyMs),
    payloadBytesP50: percentile(bytes, 50),
    payloadBytesMax: bytes.length > 0 ? Math.max(...bytes) : Number.NaN,
    payloadLinesP50: percentile(defined(run.trials.map((trial) => trial.payloadLines)), 50),
    restoreMsP50: percentile(defined(run.trials.map((trial) => trial.restoreMs)), 50),
    cpuSeconds: run.process.cpuSeconds,
    childrenCpuSeconds: run.process.childrenCpuSeconds,
    peakRssMB: run.process.peakRssBytes / 2 ** 20,
  };
}

export interface PhaseSplit {
  readonly firstFullMs: Readonly<Record<string, number>> | undefined;
  /** Median of each phase over the partial syncs during the trials. */
  readonly partialMedianMs: Readonly<Record<string, number>>;
  readonly partialSyncs: number;
}

export function phaseSplit(run: ProxyRunResult): PhaseSplit {
  const [first, ...rest] = run.syncLog;
  const partial = rest.filter((entry) => entry.kind === 'partial');
  const partialMedianMs: Record<string, number> = {};
  for (const phase of ['model', 'render', 'diff', 'restore']) {
    partialMedianMs[phase] = percentile(defined(partial.map((entry) => entry.phasesMs[phase])), 50);
  }
  partialMedianMs['total'] = percentile(partial.map((entry) => entry.durationMs), 50);
  return {
    firstFullMs: first !== undefined ? { ...first.phasesMs, total: first.durationMs } : undefined,
    partialMedianMs,
    partialSyncs: partial.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Tables

export interface ScaleResult {
  readonly services: number;
  readonly endpointsPerService: number;
  readonly workload: WorkloadSummary;
  readonly loadSeconds: number;
  readonly runs: Partial<Record<'kube-proxy-ts' | 'kube-proxy', ProxyRunResult>>;
}

function format(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(ours: number, theirs: number): string {
  if (!Number.isFinite(ours) || !Number.isFinite(theirs) || theirs === 0) return '-';
  const value = ours / theirs;
  return value >= 0.1 ? `${value.toFixed(2)}x` : `${value.toFixed(3)}x`;
}

export function scaleTable(scale: ScaleResult): string {
  const ours = scale.runs['kube-proxy-ts'];
  const theirs = scale.runs['kube-proxy'];
  const a = ours !== undefined ? summarizeRun(ours) : undefined;
  const b = theirs !== undefined ? summarizeRun(theirs) : undefined;
  const rows: [string, number | undefined, number | undefined, number][] = [];
  const row = (label: string, pickValue: (summary: ProxySummary, run: ProxyRunResult) => number, digits = 0): void => {
    rows.push([label, a && ours ? pickValue(a, ours) : undefined, b && theirs ? pickValue(b, theirs) : undefined, digits]);
  };
  row('first full sync (s, median of starts)', (summary) => summary.firstSyncSeconds, 2);
  row('  starts', (summary) => summary.firstSyncStarts);
  row('  fastest start (s)', (summary) => summary.firstSyncMin, 2);
  row('  slowest start (s)', (summary) => summary.firstSyncMax, 2);
  row('  in iptables-restore (s, median)', (summary) => summary.firstSyncRestoreMedian, 2);
  row('  iptables-restore calls', (_, run) => run.firstSync.restoreCalls);
  row('  restore input (MB)', (_, run) => run.firstSync.payloadBytes / 1e6, 1);
  row('  restore input (lines)', (_, run) => run.firstSync.payloadLines);
  row('  CPU until then (s, self)', (_, run) => run.firstSync.cpuSeconds, 1);
  row('endpoint change p50 (ms)', (summary) => summary.endpoint.p50);
  row('endpoint change p90 (ms)', (summary) => summary.endpoint.p90);
  row('endpoint change p99 (ms)', (summary) => summary.endpoint.p99);
  row('service add p50 (ms)', (summary) => summary.service.p50);
  row('service add p90 (ms)', (summary) => summary.service.p90);
  row('service add p99 (ms)', (summary) => summary.service.p99);
  row('service update p50 (ms)', (summary) => summary.update.p50);
  row('service update p90 (ms)', (summary) => summary.update.p90);
  row('service update p99 (ms)', (summary) => summary.update.p99);
  if (a !== undefined && a.kernelEndpoint.count + a.kernelService.count > 0) {
    row('  kernel poll: endpoint p50 (ms)', (summary) => summary.kernelEndpoint.p50);
    row('  kernel poll: service p50 (ms)', (summary) => summary.kernelService.p50);
  }
  row('per-change restore input p50 (bytes)', (summary) => summary.payloadBytesP50);
  row('per-change restore input max (bytes)', (summary) => summary.payloadBytesMax);
  row('per-change restore input p50 (lines)', (summary) => summary.payloadLinesP50);
  row('per-change iptables-restore p50 (ms)', (summary) => summary.restoreMsP50);
  row('CPU over run (s, self)', (summary) => summary.cpuSeconds, 1);
  row('CPU over run (s, children)', (summary) => summary.childrenCpuSeconds, 1);
  row('run wall time (s)', (_, run) => run.process.wallSeconds);
  row('peak RSS (MB)', (summary) => summary.peakRssMB);
  row('KUBE-SVC chains', (_, run) => run.chains?.svc ?? Number.NaN);
  row('KUBE-SEP chains', (_, run) => run.chains?.sep ?? Number.NaN);
  row('machine busy during run (%)', (_, run) => run.machine.busyPercent);

  const header = ['metric', 'kube-proxy-ts', 'kube-proxy', 'ratio'];
  const body = rows.map(([label, x, y, digits]) => [label, x !== undefined ? format(x, digits) : '-', y !== undefined ? format(y, digits) : '-', x !== undefined && y !== undefined ? ratio(x, y) : '-']);
  // A first sync that never finished shows its timeout as a bound.
  const first = body[0];
  if (first !== undefined) {
    if (ours?.firstSync.timedOut === true) {
      first[1] = `>${first[1]}`;
      first[3] = first[3] === '-' ? '-' : `>${first[3]}`;
    }
    if (theirs?.firstSync.timedOut === true) {
      first[2] = `>${first[2]}`;
      first[3] = first[3] === '-' || ours?.firstSync.timedOut === true ? '-' : `<${first[3]}`;
    }
  }
  const widths = header.map((title, column) => Math.max(title.length, ...body.map((cells) => (cells[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ');
  const title = `${format(scale.services)} Services x ${scale.endpointsPerService} endpoints (${format(scale.workload.servicePorts)} service ports, ${format(scale.workload.endpoints)} endpoints)`;
  const out = [title, line(header), line(widths.map((width) => '-'.repeat(width))), ...body.map(line)];
  if (ours !== undefined) {
    const split = phaseSplit(ours);
    const show = (phases: Readonly<Record<string, number>> | undefined): string =>
      phases === undefined ? '-' : ['model', 'render', 'diff', 'restore', 'total'].map((phase) => `${phase} ${format(phases[phase] ?? Number.NaN, 1)}`).join(', ');
    out.push(`kube-proxy-ts sync phases (ms): first full: ${show(split.firstFullMs)}`);
    out.push(`kube-proxy-ts sync phases (ms): partial, median of ${split.partialSyncs}: ${show(split.partialMedianMs)}`);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Targets (at the largest scale)

export interface TargetResult {
  readonly name: string;
  readonly services: number;
  readonly ours: number;
  readonly theirs: number;
  readonly limit: string;
  readonly met: boolean;
}

export function evaluateTargets(scale: ScaleResult): TargetResult[] {
  const ours = scale.runs['kube-proxy-ts'];
  const theirs = scale.runs['kube-proxy'];
  if (ours === undefined) return [];
  const a = summarizeRun(ours);
  const targets: TargetResult[] = [];
  if (theirs !== undefined) {
    const b = summarizeRun(theirs);
    targets.push({
      name: 'network programming latency p99 (endpoint change and Service add pooled) <= 1/2 of kube-proxy',
      services: scale.services, ours: a.all.p99, theirs: b.all.p99, limit: '<= 0.5x', met: a.all.p99 <= b.all.p99 / 2,
    });
    targets.push({
      name: 'per-change restore input (p50 bytes) <= 1/10 of kube-proxy partial',
      services: scale.services, ours: a.payloadBytesP50, theirs: b.payloadBytesP50, limit: '<= 0.1x', met: a.payloadBytesP50 <= b.payloadBytesP50 / 10,
    });
    targets.push({
      name: `first full sync no slower than kube-proxy${theirs.firstSync.timedOut ? ' (kube-proxy: not done within the timeout shown)' : ''}`,
      services: scale.services, ours: a.firstSyncSeconds, theirs: b.firstSyncSeconds, limit: '<= 1x',
      met: !ours.firstSync.timedOut && a.firstSyncSeconds <= b.firstSyncSeconds,
    });
  }
  targets.push({
    name: 'agent peak RSS <= 400 MB',
    services: scale.services, ours: a.peakRssMB, theirs: theirs !== undefined ? summarizeRun(theirs).peakRssMB : Number.NaN, limit: '<= 400 MB', met: a.peakRssMB <= 400,
  });
  return targets;
}

/**
 * Issue 14 (nftables mode, both proxies): at the largest scale first full sync and p99 latency at
 * most 0.2x of kube-proxy's, RSS <= 400 MB; and per-change transaction size and time flat from the
 * smallest to the largest scale (the slope: ratio largest / smallest, printed, 'flat' = within 1.5x).
 */
export function nftablesTargets(scales: readonly ScaleResult[]): TargetResult[] {
  const largest = scales[scales.length - 1];
  const smallest = scales[0];
  const ours = largest?.runs['kube-proxy-ts'];
  if (largest === undefined || smallest === undefined || ours === undefined) return [];
  const a = summarizeRun(ours);
  const targets: TargetResult[] = [];
  const theirs = largest.runs['kube-proxy'];
  if (theirs !== undefined) {
    const b = summarizeRun(theirs);
    targets.push({
      name: `first full sync <= 0.2x of kube-proxy${theirs.firstSync.timedOut ? ' (kube-proxy: not done within the timeout shown)' : ''}`,
      services: largest.services, ours: a.firstSyncSeconds, theirs: b.firstSyncSeconds, limit: '<= 0.2x',
      met: !ours.firstSync.timedOut && a.firstSyncSeconds <= 0.2 * b.firstSyncSeconds,
    });
    targets.push({
      name: 'network programming latency p99 (endpoint change and Service add pooled) <= 0.2x of kube-proxy',
      services: largest.services, ours: a.all.p99, theirs: b.all.p99, limit: '<= 0.2x', met: a.all.p99 <= 0.2 * b.all.p99,
    });
  }
  const first = smallest.runs['kube-proxy-ts'];
  if (first !== undefined && smallest !== largest) {
    const s = summarizeRun(first);
    // 'theirs' holds our own figure at the smallest scale here: the slope is ours / that.
    targets.push({
      name: `per-change transaction p50 bytes flat from ${smallest.services} (theirs column) to ${largest.services} Services`,
      services: largest.services, ours: a.payloadBytesP50, theirs: s.payloadBytesP50, limit: '<= 1.5x', met: a.payloadBytesP50 <= 1.5 * s.payloadBytesP50,
    });
    targets.push({
      name: `per-change nft time p50 (ms) flat from ${smallest.services} (theirs column) to ${largest.services} Services`,
      services: largest.services, ours: a.restoreMsP50, theirs: s.restoreMsP50, limit: '<= 1.5x', met: a.restoreMsP50 <= 1.5 * s.restoreMsP50,
    });
  }
  targets.push({
    name: 'agent peak RSS <= 400 MB',
    services: largest.services, ours: a.peakRssMB, theirs: theirs !== undefined ? summarizeRun(theirs).peakRssMB : Number.NaN, limit: '<= 400 MB', met: a.peakRssMB <= 400,
  });
  return targets;
}

const KIND_LABELS: Readonly<Record<ChangeKind, string>> = {
  endpoint: 'endpoint change',
  service: 'Service add',
  update: 'Service update (session affinity)',
};

/**
 * Issue 16: at every scale and for every kind of change, p99 latency no higher than kube-proxy's,
 * and at most half of it from 5k Services on.
 */
export function latencyTargets(scales: readonly ScaleResult[]): TargetResult[] {
  const targets: TargetResult[] = [];
  for (const scale of scales) {
    const ours = scale.runs['kube-proxy-ts'];
    const theirs = scale.runs['kube-proxy'];
    if (ours === undefined || theirs === undefined) continue;
    const a = summarizeRun(ours);
    const b = summarizeRun(theirs);
    const half = scale.services >= 5000;
    for (const kind of ['endpoint', 'service', 'update'] as const) {
      if (a[kind].count === 0 || b[kind].count === 0) continue;
      const limit = half ? 0.5 : 1;
      targets.push({
        name: `${KIND_LABELS[kind]} p99 at ${format(scale.services)} Services <= ${half ? '1/2 of ' : ''}kube-proxy's`,
        services: scale.services, ours: a[kind].p99, theirs: b[kind].p99, limit: `<= ${limit}x`, met: a[kind].p99 <= b[kind].p99 * limit,
      });
    }
  }
  return targets;
}

export function targetsTable(targets: readonly TargetResult[]): string {
  return targets
    .map((target) => `${target.met ? 'MET   ' : 'MISSED'} ${target.name}: kube-proxy-ts ${format(target.ours, 2)}, kube-proxy ${format(target.theirs, 2)} (${target.limit})`)
    .join('\n');
}

// ---------------------------------------------------------------------------------------------
// SVG: three panels (endpoint change, Service add, Service update), latency against Services (both log scale).

const COLORS = { 'kube-proxy-ts': '#1f77b4', 'kube-proxy': '#d62728' } as const;
const PANEL_TITLES: Readonly<Record<ChangeKind, string>> = {
  endpoint: 'One endpoint changed',
  service: 'One Service added',
  update: 'Session affinity switched on',
};

export function latencySvg(scales: readonly ScaleResult[]): string {
  const panelWidth = 360;
  const panelHeight = 260;
  const margin = { left: 60, right: 16, top: 36, bottom: 44 };
  const kinds = ['endpoint', 'service', 'update'] as const;
  const width = kinds.length * (panelWidth + margin.left + margin.right);
  const height = panelHeight + margin.top + margin.bottom + 40;
  const series: { proxy: 'kube-proxy-ts' | 'kube-proxy'; kind: ChangeKind; stat: 'p50' | 'p99'; points: [number, number][] }[] = [];
  for (const proxy of ['kube-proxy-ts', 'kube-proxy'] as const) {
    for (const kind of kinds) {
      for (const stat of ['p50', 'p99'] as const) {
        const points: [number, number][] = [];
        for (const scale of scales) {
          const run = scale.runs[proxy];
          if (run === undefined) continue;
          const value = summarizeRun(run)[kind][stat];
          if (Number.isFinite(value) && value > 0) points.push([scale.services, value]);
        }
        series.push({ proxy, kind, stat, points });
      }
    }
  }
  const allValues = series.flatMap((entry) => entry.points.map(([, value]) => value));
  const allScales = scales.map((scale) => scale.services);
  const minY = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...allValues, 1000))));
  const maxY = 10 ** Math.ceil(Math.log10(Math.max(...allValues, 10)));
  // Services on a log axis: 100 and 10,000 both readable.
  const maxX = Math.max(...allScales, 1);
  const minX = Math.max(1, Math.min(...allScales, maxX));
  const lowX = Math.log10(minX) - 0.15;
  const highX = Math.log10(maxX) + 0.15;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  kinds.forEach((kind, panel) => {
    const x0 = panel * (panelWidth + margin.left + margin.right) + margin.left;
    const y0 = margin.top;
    const sx = (services: number): number => x0 + ((Math.log10(services) - lowX) / (highX - lowX)) * panelWidth;
    const sy = (ms: number): number => y0 + panelHeight - ((Math.log10(ms) - Math.log10(minY)) / (Math.log10(maxY) - Math.log10(minY))) * panelHeight;
    out.push(`<text x="${x0 + panelWidth / 2}" y="${y0 - 14}" text-anchor="middle" font-weight="bold">${PANEL_TITLES[kind]}: write -> rules in kernel</text>`);
    out.push(`<rect x="${x0}" y="${y0}" width="${panelWidth}" height="${panelHeight}" fill="none" stroke="#444"/>`);
    for (let decade = minY; decade <= maxY; decade *= 10) {
      const y = sy(decade);
      out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + panelWidth}" y2="${y}" stroke="#ddd"/>`);
      out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end">${decade >= 1000 ? `${decade / 1000} s` : `${decade} ms`}</text>`);
    }
    for (const services of allScales) {
      const x = sx(services);
      out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + panelHeight}" stroke="#eee"/>`);
      out.push(`<text x="${x}" y="${y0 + panelHeight + 16}" text-anchor="middle">${services >= 1000 ? `${services / 1000}k` : services}</text>`);
    }
    out.push(`<text x="${x0 + panelWidth / 2}" y="${y0 + panelHeight + 34}" text-anchor="middle">Services (x10 endpoints)</text>`);
    for (const entry of series.filter((candidate) => candidate.kind === kind)) {
      if (entry.points.length === 0) continue;
      const path = entry.points.map(([services, ms], index) => `${index === 0 ? 'M' : 'L'}${sx(services).toFixed(1)},${sy(ms).toFixed(1)}`).join(' ');
      const dash = entry.stat === 'p99' ? ' stroke-dasharray="6 4"' : '';
      out.push(`<path d="${path}" fill="none" stroke="${COLORS[entry.proxy]}" stroke-width="2"${dash}/>`);
      for (const [services, ms] of entry.points) {
        out.push(`<circle cx="${sx(services).toFixed(1)}" cy="${sy(ms).toFixed(1)}" r="3" fill="${COLORS[entry.proxy]}"><title>${entry.proxy} ${entry.stat} ${Math.round(ms)} ms at ${services} Services</title></circle>`);
      }
    }
  });
  const legendY = height - 14;
  let legendX = margin.left;
  for (const proxy of ['kube-proxy-ts', 'kube-proxy'] as const) {
    for (const stat of ['p50', 'p99'] as const) {
      const dash = stat === 'p99' ? ' stroke-dasharray="6 4"' : '';
      out.push(`<line x1="${legendX}" y1="${legendY - 4}" x2="${legendX + 28}" y2="${legendY - 4}" stroke="${COLORS[proxy]}" stroke-width="2"${dash}/>`);
      out.push(`<text x="${legendX + 34}" y="${legendY}">${proxy} ${stat}</text>`);
      legendX += 170;
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
