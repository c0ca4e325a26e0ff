// `npm run demo -- --once` end to end: its own control plane, a node namespace running the agent,
// three pods behind a ClusterIP and a NodePort Service. It must exit 0 with every pod having
// answered through both Services, stop reaching the pod it scales away, and leave nothing behind.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exec } from '../harness/exec.js';
import { kernelSkipReason } from '../harness/netns.js';
import { repoRoot } from '../harness/versions.js';

const skipReason = kernelSkipReason();
const pods = ['web-1', 'web-2', 'web-3'];

interface DemoRun {
  readonly code: number | null;
  readonly output: string;
}

function runDemo(args: readonly string[], timeoutMs: number): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    // Never the in-cluster mode, whatever machine the suite runs on.
    delete env['KUBERNETES_SERVICE_HOST'];
    delete env['KUBE_PROXY_TS_KEEP'];
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'demo', 'main.ts'), ...args], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The lines of the block that starts with the first line matching `heading`, up to a blank line. */
function block(output: string, heading: RegExp): string[] {
  const lines = output.split('\n');
  const start = lines.findIndex((line) => heading.test(line));
  if (start < 0) return [];
  const end = lines.findIndex((line, index) => index > start && line.trim() === '');
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

function answers(lines: readonly string[], pod: string): number | undefined {
  const line = lines.find((candidate) => candidate.trimStart().startsWith(`${pod} `));
  const match = line === undefined ? null : /(\d+) answered/.exec(line);
  return match === null ? undefined : Number(match[1]);
}

describe.skipIf(skipReason !== undefined)('npm run demo -- --once', () => {
  it('spreads requests over every pod through a ClusterIP and a NodePort, then cleans up', async () => {
    const { code, output } = await runDemo(['--once'], 240_000);
    expect(code, output).toBe(0);
    expect(output).toContain('demo: OK');

    const clusterIP = block(output, /^30 requests to ClusterIP \S+ from pod client/);
    const nodePort = block(output, /^30 requests to NodePort \S+ from the external client/);
    for (const pod of pods) {
      expect(answers(clusterIP, pod), `${pod} via the ClusterIP\n${output}`).toBeGreaterThan(0);
      expect(answers(nodePort, pod), `${pod} via the NodePort\n${output}`).toBeGreaterThan(0);
    }
    const sum = (lines: readonly string[]): number => pods.reduce((total, pod) => total + (answers(lines, pod) ?? 0), 0);
    expect(sum(clusterIP)).toBe(30);
    expect(sum(nodePort)).toBe(30);
    expect(output).toContain(`Every pod answered through both Services: ${pods.join(', ')}; no request failed.`);

    // After web-3 left the EndpointSlice, one partial sync rewrote one Service chain and only the
    // remaining pods answered.
    expect(output).toMatch(/partial sync: \d+ bytes, \d+ lines of iptables-restore input \(chains rewritten: 1, deleted: 1; touched: KUBE-SVC-\w+, KUBE-SEP-\w+\)/);
    const afterScale = block(output, /^30 requests to ClusterIP \S+ again/);
    expect(answers(afterScale, 'web-1')).toBeGreaterThan(0);
    expect(answers(afterScale, 'web-2')).toBeGreaterThan(0);
    expect(afterScale.join('\n')).toMatch(/web-3 .*no longer an endpoint: 0 answered/);

    // Metrics were read from inside the node, and the paste-ready line names the node namespace.
    const netns = /node demo-node: netns (\S+),/.exec(output)?.[1];
    expect(netns, output).toBeDefined();
    expect(output).toContain(`ip netns exec ${netns ?? ''} curl -s localhost:10249/metrics | grep kubeproxy_`);
    expect(output).toMatch(/kubeproxy_sync_proxy_rules_iptables_restore_failures_total +0$/m);
    // One full sync per address family the agent serves: IPv4, and IPv6 where ip6tables works (the
    // agent's own probe: ip6tables-save of the nat table).
    const families = (await exec('ip6tables-save', ['-t', 'nat'])).code === 0 ? 2 : 1;
    expect(output).toMatch(new RegExp(`kube_proxy_ts_syncs_total +full: ${families} applied, 0 failed; partial: [1-9]\\d* applied`));

    // Nothing left behind: the namespaces of this run and its temp dirs are gone.
    const prefix = (netns ?? '').replace(/-n0$/, '-');
    const namespaces = await exec('ip', ['netns', 'list']);
    expect(namespaces.stdout.split('\n').filter((line) => prefix !== '' && line.startsWith(prefix))).toEqual([]);
    const agentLog = /tail -f (\S+)/.exec(output)?.[1];
    const kubeconfig = /KUBECONFIG=(\S+)/.exec(output)?.[1];
    expect(agentLog !== undefined && existsSync(dirname(agentLog))).toBe(false);
    expect(kubeconfig !== undefined && existsSync(dirname(kubeconfig))).toBe(false);
  }, 300_000);

  it('rejects flags it does not know, with the usage', async () => {
    const { code, output } = await runDemo(['--frobnicate'], 60_000);
    expect(code).toBe(2);
    expect(output).toContain('unknown argument --frobnicate');
    expect(output).toContain('Usage: npm run demo');
  });
});
