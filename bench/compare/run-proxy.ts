// One proxy, one scale: a fresh node namespace, the proxy started in it, then
//   1. first full sync: process start -> exit of the first successful iptables-restore whose input
//      programs the last Service (confirmed in the kernel, chains counted);
//   2. trials: one endpoint replaced, one Service added, one Service's session affinity switched on,
//      each timed from the apiserver write to the exit of the iptables-restore that carried it (and,
//      with nft, to an independent kernel poll seeing the new chain), with that restore's input size;
//   3. CPU and peak RSS from /proc, the proxy's own /metrics, kube-proxy-ts's phase split from its log.
// Everything it started is stopped and the apiserver changes are undone before it returns.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mapWithConcurrency } from '../../test/harness/kube.js';
import { chainExists, countChains, pollChain, type ChainCounts } from './kernel.js';
import { createBenchNode, type Backend, type ProxyMode } from './node-netns.js';
import {
  METRICS_PORT,
  fetchText,
  machineCpu,
  metricSum,
  parseMetrics,
  sampleProcess,
  startProxy,
  type ProcessSample,
  type ProxyId,
  type ProxyOptions,
  type RunningProxy,
} from './proxies.js';
import { RestoreLog, isIPv4Call, type RestoreCall } from './restore-log.js';
import {
  fullSyncMarker,
  prepareEndpointChange,
  prepareServiceAdd,
  prepareServiceUpdate,
  trialServiceIndex,
  updateServiceIndex,
  type ChangeKind,
  type Clients,
  type PreparedChange,
} from './workload.js';

/** The trial kinds, in the order they run. */
export const TRIAL_KINDS: readonly ChangeKind[] = ['endpoint', 'service', 'update'];

export interface ProxyRunSettings {
  readonly id: ProxyId;
  readonly services: number;
  readonly endpointsPerService: number;
  readonly clients: Clients;
  readonly proxy: ProxyOptions;
  readonly backend: Backend;
  readonly mode: ProxyMode;
  readonly workDir: string;
  /** Trials of each kind (endpoint change, Service add, Service update). */
  readonly trials: number;
  /**
   * Pause after each trial, so minSyncPeriod never delays the next one: at least burst (2) x
   * minSyncPeriod, as a Service add spends two tokens of either proxy's bucket.
   */
  readonly gapMs: number;
  readonly firstSyncTimeoutMs: number;
  readonly trialTimeoutMs: number;
  /** Interval of the independent kernel poll (nft only); 0 turns it off. */
  readonly kernelPollMs: number;
  /** Unique across the whole benchmark: new endpoint IPs and Service names derive from it. */
  readonly nextSequence: () => number;
  readonly log: (message: string) => void;
}

export interface TrialResult {
  readonly kind: ChangeKind;
  readonly serviceIndex: number | undefined;
  /** Unix ms just before the apiserver write: to find the trial in a proxy's log (--log-level debug --keep). */
  readonly writtenAtMs: number;
  /** Write -> exit of the restore that carried the change; undefined on timeout. */
  readonly latencyMs: number | undefined;
  /** Write -> the kernel poll saw the chain (nft only). */
  readonly kernelLatencyMs: number | undefined;
  readonly restoreMs: number | undefined;
  readonly payloadBytes: number | undefined;
  readonly payloadLines: number | undefined;
  /** IPv4 restores that ran between the write and the one that carried the change (inclusive). */
  readonly restoresUntilApplied: number;
}

export interface SyncLogEntry {
  readonly kind: string;
  readonly timeMs: number;
  readonly durationMs: number;
  readonly phasesMs: Readonly<Record<string, number>>;
  readonly bytes: number;
  readonly lines: number;
}

export interface ProxyRunResult {
  readonly id: ProxyId;
  readonly firstSync: {
    /** Process start -> first full sync in the kernel; the timeout when `timedOut`. */
    readonly seconds: number;
    readonly timedOut: boolean;
    /** Time inside iptables-restore (all calls of the first sync). */
    readonly restoreSeconds: number;
    readonly restoreCalls: number;
    readonly payloadBytes: number;
    readonly payloadLines: number;
    readonly cpuSeconds: number;
    readonly childrenCpuSeconds: number;
    readonly peakRssBytes: number;
  };
  readonly chains: ChainCounts | undefined;
  /** First syncs of extra starts (cold-start.ts), for the median. */
  readonly extraFirstSyncs?: readonly { readonly seconds: number; readonly restoreSeconds: number }[];
  readonly trials: readonly TrialResult[];
  readonly process: ProcessSample & { readonly wallSeconds: number };
  readonly restoreCalls: { readonly ipv4: number; readonly ipv6: number; readonly failed: number };
  readonly metrics: Readonly<Record<string, number | undefined>>;
  /** kube-proxy-ts only: its "sync applied" log lines (first full sync, then the trials' partial syncs). */
  readonly syncLog: readonly SyncLogEntry[];
  readonly machine: { readonly busyPercent: number; readonly loadAverage: readonly number[] };
}

const sleep = (ms: number): Promise<void> => new Promise((resolvePromise) => setTimeout(resolvePromise, ms));

function loadAverage(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

async function logTail(path: string, lines = 30): Promise<string> {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The restore calls of a first full sync: the one that programmed the last Service and all IPv4 calls up to it. */
export interface FirstSyncCalls {
  readonly last: RestoreCall;
  readonly calls: readonly RestoreCall[];
}

/**
 * Polls the proxy's restore log until a successful IPv4 restore carries `marker` (the first full
 * sync); 'exited' or 'timeout' otherwise. `onWaiting` is called about once a minute.
 */
export async function awaitFirstSync(
  proxy: RunningProxy,
  restoreLog: RestoreLog,
  marker: string,
  timeoutMs: number,
  onWaiting: (seconds: number) => void = () => undefined,
): Promise<FirstSyncCalls | 'exited' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  let nextProgress = Date.now() + 60_000;
  for (;;) {
    if (proxy.exited) return 'exited';
    const last = restoreLog.poll(marker).find((call) => isIPv4Call(call) && call.exitCode === 0 && call.matched);
    // A full sync may be several restores (kube-proxy-ts on nft): every IPv4 one up to here.
    if (last !== undefined) return { last, calls: restoreLog.calls.filter((call) => isIPv4Call(call) && call.endMs <= last.endMs) };
    if (Date.now() > deadline) return 'timeout';
    if (Date.now() > nextProgress) {
      nextProgress += 60_000;
      onWaiting(Math.round((Date.now() - proxy.startedAtMs) / 1000));
    }
    await sleep(100);
  }
}

export async function runProxy(settings: ProxyRunSettings): Promise<ProxyRunResult> {
  const { id, log } = settings;
  const node = await createBenchNode(id === 'kube-proxy' ? 'kp' : 'kpts', settings.backend, settings.workDir);
  const undo: PreparedChange[] = [];
  let proxy: RunningProxy | undefined;
  try {
    const cpuAtStart = machineCpu();
    const logPath = join(settings.workDir, `${id}-${settings.services}.log`);
    proxy = startProxy(id, node, settings.proxy, logPath);
    const running = proxy;
    const restoreLog = new RestoreLog(node.captureDir);
    const failIfExited = async (what: string): Promise<void> => {
      if (running.exited) throw new Error(`${id} exited ${what}; log ${logPath}:\n${await logTail(logPath)}`);
    };

    // 1. First full sync.
    const marker = fullSyncMarker(settings.services, settings.endpointsPerService, settings.mode);
    const first = await awaitFirstSync(running, restoreLog, marker.payloadText, settings.firstSyncTimeoutMs, (seconds) =>
      log(`  ${id}: waiting for its first full sync (${seconds} s so far)`),
    );
    if (first === 'exited') await failIfExited('before its first sync');
    if (first === 'timeout' || first === 'exited') {
      // Not fatal: the table then shows "more than" this, and the other proxy still runs.
      log(`  ${id}: no full sync within ${Math.round(settings.firstSyncTimeoutMs / 1000)} s; giving up on this run`);
      const sample = sampleProcess(running.pid);
      return timedOutResult(id, running, sample, settings.firstSyncTimeoutMs / 1000, restoreLog, cpuAtStart);
    }
    const atFirstSync = sampleProcess(running.pid);
    const firstCall = first.last;
    const firstCalls = first.calls;
    const firstSync = {
      seconds: (firstCall.endMs - running.startedAtMs) / 1000,
      timedOut: false,
      restoreSeconds: firstCalls.reduce((sum, call) => sum + call.endMs - call.startMs, 0) / 1000,
      restoreCalls: firstCalls.length,
      payloadBytes: firstCalls.reduce((sum, call) => sum + call.bytes, 0),
      payloadLines: firstCalls.reduce((sum, call) => sum + call.lines, 0),
      cpuSeconds: atFirstSync?.cpuSeconds ?? Number.NaN,
      childrenCpuSeconds: atFirstSync?.childrenCpuSeconds ?? Number.NaN,
      peakRssBytes: atFirstSync?.peakRssBytes ?? Number.NaN,
    };
    log(
      `  ${id}: first full sync after ${firstSync.seconds.toFixed(2)} s (${firstSync.restoreCalls} restore call(s), ${firstSync.restoreSeconds.toFixed(2)} s in iptables-restore, ${(firstSync.payloadBytes / 1e6).toFixed(1)} MB)`,
    );
    if (marker.chain !== undefined && !(await chainExists(node.netns.name, settings.backend, marker.chain, settings.mode))) {
      throw new Error(`${id}: restore reported success but ${marker.chain} is not in the kernel`);
    }

    // Let any follow-up sync finish: 3 s without a restore call.
    let lastCallAt = Date.now();
    const settleDeadline = Date.now() + 120_000;
    while (Date.now() - lastCallAt < 3_000 && Date.now() < settleDeadline) {
      if (restoreLog.poll().length > 0) lastCallAt = Date.now();
      await sleep(200);
    }
    const chains = await countChains(node.netns.name, settings.backend, settings.mode);
    if (chains !== undefined) log(`  ${id}: kernel has ${chains.svc} KUBE-SVC and ${chains.sep} KUBE-SEP chains (counted in ${chains.seconds.toFixed(1)} s)`);
    const trialsStartMs = Date.now();

    // 2. Trials.
    const trials: TrialResult[] = [];
    for (const kind of TRIAL_KINDS) {
      for (let trial = 0; trial < settings.trials; trial++) {
        await failIfExited('during the trials');
        restoreLog.poll(); // consume calls that belong to nothing
        const sequence = settings.nextSequence();
        const change =
          kind === 'endpoint'
            ? prepareEndpointChange(settings.clients, trialServiceIndex(trial, settings.trials, settings.services), settings.endpointsPerService, sequence, settings.mode)
            : kind === 'service'
              ? prepareServiceAdd(settings.clients, settings.endpointsPerService, sequence, settings.mode)
              : prepareServiceUpdate(settings.clients, updateServiceIndex(trial, settings.trials, settings.services, settings.endpointsPerService), settings.endpointsPerService, settings.mode);
        undo.push(change);
        const pollable = change.marker.chain;
        const poller =
          // main.ts turns it off but for iptables-nft (in nftables mode a chain listing dumps every anonymous map's elements).
          settings.kernelPollMs > 0 && pollable !== undefined
            ? pollChain(node.netns.name, pollable, settings.kernelPollMs)
            : undefined;
        const writtenAt = await change.write();
        let applied: RestoreCall | undefined;
        let restores = 0;
        const deadline = writtenAt + settings.trialTimeoutMs;
        while (applied === undefined && Date.now() < deadline) {
          await sleep(20);
          for (const call of restoreLog.poll(change.marker.payloadText)) {
            if (!isIPv4Call(call) || call.startMs < writtenAt) continue;
            restores++;
            if (call.exitCode === 0 && call.matched) {
              applied = call;
              break;
            }
          }
        }
        let kernelSeenAt: number | undefined;
        if (poller !== undefined) {
          kernelSeenAt = await Promise.race([poller.seen, sleep(applied !== undefined ? 5_000 : 0).then(() => undefined)]);
          poller.cancel();
        }
        trials.push({
          kind,
          serviceIndex: change.serviceIndex,
          writtenAtMs: writtenAt,
          latencyMs: applied !== undefined ? applied.endMs - writtenAt : undefined,
          kernelLatencyMs: kernelSeenAt !== undefined ? kernelSeenAt - writtenAt : undefined,
          restoreMs: applied !== undefined ? applied.endMs - applied.startMs : undefined,
          payloadBytes: applied?.bytes,
          payloadLines: applied?.lines,
          restoresUntilApplied: restores,
        });
        if (applied === undefined) log(`  ${id}: ${kind} trial ${trial} timed out after ${settings.trialTimeoutMs} ms`);
        await sleep(settings.gapMs + Math.random() * 500);
      }
      const done = trials.filter((trial) => trial.kind === kind && trial.latencyMs !== undefined).map((trial) => trial.latencyMs as number);
      done.sort((a, b) => a - b);
      log(`  ${id}: ${kind} trials done, median ${Math.round(done[Math.floor(done.length / 2)] ?? Number.NaN)} ms`);
    }

    // 3. Process, metrics, logs.
    const final = sampleProcess(running.pid);
    let metrics: Map<string, number> = new Map();
    try {
      metrics = parseMetrics(await fetchText(`http://${node.nodeIP}:${METRICS_PORT}/metrics`));
    } catch (error: unknown) {
      log(`  ${id}: could not read /metrics: ${error instanceof Error ? error.message : String(error)}`);
    }
    const wallSeconds = (Date.now() - running.startedAtMs) / 1000;
    const cpuAtEnd = machineCpu();
    await running.stop();
    restoreLog.poll();
    const calls = restoreLog.calls;
    const pick = (name: string, filter = ''): number | undefined => metricSum(metrics, name, filter);
    const selected: Record<string, number | undefined> = {
      syncSecondsSum: pick('kubeproxy_sync_proxy_rules_duration_seconds_sum'),
      syncCount: pick('kubeproxy_sync_proxy_rules_duration_seconds_count'),
      fullSyncSecondsSum: pick('kubeproxy_sync_full_proxy_rules_duration_seconds_sum'),
      fullSyncCount: pick('kubeproxy_sync_full_proxy_rules_duration_seconds_count'),
      partialSyncSecondsSum: pick('kubeproxy_sync_partial_proxy_rules_duration_seconds_sum'),
      partialSyncCount: pick('kubeproxy_sync_partial_proxy_rules_duration_seconds_count'),
      networkProgrammingSecondsSum: pick('kubeproxy_network_programming_duration_seconds_sum'),
      networkProgrammingCount: pick('kubeproxy_network_programming_duration_seconds_count'),
      natRulesTotal: pick('kubeproxy_sync_proxy_rules_iptables_total', 'table="nat"'),
      filterRulesTotal: pick('kubeproxy_sync_proxy_rules_iptables_total', 'table="filter"'),
      restoreFailures: pick('kubeproxy_sync_proxy_rules_iptables_restore_failures_total'),
    };
    for (const phase of ['model', 'render', 'diff', 'restore']) {
      selected[`phase_${phase}_secondsSum`] = pick('kube_proxy_ts_sync_phase_duration_seconds_sum', `phase="${phase}"`);
      selected[`phase_${phase}_count`] = pick('kube_proxy_ts_sync_phase_duration_seconds_count', `phase="${phase}"`);
    }
    const syncLog = id === 'kube-proxy-ts' ? readSyncLog(logPath, trialsStartMs) : [];
    return {
      id,
      firstSync,
      chains,
      trials,
      process: {
        cpuSeconds: final?.cpuSeconds ?? Number.NaN,
        childrenCpuSeconds: final?.childrenCpuSeconds ?? Number.NaN,
        rssBytes: final?.rssBytes ?? Number.NaN,
        peakRssBytes: final?.peakRssBytes ?? Number.NaN,
        wallSeconds,
      },
      restoreCalls: {
        ipv4: calls.filter(isIPv4Call).length,
        ipv6: calls.filter((call) => !isIPv4Call(call)).length,
        failed: calls.filter((call) => call.exitCode !== 0).length,
      },
      metrics: selected,
      syncLog,
      machine: {
        busyPercent: Math.round((1000 * (cpuAtEnd.busy - cpuAtStart.busy)) / Math.max(1, cpuAtEnd.total - cpuAtStart.total)) / 10,
        loadAverage: loadAverage(),
      },
    };
  } finally {
    await proxy?.stop();
    await node.delete();
    if (undo.length > 0) {
      await mapWithConcurrency(undo, 8, async (change) => {
        try {
          await change.undo();
        } catch (error: unknown) {
          log(`  undo failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      });
    }
  }
}

/** What a run that never finished its first full sync reports: the timeout as a lower bound. */
function timedOutResult(
  id: ProxyId,
  running: RunningProxy,
  sample: ProcessSample | undefined,
  timeoutSeconds: number,
  restoreLog: RestoreLog,
  cpuAtStart: { busy: number; total: number },
): ProxyRunResult {
  const cpuAtEnd = machineCpu();
  const calls = restoreLog.calls;
  return {
    id,
    firstSync: {
      seconds: timeoutSeconds,
      timedOut: true,
      restoreSeconds: Number.NaN,
      restoreCalls: calls.filter(isIPv4Call).length,
      payloadBytes: Number.NaN,
      payloadLines: Number.NaN,
      cpuSeconds: sample?.cpuSeconds ?? Number.NaN,
      childrenCpuSeconds: sample?.childrenCpuSeconds ?? Number.NaN,
      peakRssBytes: sample?.peakRssBytes ?? Number.NaN,
    },
    chains: undefined,
    trials: [],
    process: {
      cpuSeconds: sample?.cpuSeconds ?? Number.NaN,
      childrenCpuSeconds: sample?.childrenCpuSeconds ?? Number.NaN,
      rssBytes: sample?.rssBytes ?? Number.NaN,
      peakRssBytes: sample?.peakRssBytes ?? Number.NaN,
      wallSeconds: (Date.now() - running.startedAtMs) / 1000,
    },
    restoreCalls: { ipv4: calls.filter(isIPv4Call).length, ipv6: calls.filter((call) => !isIPv4Call(call)).length, failed: calls.filter((call) => call.exitCode !== 0).length },
    metrics: {},
    syncLog: [],
    machine: {
      busyPercent: Math.round((1000 * (cpuAtEnd.busy - cpuAtStart.busy)) / Math.max(1, cpuAtEnd.total - cpuAtStart.total)) / 10,
      loadAverage: loadAverage(),
    },
  };
}

/**
 * kube-proxy-ts's "sync applied" lines: the first full sync, then every sync from the trials on
 * (pino JSON, one object per line).
 */
function readSyncLog(path: string, trialsStartMs: number): SyncLogEntry[] {
  const entries: SyncLogEntry[] = [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return entries;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{') || !line.includes('"sync applied"')) continue;
    try {
      const value = JSON.parse(line) as Record<string, unknown>;
      const entry: SyncLogEntry = {
        kind: String(value['kind']),
        timeMs: typeof value['time'] === 'string' ? Date.parse(value['time']) : Number(value['time']),
        durationMs: Number(value['durationMs']),
        phasesMs: (value['phasesMs'] ?? {}) as Record<string, number>,
        bytes: Number(value['bytes']),
        lines: Number(value['lines']),
      };
      if (entries.length === 0 ? entry.kind === 'full' : entry.timeMs >= trialsStartMs) entries.push(entry);
    } catch {
      // not one of ours
    }
  }
  return entries;
}
