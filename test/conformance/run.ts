// `npm run conformance -- [--proxy kube-proxy-ts|kube-proxy] [--mode iptables|nftables] [--focus REGEX] [--skip REGEX]`
// Runs upstream's e2e binary (e2e.test of the pinned release) against the local one-node cluster
// (hack/local-cluster.sh) with the chosen proxy in the chosen mode: brings the cluster up if needed,
// installs the proxy (kube-proxy-ts from the Dockerfile's image through `kubectl apply -f manifests/`,
// or the pinned kube-proxy binary), runs the specs, writes the JUnit report and a JSON summary
// (test/conformance/results/<proxy>.json unless --out), and leaves the cluster as it found it.
// Exits 0 when no spec failed, 1 when one did, 2 on a usage error.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localClusterEnv } from '../harness/local-cluster.js';
import { kubeVersion, repoRoot } from '../harness/versions.js';
import { parseJUnit, type SuiteSummary } from './junit.js';

const clusterScript = join(repoRoot, 'hack', 'local-cluster.sh');

export const proxies = ['kube-proxy-ts', 'kube-proxy'] as const;
export type ProxyName = (typeof proxies)[number];
export const proxyModes = ['iptables', 'nftables'] as const;
export type ProxyMode = (typeof proxyModes)[number];

/** The 17 `[sig-network] Services ... [Conformance]` specs. */
export const conformanceFocus = String.raw`\[sig-network\] Services.*\[Conformance\]`;
/**
 * The wider `[sig-network] Services` set a one-node cluster without a cloud provider can run:
 * no cloud load balancer, nothing disruptive or serial, no other feature gates or families.
 */
export const widerFocus = String.raw`\[sig-network\] Services`;
export const widerSkip = String.raw`\[Disruptive\]|\[Serial\]|\[Slow\]|\[Feature:|LoadBalancer|ESIPP|GCE|AWS|Azure|IPv6|DualStack|should be able to up and down services|should work after restarting`;
/**
 * Upstream's dual-stack specs that one node runs (`[sig-network] [Feature:IPv6DualStack]`,
 * test/e2e/network/dual_stack.go): the node's and pods' addresses of both families, a pod reached
 * on each, Services of every family policy and order. Left out: the 13 "Granular Checks: Services
 * Secondary IP Family" specs (pod/node/endpoint to Service over the secondary family), because
 * their setup (e2e/framework/network NetworkingTestConfig.setup) skips itself on fewer than 2
 * nodes, after ~30 s each of starting pods; SCTP (a feature and kernel module of its own).
 * Nothing in the set is Slow, Serial or Disruptive today.
 */
export const dualStackFocus = String.raw`\[Feature:IPv6DualStack\]`;
export const dualStackSkip = String.raw`Granular Checks|\[Feature:SCTPConnectivity\]|\[Disruptive\]|\[Serial\]|\[Slow\]`;

export interface ConformanceOptions {
  readonly proxy: ProxyName;
  /** The proxy's mode (default iptables). */
  readonly mode?: ProxyMode;
  readonly focus: string;
  readonly skip?: string;
  /** Where the JSON summary goes. */
  readonly out: string;
  /** Parallel ginkgo processes are not used: one node, two cores. Extra e2e.test flags. */
  readonly extraArgs?: readonly string[];
  /** Called with each line e2e.test prints (default: stderr). */
  readonly log?: (line: string) => void;
}

export interface ConformanceRun extends SuiteSummary {
  readonly proxy: ProxyName;
  /** Absent in runs recorded before the mode was chosen: iptables. */
  readonly mode?: ProxyMode;
  readonly kubeVersion: string;
  readonly focus: string;
  readonly skip: string | null;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly exitCode: number;
}

interface Outcome {
  readonly code: number;
  readonly stdout: string;
}

function run(command: string, args: readonly string[], log?: (line: string) => void): Promise<Outcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let pending = '';
    const onLine = (chunk: string): void => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) (log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (log) onLine(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', onLine);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (pending !== '') onLine('\n');
      resolvePromise({ code: code ?? (signal !== null ? 137 : 1), stdout });
    });
  });
}

async function cluster(args: readonly string[], log?: (line: string) => void): Promise<string> {
  const result = await run('bash', [clusterScript, ...args], log);
  if (result.code !== 0) throw new Error(`hack/local-cluster.sh ${args.join(' ')} exited ${result.code}`);
  return result.stdout;
}

/** Whether the cluster's apiserver answers (status prints it). */
async function clusterIsUp(): Promise<boolean> {
  const result = await run('bash', [clusterScript, 'status'], () => undefined);
  return result.code === 0 && /^kube-apiserver: running/m.test(result.stdout) && /^kubelet: running/m.test(result.stdout);
}

export async function runConformance(options: ConformanceOptions): Promise<ConformanceRun> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const wasUp = await clusterIsUp();
  const previousProxy = wasUp ? (await cluster(['proxy'])).trim() : 'none';
  const previousMode = wasUp ? (await cluster(['proxy-mode'])).trim() : 'none';
  const mode = options.mode ?? 'iptables';
  if (!wasUp) await cluster(['up'], log);
  const e2eDir = (await run('bash', [join(repoRoot, 'hack', 'e2e-binaries.sh')], log)).stdout.trim().split('\n').pop() ?? '';
  const env = await localClusterEnv();
  const reportDir = mkdtempSync(join(tmpdir(), `kpts-conformance-${options.proxy}-`));
  const started = Date.now();
  let code = 1;
  try {
    await cluster(['install-proxy', options.proxy, '--mode', mode], log);
    const args = [
      `--net=/run/netns/${env.netns}`,
      '--',
      'env',
      `PATH=${env.k8sBin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      join(e2eDir, 'e2e.test'),
      `--kubeconfig=${env.kubeconfig}`,
      '--provider=local',
      `--report-dir=${reportDir}`,
      `--ginkgo.focus=${options.focus}`,
      ...(options.skip ? [`--ginkgo.skip=${options.skip}`] : []),
      '--ginkgo.no-color',
      '--ginkgo.timeout=2h',
      '--dump-logs-on-failure=false',
      ...(options.extraArgs ?? []),
    ];
    log(`conformance: e2e.test with ${options.proxy} (${mode} mode), focus ${options.focus}${options.skip ? `, skip ${options.skip}` : ''}`);
    code = (await run('nsenter', args, log)).code;
  } finally {
    // Leave the cluster as it was found: down when it was down, else the proxy (and mode) it had.
    if (!wasUp) await cluster(['down'], log);
    else if (previousProxy !== options.proxy || previousMode !== mode) {
      if (previousProxy === 'none') await cluster(['uninstall-proxy'], log);
      else await cluster(['install-proxy', previousProxy, '--mode', previousMode], log);
    }
  }
  let summary: SuiteSummary;
  try {
    summary = parseJUnit(readFileSync(join(reportDir, 'junit_01.xml'), 'utf8'));
  } catch (error: unknown) {
    throw new Error(`e2e.test (exit ${code}) wrote no readable JUnit report in ${reportDir}: ${String(error)}`);
  }
  const result: ConformanceRun = {
    proxy: options.proxy,
    mode,
    kubeVersion,
    focus: options.focus,
    skip: options.skip ?? null,
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    exitCode: code,
    ...summary,
  };
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(result, null, 2)}\n`);
  copyFileSync(join(reportDir, 'junit_01.xml'), options.out.replace(/\.json$/, '') + '.junit.xml');
  rmSync(reportDir, { recursive: true, force: true });
  return result;
}

const usage = `usage: npm run conformance -- [--proxy kube-proxy-ts|kube-proxy] [--mode iptables|nftables] [--focus REGEX] [--skip REGEX] [--wider] [--out FILE]
  --proxy   which proxy serves the node (default kube-proxy-ts)
  --mode    the proxy's mode (default iptables); nftables writes to test/conformance/results/nftables/<proxy>.json by default
  --focus   ginkgo focus (default: the 17 [sig-network] Services [Conformance] specs)
  --skip    ginkgo skip
  --wider   the one-node [sig-network] Services set (focus and skip of test/conformance/run.ts)
  --dual-stack  upstream's [Feature:IPv6DualStack] specs (default --out test/conformance/results/dual-stack/<proxy>.json)
  --out     the JSON summary (default test/conformance/results/<proxy>.json; JUnit beside it)`;

async function main(argv: readonly string[]): Promise<number> {
  let proxy: ProxyName = 'kube-proxy-ts';
  let mode: ProxyMode = 'iptables';
  let focus = conformanceFocus;
  let skip: string | undefined;
  let out: string | undefined;
  let set = '';
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--proxy': {
        const name = value();
        if (!(proxies as readonly string[]).includes(name)) throw new Error(`--proxy must be one of ${proxies.join(', ')}`);
        proxy = name as ProxyName;
        break;
      }
      case '--mode': {
        const name = value();
        if (!(proxyModes as readonly string[]).includes(name)) throw new Error(`--mode must be one of ${proxyModes.join(', ')}`);
        mode = name as ProxyMode;
        break;
      }
      case '--focus': focus = value(); break;
      case '--skip': skip = value(); break;
      case '--wider': focus = widerFocus; skip = widerSkip; break;
      case '--dual-stack': focus = dualStackFocus; skip = dualStackSkip; set = 'dual-stack'; break;
      case '--out': out = resolve(value()); break;
      case '--help': case '-h': process.stdout.write(`${usage}\n`); return 0;
      default: throw new Error(`unknown argument ${String(flag)}\n${usage}`);
    }
  }
  // nftables-mode runs of a set go to a directory of their own (results/nftables/, results/nftables/dual-stack/).
  const results = join(repoRoot, 'test', 'conformance', 'results', mode === 'nftables' ? 'nftables' : '', set);
  const result = await runConformance({
    proxy,
    mode,
    focus,
    ...(skip !== undefined ? { skip } : {}),
    out: out ?? join(results, `${proxy}.json`),
  });
  for (const spec of result.specs) process.stdout.write(`${spec.status.padEnd(7)} ${spec.name}${spec.reason ? `  (${spec.reason})` : ''}\n`);
  process.stdout.write(`conformance with ${proxy} (${mode} mode): ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped in ${result.durationSeconds}s\n`);
  return result.failed === 0 && result.suiteFailures.length === 0 && result.passed > 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`conformance: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
}
