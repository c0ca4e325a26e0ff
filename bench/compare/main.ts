// `npm run bench` (second step): kube-proxy-ts side by side with upstream kube-proxy (iptables
// mode) on one real apiserver. For each scale it loads N Services x M endpoints, then runs each
// proxy in its own fresh node namespace, one after the other, and measures first full sync,
// network programming latency (endpoint change, Service add, Service update), restore input per
// change, CPU and peak RSS. Prints one table per scale and writes bench/results/compare.json and
// bench/results/latency.svg.
//
//   npx tsx bench/compare/main.ts --scales 100,1000,5000,10000 [--endpoints 10] [--trials N]
//     [--backend nft|legacy] [--proxies kube-proxy-ts,kube-proxy] [--gap-ms 2000]
//     [--kernel-poll-ms 20] [--concurrency 32] [--out bench/results] [--log-level info|debug]
//     [--no-build] [--cpu-prof] [--keep]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { startControlPlane, type ControlPlane } from '../../test/harness/control-plane.js';
import { kubeClients } from '../../test/harness/kube.js';
import { kubeVersion, repoRoot } from '../../test/harness/versions.js';
import { HOST_IP, NODE_IP, type Backend, type ProxyMode } from './node-netns.js';
import { proxyKubeconfig } from './kubeconfig.js';
import { PROXIES, killAllProxiesNow, type ProxyId, type ProxyOptions } from './proxies.js';
import { evaluateTargets, latencySvg, nftablesTargets, latencyTargets, phaseSplit, scaleTable, summarizeRun, targetsTable, type ScaleResult } from './report.js';
import { coldStart } from './cold-start.js';
import { runProxy } from './run-proxy.js';
import { CLUSTER_CIDR, NODE_NAME, createBase, loadServices, summarize } from './workload.js';

interface Options {
  readonly scales: readonly number[];
  readonly endpointsPerService: number;
  readonly trials: number | undefined;
  readonly backend: Backend;
  readonly mode: ProxyMode;
  readonly proxies: readonly ProxyId[];
  readonly gapMs: number;
  readonly kernelPollMs: number;
  readonly concurrency: number;
  readonly outDir: string;
  readonly build: boolean;
  readonly cpuProfile: boolean;
  readonly keep: boolean;
  readonly firstSyncTimeoutMs: number;
  readonly firstSyncStarts: number;
  readonly syncPeriod: string;
  readonly minSyncPeriod: string;
  readonly logLevel: string;
}

/** Where upstream kube-proxy can finish a first sync at 10k Services (see --help). */
const DEFAULT_BACKEND: Backend = 'legacy';

const usage = `Usage: npx tsx bench/compare/main.ts [flags]
  --scales LIST        Service counts, comma-separated (default 100,1000,5000,10000)
  --endpoints M        endpoints per Service (default 10)
  --trials N           trials of each kind per proxy (default 20 / 30 / 50 for <=1k / <=5k / larger)
  --backend B          iptables backend for both proxies: legacy (default) or nft. Upstream kube-proxy's
                       first sync on iptables-nft 1.8.9 grows faster than quadratically (> 16 min at 5k);
                       results of a non-default backend go to compare-<backend>.json / latency-<backend>.svg
  --proxy-mode M       iptables (default) or nftables, for both proxies; nftables results go to
                       compare-nftables.json / latency-nftables.svg (--backend then plays no part)
  --first-sync-timeout-min M  give up on a proxy's first sync after M minutes (default 30; not fatal)
  --first-sync-starts N   first syncs per proxy and scale, compared by their median (default 3: the
                       measured run plus N-1 extra starts, alternating the proxies)
  --proxies LIST       default kube-proxy-ts,kube-proxy
  --gap-ms MS          pause after each trial, plus up to 500 ms at random (default 2000: at least
                       burst x min sync period, so every trial starts on a full token bucket, as a
                       lone change on a quiet node; a Service add takes two tokens)
  --kernel-poll-ms MS  interval of the independent kernel poll, iptables-nft only; 0 = off (default 20; off
                       in nftables mode: listing one chain makes nft 1.0.6 dump the elements of every
                       anonymous map first, 10-30 s per probe at 10k, a load on the machine under test)
  --concurrency N      apiserver requests in flight while loading (default 32)
  --out DIR            results directory (default bench/results)
  --log-level L        kube-proxy-ts's --log-level (default info; debug logs every sync scheduler
                       decision, kept in the work dir with --keep)
  --no-build           do not run npm run build first
  --cpu-prof           run kube-proxy-ts under node --cpu-prof (profiles kept in the work dir)
  --keep               keep the work dir (logs, kubeconfig)`;

/** The kernel poll runs with iptables-nft only (see --kernel-poll-ms); 0 = off. */
function effectiveKernelPollMs(options: Options): number {
  return options.backend === 'nft' && options.mode !== 'nftables' ? options.kernelPollMs : 0;
}

function parseOptions(argv: readonly string[]): Options {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}\n${usage}`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (['no-build', 'cpu-prof', 'keep'].includes(name)) {
      flags.add(name);
      continue;
    }
    const value = inline ?? argv[++index];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    values.set(name, value);
  }
  const known = new Set([
    'scales', 'endpoints', 'trials', 'backend', 'proxy-mode', 'proxies', 'gap-ms', 'kernel-poll-ms', 'concurrency', 'out', 'sync-period', 'min-sync-period',
    'first-sync-timeout-min', 'first-sync-starts', 'log-level',
  ]);
  for (const name of values.keys()) if (!known.has(name)) throw new Error(`unknown flag --${name}\n${usage}`);
  const integer = (name: string, fallback: number): number => {
    const text = values.get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 0) throw new Error(`--${name}: not a non-negative integer: ${text}`);
    return value;
  };
  const scales = (values.get('scales') ?? '100,1000,5000,10000').split(',').map((text) => Number(text.trim()));
  if (scales.some((scale) => !Number.isInteger(scale) || scale < 1)) throw new Error(`--scales: ${values.get('scales')}`);
  const backend = values.get('backend') ?? DEFAULT_BACKEND;
  if (backend !== 'nft' && backend !== 'legacy') throw new Error(`--backend: nft or legacy, not ${backend}`);
  const mode = values.get('proxy-mode') ?? 'iptables';
  if (mode !== 'iptables' && mode !== 'nftables') throw new Error(`--proxy-mode: iptables or nftables, not ${mode}`);
  const proxies = (values.get('proxies') ?? PROXIES.join(',')).split(',').map((text) => text.trim());
  for (const proxy of proxies) if (!PROXIES.includes(proxy as ProxyId)) throw new Error(`--proxies: unknown ${proxy}`);
  return {
    scales: [...scales].sort((a, b) => a - b),
    endpointsPerService: integer('endpoints', 10),
    trials: values.has('trials') ? integer('trials', 0) : undefined,
    backend,
    mode,
    proxies: proxies as ProxyId[],
    gapMs: integer('gap-ms', 2000),
    kernelPollMs: integer('kernel-poll-ms', 20),
    concurrency: integer('concurrency', 32),
    outDir: resolve(values.get('out') ?? join(repoRoot, 'bench', 'results')),
    build: !flags.has('no-build'),
    cpuProfile: flags.has('cpu-prof'),
    keep: flags.has('keep'),
    firstSyncTimeoutMs: integer('first-sync-timeout-min', 30) * 60_000,
    firstSyncStarts: Math.max(1, integer('first-sync-starts', 3)),
    syncPeriod: values.get('sync-period') ?? '30s',
    minSyncPeriod: values.get('min-sync-period') ?? '1s',
    logLevel: values.get('log-level') ?? 'info',
  };
}

function trialsFor(services: number, options: Options): number {
  if (options.trials !== undefined) return options.trials;
  return services <= 1000 ? 20 : services <= 5000 ? 30 : 50;
}

function log(message: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function commandOutput(command: string, args: readonly string[]): string {
  try {
    return execFileSync(command, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return 'unknown';
  }
}

function cpuTimes(): { idle: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total };
}

/**
 * Waits until the machine is quiet (CPU >= 85% idle over 3 s, at most 90 s): after a bulk load,
 * etcd and the apiserver keep working for a while, and whichever proxy ran first would pay for it.
 */
async function settle(): Promise<string> {
  const started = Date.now();
  for (;;) {
    const before = cpuTimes();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = cpuTimes();
    const idle = (after.idle - before.idle) / Math.max(1, after.total - before.total);
    if (idle >= 0.85 || Date.now() - started > 90_000) return `${Math.round(idle * 100)}% idle after ${((Date.now() - started) / 1000).toFixed(0)} s`;
  }
}

function loadAverage(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, iptables)');

  const workDir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-compare-'));
  let controlPlane: ControlPlane | undefined;
  const cleanupNow = (): void => {
    killAllProxiesNow();
    if (!options.keep) rmSync(workDir, { recursive: true, force: true });
  };
  process.on('exit', cleanupNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      log(`${signal}: cleaning up`);
      // 'exit' hooks then stop the proxies, the control plane and delete the namespaces.
      process.exit(130);
    });
  }

  if (options.build) {
    log('npm run build');
    try {
      execFileSync('npm', ['run', '--silent', 'build'], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error: unknown) {
      const stderr = (error as { stdout?: Buffer }).stdout?.toString() ?? '';
      log(`warning: npm run build reported errors; using what it emitted. ${stderr.slice(0, 500)}`);
    }
  }
  const agentEntry = join(repoRoot, 'dist', 'src', 'cli.js');
  if (!existsSync(agentEntry)) throw new Error(`${agentEntry} missing: run npm run build`);
  mkdirSync(options.outDir, { recursive: true });

  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMB: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    iptables: commandOutput(`iptables-${options.backend}`, ['--version']),
    nft: commandOutput('nft', ['--version']),
    node: process.version,
    kubeVersion,
    loadAverageAtStart: loadAverage(),
    loadAverageAtEnd: [] as number[],
  };
  log(`machine: ${machine.cpus} CPUs, load ${machine.loadAverageAtStart.join(' ')}; ${options.mode === 'nftables' ? `nftables mode (${machine.nft})` : `backend ${options.backend} (${machine.iptables})`}`);

  const suffix = options.mode === 'nftables' ? '-nftables' : options.backend === DEFAULT_BACKEND ? '' : `-${options.backend}`;
  const jsonPath = join(options.outDir, `compare${suffix}.json`);
  const svgPath = join(options.outDir, `latency${suffix}.svg`);
  const results: ScaleResult[] = [];
  const writeResults = (): void => {
    machine.loadAverageAtEnd = loadAverage();
    const largest = results[results.length - 1];
    const document = {
      generatedAt: new Date().toISOString(),
      machine,
      settings: {
        backend: options.backend,
        mode: options.mode,
        syncPeriod: options.syncPeriod,
        minSyncPeriod: options.minSyncPeriod,
        gapMs: options.gapMs,
        kernelPollMs: effectiveKernelPollMs(options),
        concurrency: options.concurrency,
        proxies: options.proxies,
      },
      method: {
        firstSync: 'process start -> exit of the first successful IPv4 iptables-restore whose input programs the last Service (DNAT to its last endpoint); confirmed in the kernel afterwards',
        changes:
          'endpoint: endpoint #1 of an existing Service replaced (EndpointSlice update); service: a ClusterIP Service created, then its EndpointSlice; update: an existing Service switched to sessionAffinity ClientIP (Service update, no new chain)',
        latency:
          'Date.now() just before the apiserver write -> end time of the first successful IPv4 iptables-restore started after the write whose input holds the change (--to-destination <new endpoint>), taken by a wrapper script in PATH ($EPOCHREALTIME after the real binary exits). With nft, an independent poll (nft list chain ip nat <new chain> every kernelPollMs inside the namespace) reports kernelLatencyMs.',
        payload: 'bytes and lines of that iptables-restore input, tee\'d by the same wrapper for both proxies',
        nftables: 'with --proxy-mode nftables, the same for `nft -f` transactions (an nft wrapper in PATH); markers: `dnat to <endpoint>`, `ip saddr @affinity-... goto endpoint-...`, and for the first sync the last ClusterIP Service\'s `service-ips` element',
        cpu: '/proc/<pid>/stat utime+stime (self) and cutime+cstime (reaped children: iptables-restore, wrappers)',
        memory: 'VmHWM from /proc/<pid>/status',
        phases: 'kube-proxy-ts "sync applied" log lines (phasesMs)',
      },
      scales: results.map((scale) => ({
        ...scale,
        summary: Object.fromEntries(Object.entries(scale.runs).map(([proxy, run]) => [proxy, { ...summarizeRun(run), phases: proxy === 'kube-proxy-ts' ? phaseSplit(run) : undefined }])),
      })),
      targets: options.mode === 'nftables' ? nftablesTargets(results) : largest !== undefined ? evaluateTargets(largest) : [],
      latencyTargets: latencyTargets(results),
    };
    writeFileSync(jsonPath, `${JSON.stringify(document, null, 2)}\n`);
    writeFileSync(svgPath, latencySvg(results));
  };

  try {
    log('starting etcd + kube-apiserver');
    controlPlane = await startControlPlane({ bindAddress: '0.0.0.0' });
    log(`control plane up in ${controlPlane.startup.totalMs} ms at ${controlPlane.server}`);
    const clients = kubeClients(controlPlane.kubeconfigPath);
    const kubeconfigPath = join(workDir, 'proxy-kubeconfig');
    proxyKubeconfig(controlPlane, kubeconfigPath);
    await createBase(clients, NODE_IP);

    const proxyOptions: ProxyOptions = {
      kubeconfigPath,
      nodeName: NODE_NAME,
      clusterCIDR: CLUSTER_CIDR,
      syncPeriod: options.syncPeriod,
      minSyncPeriod: options.minSyncPeriod,
      backend: options.backend,
      mode: options.mode,
      agentEntry,
      kubeProxyBinary: controlPlane.binaries.kubeProxy,
      nodeFlags: options.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${join(workDir, 'cpu-profiles')}`] : [],
      logLevel: options.logLevel,
    };
    if (options.cpuProfile) log(`cpu profiles of kube-proxy-ts go to ${join(workDir, 'cpu-profiles')} (kept with --keep)`);

    let sequence = 0;
    let loaded = 0;
    for (const services of options.scales) {
      log(`loading Services ${loaded}..${services - 1} (${options.endpointsPerService} endpoints each, ${options.concurrency} in flight)`);
      const loadSeconds = await loadServices(clients, loaded, services, options.endpointsPerService, options.concurrency, log);
      log(`  loaded in ${loadSeconds.toFixed(1)} s (${Math.round((2 * (services - loaded)) / loadSeconds)} objects/s)`);
      loaded = services;
      const scale: ScaleResult = {
        services,
        endpointsPerService: options.endpointsPerService,
        workload: summarize(services, options.endpointsPerService),
        loadSeconds,
        runs: {},
      };
      results.push(scale);
      const trials = trialsFor(services, options);
      for (const id of options.proxies) {
        log(`${id}: ${services} Services, ${trials} trials of each kind (machine ${await settle()})`);
        scale.runs[id] = await runProxy({
          id,
          services,
          endpointsPerService: options.endpointsPerService,
          clients,
          proxy: proxyOptions,
          backend: options.backend,
          mode: options.mode,
          workDir,
          trials,
          gapMs: options.gapMs,
          firstSyncTimeoutMs: options.firstSyncTimeoutMs,
          trialTimeoutMs: Math.max(60_000, services * 12),
          kernelPollMs: effectiveKernelPollMs(options),
          nextSequence: () => sequence++,
          log,
        });
        writeResults();
      }
      // More first syncs, alternating the proxies, for a median that one noisy start cannot decide.
      for (let start = 1; start < options.firstSyncStarts; start++) {
        for (const id of start % 2 === 1 ? [...options.proxies].reverse() : options.proxies) {
          const run = scale.runs[id];
          if (run === undefined || run.firstSync.timedOut) continue;
          await settle();
          const sample = await coldStart({
            id, services, endpointsPerService: options.endpointsPerService, proxy: proxyOptions, backend: options.backend, mode: options.mode,
            workDir, timeoutMs: Math.max(120_000, run.firstSync.seconds * 3000), sample: start,
          });
          log(`  ${id}: extra first sync ${start}: ${sample.seconds?.toFixed(2) ?? 'timed out'} s (${sample.restoreSeconds?.toFixed(2) ?? '-'} s in iptables-restore)`);
          if (sample.seconds !== undefined) {
            scale.runs[id] = { ...run, extraFirstSyncs: [...(run.extraFirstSyncs ?? []), { seconds: sample.seconds, restoreSeconds: sample.restoreSeconds ?? Number.NaN }] };
          }
        }
        writeResults();
      }
      process.stdout.write(`\n${scaleTable(scale)}\n\n`);
    }
    const largest = results[results.length - 1];
    if (options.mode === 'nftables') process.stdout.write(`nftables mode targets (issue 14):\n${targetsTable(nftablesTargets(results))}\n`);
    else if (largest !== undefined) process.stdout.write(`Targets at ${largest.services} Services:\n${targetsTable(evaluateTargets(largest))}\n`);
    process.stdout.write(`Latency per scale and kind of change (p99):\n${targetsTable(latencyTargets(results))}\n`);
    writeResults();
    log(`wrote ${jsonPath} and ${svgPath}`);
    if (options.keep) log(`work dir kept: ${workDir}`);
  } finally {
    killAllProxiesNow();
    await controlPlane?.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/compare failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
