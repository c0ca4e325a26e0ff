// The two proxies under test, started the same way: inside the node's network namespace, with the
// wrapper directory first in PATH, the same kubeconfig, node name, cluster CIDR, sync periods and
// metrics/healthz addresses. Also reads their CPU time and memory from /proc and their /metrics.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { KUBE_PROXY_HOST_NEUTRAL_FLAGS } from '../../test/harness/upstream-kube-proxy.js';
import type { Backend, BenchNode, ProxyMode } from './node-netns.js';

export type ProxyId = 'kube-proxy-ts' | 'kube-proxy';
export const PROXIES: readonly ProxyId[] = ['kube-proxy-ts', 'kube-proxy'];

export interface ProxyOptions {
  readonly kubeconfigPath: string;
  readonly nodeName: string;
  readonly clusterCIDR: string;
  readonly syncPeriod: string;
  readonly minSyncPeriod: string;
  readonly backend: Backend;
  readonly mode: ProxyMode;
  /** Path of dist/src/cli.js. */
  readonly agentEntry: string;
  readonly kubeProxyBinary: string;
  /** Extra node flags for kube-proxy-ts, e.g. ['--cpu-prof', '--cpu-prof-dir=...']. */
  readonly nodeFlags: readonly string[];
  /** kube-proxy-ts's --log-level (debug: every sync scheduler decision). */
  readonly logLevel: string;
}

export interface ProxyCommand {
  readonly command: string;
  readonly args: readonly string[];
}

export const METRICS_PORT = 10249;
export const HEALTHZ_PORT = 10256;

export function proxyCommand(id: ProxyId, node: BenchNode, options: ProxyOptions): ProxyCommand {
  // The same flags for both: kube-proxy-ts takes kube-proxy's names, so the settings cannot drift apart.
  const shared = [
    `--kubeconfig=${options.kubeconfigPath}`,
    `--hostname-override=${options.nodeName}`,
    `--cluster-cidr=${options.clusterCIDR}`,
    `--iptables-sync-period=${options.syncPeriod}`,
    `--iptables-min-sync-period=${options.minSyncPeriod}`,
    `--metrics-bind-address=${node.nodeIP}:${METRICS_PORT}`,
    `--healthz-bind-address=${node.nodeIP}:${HEALTHZ_PORT}`,
  ];
  switch (id) {
    case 'kube-proxy-ts':
      return {
        command: process.execPath,
        args: [
          ...options.nodeFlags,
          options.agentEntry,
          'run',
          `--proxy-mode=${options.mode}`,
          ...shared,
          `--iptables-backend=${options.backend}`,
          `--log-level=${options.logLevel}`,
        ],
      };
    case 'kube-proxy':
      return {
        command: options.kubeProxyBinary,
        args: [
          `--proxy-mode=${options.mode}`,
          ...shared,
          ...KUBE_PROXY_HOST_NEUTRAL_FLAGS,
          '--v=2',
        ],
      };
    default: {
      const never: never = id;
      throw new Error(`unknown proxy ${String(never)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Processes: every proxy we start is killed when this process exits, however it exits.

const live = new Set<ChildProcess>();
let hookInstalled = false;

/** Each proxy leads its own process group, so its iptables-restore children go with it. */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export function killAllProxiesNow(): void {
  for (const child of live) {
    if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
  }
  live.clear();
}

export interface RunningProxy {
  readonly id: ProxyId;
  readonly pid: number;
  /** Unix ms just before spawn. */
  readonly startedAtMs: number;
  readonly logPath: string;
  readonly exited: boolean;
  stop(graceMs?: number): Promise<void>;
}

export function startProxy(id: ProxyId, node: BenchNode, options: ProxyOptions, logPath: string): RunningProxy {
  if (!hookInstalled) {
    hookInstalled = true;
    process.on('exit', killAllProxiesNow);
  }
  const { command, args } = proxyCommand(id, node, options);
  const log = openSync(logPath, 'a');
  // `ip netns exec` and `env` both exec, so the child's pid is the proxy's own.
  const startedAtMs = Date.now();
  const child = spawn('ip', ['netns', 'exec', node.netns.name, 'env', `PATH=${node.wrapperDir}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, command, ...args], {
    stdio: ['ignore', log, log],
    detached: true,
  });
  closeSync(log);
  live.add(child);
  const exited = new Promise<void>((resolvePromise) => {
    child.once('exit', () => {
      live.delete(child);
      resolvePromise();
    });
    child.once('error', () => {
      live.delete(child);
      resolvePromise();
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${id}`);
  const pid = child.pid;
  return {
    id,
    pid,
    startedAtMs,
    logPath,
    get exited() {
      return child.exitCode !== null || child.signalCode !== null;
    },
    stop: async (graceMs = 10_000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Whatever it left running (an iptables-restore mid-way) goes too.
      killGroup(pid, 'SIGKILL');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// /proc

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

export interface ProcessSample {
  /** utime + stime of the proxy itself, seconds. */
  readonly cpuSeconds: number;
  /** cutime + cstime: reaped children (iptables-restore and friends), seconds. */
  readonly childrenCpuSeconds: number;
  readonly rssBytes: number;
  /** VmHWM: peak resident set size so far. */
  readonly peakRssBytes: number;
}

export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may contain spaces, start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const field = (n: number): number => Number(fields[n - 3] ?? 0);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return {
      cpuSeconds: (field(14) + field(15)) / CLOCK_TICKS,
      childrenCpuSeconds: (field(16) + field(17)) / CLOCK_TICKS,
      rssBytes: kb('VmRSS'),
      peakRssBytes: kb('VmHWM'),
    };
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

// ---------------------------------------------------------------------------------------------
// /metrics

export function fetchText(url: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolvePromise(Buffer.concat(chunks).toString('utf8')));
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

/** Prometheus text format -> `name{labels}` -> value (labels as printed). */
export function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const value = Number(line.slice(space + 1));
    if (!Number.isNaN(value)) values.set(line.slice(0, space), value);
  }
  return values;
}

/** Sum of every sample whose name is `name` (any labels) and whose labels contain `labelFilter`. */
export function metricSum(metrics: ReadonlyMap<string, number>, name: string, labelFilter = ''): number | undefined {
  let sum: number | undefined;
  for (const [key, value] of metrics) {
    const brace = key.indexOf('{');
    const keyName = brace === -1 ? key : key.slice(0, brace);
    if (keyName !== name) continue;
    if (labelFilter !== '' && !key.includes(labelFilter)) continue;
    sum = (sum ?? 0) + value;
  }
  return sum;
}
