// Runs the real Agent inside the test process against a real apiserver, with its iptables in a
// throwaway network namespace: config through parseRunArgs (the `run` command's flags), the real
// ExecNetfilter/Conntrack behind `ip netns exec`, a fresh Registry, logs in a temp file. Also the
// probes tests need: the namespace's iptables-save, convergence waits, metric samples, HTTP GETs.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destination } from 'pino';
import { Registry } from 'prom-client';
import { Agent, type AgentStatus } from '../../src/agent/agent.js';
import { iptablesBackend, type IptablesSyncReport as SyncReport } from '../../src/sync/iptables-proxier.js';
import { parseRunArgs, type AgentConfig, type LogLevel } from '../../src/config/index.js';
import { loadKubeConfig } from '../../src/k8s/kubeconfig.js';
import { createLogger } from '../../src/log.js';
import { NfAcct } from '../../src/netfilter/nfacct.js';
import { Sysctl, type SysctlAccess } from '../../src/netfilter/sysctl.js';
import { Conntrack } from '../../src/conntrack/tool.js';
import { ExecNetfilter, ipv6Binaries, nftBinaries, type IptablesBinaries } from '../../src/netfilter/exec.js';
import type { IPFamily } from '../../src/ip.js';
import type { Netfilter, RestoreResult } from '../../src/netfilter/netfilter.js';
import { servicePortChainNames, servicePortEndpointChainName, type ServicePortChainNames } from '../../src/render/names.js';
import type { TableName } from '../../src/netfilter/vocabulary.js';
import type { Protocol } from '../../src/model/types.js';
import { createNetns, type Netns } from './netns.js';
import { uniqueName } from './kube.js';

export interface InProcessAgentOptions {
  readonly kubeconfigPath: string;
  /** `--hostname-override`; default a unique `agent-node-xxxxxx`. */
  readonly nodeName?: string;
  /** Go durations, as on the command line. */
  readonly syncPeriod?: string;
  readonly minSyncPeriod?: string;
  readonly clusterCIDR?: string;
  /** More `run` flags (later ones win). */
  readonly extraArgs?: readonly string[];
  readonly watchdogMs?: number;
  readonly fullSyncPeriodMs?: number;
  readonly binaries?: IptablesBinaries;
  /** Program this network namespace (left in place on stop) instead of a fresh one. */
  readonly netns?: Netns;
  /** How many restores and sync reports to remember (0 keeps none: memory measurements). Default 50. */
  readonly historyLimit?: number;
  /** The namespace's sysctls (route_localnet for localhost NodePorts); default the namespace's own,
   * through `ip netns exec` (never the host's). */
  readonly sysctl?: SysctlAccess;
  /** The agent's proxiers (`run` picks both where ip6tables works); default IPv4 only, as most
   * tests look at one family. IPv6 rules go to the namespace's ip6tables. */
  readonly families?: readonly IPFamily[];
  /** The `conntrack` binary the agent runs (a missing one for fault tests); default `conntrack`. */
  readonly conntrackBinary?: string;
}

export interface RecordedRestore {
  readonly payload: string;
  readonly result: RestoreResult;
  /** When the restore started and ended (ms since the epoch). */
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface MetricSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface InProcessAgent {
  readonly agent: Agent<SyncReport>;
  readonly config: AgentConfig;
  readonly netns: Netns;
  readonly nodeName: string;
  readonly logPath: string;
  /** Every restore the agent sent (newest last, bounded by historyLimit). */
  readonly restores: readonly RecordedRestore[];
  /** Every distinct sync report seen (polled every 10 ms; newest last, bounded by historyLimit). */
  readonly reports: readonly SyncReport[];
  status(): AgentStatus<SyncReport>;
  /** The namespace's `iptables-save -t <table>` (`ip6tables-save` for IPv6), as the kernel prints it. */
  save(table: TableName, family?: IPFamily): Promise<string>;
  kernel(table: TableName, family?: IPFamily): Promise<KernelTable>;
  /** Polls `check` until it returns something other than undefined/false; throws with the agent's log tail at the deadline. */
  waitFor<T>(description: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs?: number): Promise<T>;
  /** Samples from the agent's registry, histogram parts named `<name>_count` etc.; labels match when they are a subset. */
  samples(name: string, labels?: Readonly<Record<string, string>>): Promise<MetricSample[]>;
  /** The sum of the matching samples (0 when none). */
  metric(name: string, labels?: Readonly<Record<string, string>>): Promise<number>;
  logTail(lines?: number): string;
  /** Stops the agent, deletes the namespace and the log (kept with KUBE_PROXY_TS_KEEP=1). Idempotent. */
  stop(): Promise<void>;
}

export interface KernelTable {
  readonly chains: ReadonlySet<string>;
  /** `-A ...` lines in the order printed. */
  readonly rules: readonly string[];
}

/**
 * Rules grouped per chain (chains sorted by name, counters aside), the rules of `unordered` chains
 * sorted: what two states must agree on when only those chains' order may differ (iptables-nft may
 * print chains in another order after re-creation; dispatch chains hold rules in arrival order).
 */
export function rulesByChain(table: KernelTable, unordered: ReadonlySet<string>): Record<string, string[]> {
  const grouped: Record<string, string[]> = {};
  for (const chain of [...table.chains].sort()) grouped[chain] = [];
  for (const rule of table.rules) {
    const chain = rule.split(' ')[1] ?? '';
    (grouped[chain] ??= []).push(rule);
  }
  for (const chain of unordered) grouped[chain]?.sort();
  return grouped;
}

export function parseSave(text: string): KernelTable {
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] ?? '');
    else if (line.startsWith('-A ')) rules.push(line);
  }
  return { chains, rules };
}

/** Chains of `table` whose name starts with `prefix`. */
export function chainsWithPrefix(table: KernelTable, prefix: string): Set<string> {
  return new Set([...table.chains].filter((chain) => chain.startsWith(prefix)));
}

/** kube-proxy's chain names for one service port (`ns/name:portName`). */
export function serviceChainNames(namespace: string, name: string, portName: string, protocol: Protocol = 'TCP'): ServicePortChainNames {
  return servicePortChainNames(portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`, protocol);
}

export function endpointChainName(namespace: string, name: string, portName: string, ip: string, port: number, protocol: Protocol = 'TCP'): string {
  return servicePortEndpointChainName(portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`, protocol, ip, port);
}

/** Chains a restore payload declares (so flushes and rewrites), deletes or edits rules in. */
export function payloadChains(payload: string): { readonly written: Set<string>; readonly deleted: Set<string>; readonly edited: Set<string> } {
  const written = new Set<string>();
  const deleted = new Set<string>();
  const edited = new Set<string>();
  for (const line of payload.split('\n')) {
    if (line.startsWith(':')) written.add(line.slice(1).split(' ')[0] ?? '');
    else if (line.startsWith('-X ')) deleted.add(line.split(' ')[1] ?? '');
    else if (/^-[ADIR] /.test(line)) edited.add(line.split(' ')[1] ?? '');
  }
  return { written, deleted, edited };
}

/** Parses the Prometheus text format (enough of it for our own /metrics). */
export function parsePrometheusText(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] ?? ''] = pair[2] ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[4]) });
  }
  return samples;
}

export function matching(samples: readonly MetricSample[], name: string, labels: Readonly<Record<string, string>> = {}): MetricSample[] {
  return samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
}

export function httpGet(url: string, timeoutMs = 5_000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: 'GET', agent: false, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url}: timeout after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}

/** Polls until `check` yields a value; convergence with a generous deadline, not a timing assertion. */
export async function waitUntil<T>(
  description: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  context: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = 'condition not met';
    } catch (error: unknown) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      const extra = context();
      throw new Error(`timed out after ${timeoutMs} ms waiting until ${description} (last: ${last})${extra === '' ? '' : `\n${extra}`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Delegates to the real netfilter and remembers what was restored. */
class RecordingNetfilter implements Netfilter {
  readonly restores: RecordedRestore[] = [];
  constructor(
    private readonly inner: Netfilter,
    private readonly limit: number,
  ) {}
  save(table: TableName): ReturnType<Netfilter['save']> {
    return this.inner.save(table);
  }
  chainExists(table: TableName, chain: string): ReturnType<Netfilter['chainExists']> {
    return this.inner.chainExists(table, chain);
  }
  async restore(payload: string, options: { readonly noFlush: boolean }): Promise<RestoreResult> {
    const startedAt = Date.now();
    const result = await this.inner.restore(payload, options);
    if (this.limit > 0) {
      this.restores.push({ payload, result, startedAt, endedAt: Date.now() });
      if (this.restores.length > this.limit) this.restores.shift();
    }
    return result;
  }
}

/**
 * Starts an Agent for a fresh node network namespace and resolves once its first sync is applied.
 * The caller must `stop()` it (in afterAll/finally).
 */
export async function startAgentInProcess(options: InProcessAgentOptions): Promise<InProcessAgent> {
  const nodeName = options.nodeName ?? uniqueName('agent-node');
  const args = [
    '--hostname-override', nodeName,
    '--kubeconfig', options.kubeconfigPath,
    '--cluster-cidr', options.clusterCIDR ?? '10.244.0.0/16',
    '--sync-period', options.syncPeriod ?? '30s',
    '--min-sync-period', options.minSyncPeriod ?? '100ms',
    '--metrics-bind-address', '127.0.0.1:0',
    '--healthz-bind-address', '127.0.0.1:0',
    '--log-level', (process.env['KUBE_PROXY_TS_TEST_LOG'] as LogLevel | undefined) ?? 'info',
    ...(options.extraArgs ?? []),
  ];
  // No environment: the test process carries KUBE_PROXY_TS_* variables of its own.
  const parsed = parseRunArgs(args, {}, (path) => readFileSync(path, 'utf8'), 'unused-hostname');
  if (parsed.kind !== 'ok') {
    throw new Error(`parseRunArgs rejected ${args.join(' ')}: ${parsed.kind === 'invalid' ? parsed.errors.map((error) => error.message).join('; ') : 'help'}`);
  }
  const { config } = parsed;
  const kube = loadKubeConfig({ kubeconfigPath: options.kubeconfigPath, env: {} });
  if (!kube.ok) throw new Error(`kubeconfig ${options.kubeconfigPath}: ${kube.detail}`);

  const keep = process.env['KUBE_PROXY_TS_KEEP'] === '1';
  const logDir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-agent-'));
  const logPath = join(logDir, 'agent.log');
  const logger = createLogger({ level: config.logLevel, destination: destination({ dest: logPath, sync: true }) });

  const netns = options.netns ?? (await createNetns('agent'));
  const ownsNetns = options.netns === undefined;
  const binaries = options.binaries ?? nftBinaries;
  const real = new ExecNetfilter({ binaries, prefix: netns.prefix });
  const historyLimit = options.historyLimit ?? 50;
  const netfilter = new RecordingNetfilter(real, historyLimit);
  const real6 = new ExecNetfilter({ binaries: ipv6Binaries(binaries), prefix: netns.prefix });
  // Sync reports, every one in order, so a test can find the one that applied its change even if
  // later syncs follow.
  const reports: SyncReport[] = [];
  const recordReport = (report: SyncReport): void => {
    if (historyLimit === 0) return;
    reports.push(report);
    if (reports.length > historyLimit) reports.shift();
  };
  const agent = new Agent({
    onSyncReport: recordReport,
    config,
    connection: kube.connection,
    ...(options.families !== undefined ? { families: options.families } : {}),
    backend: iptablesBackend({
      netfilter,
      ipv6Netfilter: new RecordingNetfilter(real6, historyLimit),
      ...(options.fullSyncPeriodMs !== undefined ? { fullSyncPeriodMs: options.fullSyncPeriodMs } : {}),
    }),
    conntrack: new Conntrack(undefined, netns.prefix, options.conntrackBinary),
    nfacct: new NfAcct(undefined, netns.prefix),
    sysctl: options.sysctl ?? new Sysctl(undefined, netns.prefix),
    logger,
    registry: new Registry(),
    ...(options.watchdogMs !== undefined ? { watchdogMs: options.watchdogMs } : {}),
  });

  const logTail = (lines = 30): string => {
    try {
      return `agent log (${logPath}), last lines:\n${readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')}`;
    } catch {
      return '(no agent log)';
    }
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await agent.stop();
    } finally {
      if (ownsNetns) await netns.delete();
      if (!keep) rmSync(logDir, { recursive: true, force: true });
      else process.stderr.write(`agent log kept: ${logPath}\n`);
    }
  };

  const save = async (table: TableName, family: IPFamily = 'IPv4'): Promise<string> => {
    const saved = await (family === 'IPv4' ? real : real6).save(table);
    if (!saved.ok) throw new Error(`${family === 'IPv4' ? 'iptables' : 'ip6tables'}-save -t ${table} in ${netns.name}: ${saved.message}`);
    return saved.text;
  };

  const samples = async (name: string, labels: Readonly<Record<string, string>> = {}): Promise<MetricSample[]> => {
    const all: MetricSample[] = [];
    for (const metric of await agent.registry.getMetricsAsJSON()) {
      for (const value of metric.values) {
        const sampleName = (value as { metricName?: string }).metricName ?? metric.name;
        const sampleLabels = Object.fromEntries(Object.entries(value.labels).map(([key, label]) => [key, String(label)]));
        all.push({ name: sampleName, labels: sampleLabels, value: value.value });
      }
    }
    return matching(all, name, labels);
  };

  try {
    await agent.start();
    await waitUntil('the first sync is applied', async () => {
      const settled = await Promise.race([agent.ready.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 100))]);
      return settled;
    }, 120_000, logTail);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    agent,
    config,
    netns,
    nodeName,
    logPath,
    restores: netfilter.restores,
    reports,
    status: () => agent.status(),
    save,
    kernel: async (table, family) => parseSave(await save(table, family)),
    waitFor: (description, check, timeoutMs = 60_000) => waitUntil(description, check, timeoutMs, () => logTail()),
    samples,
    metric: async (name, labels) => (await samples(name, labels)).reduce((sum, sample) => sum + sample.value, 0),
    logTail,
    stop,
  };
}
