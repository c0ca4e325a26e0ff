// Start-up check: without a working iptables the agent must refuse to start with a clear message
// and a non-zero exit, as kube-proxy does, instead of retrying forever while /livez says 200. Two
// ways to lack it: the binaries are not installed (PATH holds none of them), and the kernel lacks
// the table (stand-ins that answer as iptables does when the module is missing). The agent runs in a
// throwaway network namespace, so nothing it might do reaches the host's tables.

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createNetns, deleteAllNetns, kernelSkipReason } from '../../harness/netns.js';
import { repoRoot } from '../../harness/versions.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/faults/iptables-missing.test.ts: ${skipReason}`);

afterAll(deleteAllNetns);

/** Runs `kube-proxy-ts run` with only `pathDir` on PATH; resolves with its exit code and stderr, or 'running' after `timeoutMs`. */
async function runAgent(pathDir: string, timeoutMs: number): Promise<{ code: number | 'running'; stderr: string; ms: number }> {
  const netns = await createNetns('preflight');
  try {
    const started = Date.now();
    const child = spawn('ip', [
      'netns', 'exec', netns.name, 'env', `PATH=${pathDir}`,
      process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'cli.ts'), 'run',
      '--kubeconfig', inject('kubeconfigPath'), '--hostname-override', 'preflight-node', '--iptables-backend', 'nft',
      '--metrics-bind-address', '127.0.0.1:0', '--healthz-bind-address', '127.0.0.1:0',
    ], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | 'running'>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('running');
      }, timeoutMs);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode ?? -1);
      });
    });
    return { code, stderr, ms: Date.now() - started };
  } finally {
    await netns.delete();
  }
}

describe.skipIf(skipReason !== undefined)('start-up check: no working iptables', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start when the iptables binaries are not installed', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'kpt-nopath-'));
    dirs.push(empty);
    const result = await runAgent(empty, 30_000);
    console.log(`iptables not installed: exit ${result.code} after ${result.ms} ms: ${result.stderr.trim().split('\n').at(-1) ?? ''}`);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('kube-proxy-ts run: iptables (nft backend) does not work on this node: iptables-nft-restore is not installed or not on PATH');
  });

  it('refuses to start when the kernel lacks the nat table', async () => {
    const fakes = mkdtempSync(join(tmpdir(), 'kpt-nomod-'));
    dirs.push(fakes);
    // What iptables 1.8.9 prints when the table's module is missing, for any table command.
    const script = [
      '#!/bin/sh',
      'case "$*" in',
      '  *--version*) echo "iptables v1.8.9 (nf_tables)"; exit 0 ;;',
      '  *"-t nat"*) echo "iptables v1.8.9 (nf_tables): can\'t initialize iptables table \\`nat\': Table does not exist (do you need to insmod?)" >&2; echo "Perhaps iptables or your kernel needs to be upgraded." >&2; exit 3 ;;',
      'esac',
      'exit 0',
      '',
    ].join('\n');
    for (const name of ['iptables-nft', 'iptables-nft-save', 'iptables-nft-restore']) {
      writeFileSync(join(fakes, name), script);
      chmodSync(join(fakes, name), 0o755);
    }
    const result = await runAgent(fakes, 30_000);
    console.log(`nat table missing: exit ${result.code} after ${result.ms} ms: ${result.stderr.trim().split('\n').at(-1) ?? ''}`);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('the kernel does not provide the nat table to iptables-nft');
    expect(result.stderr).toContain('do you need to insmod?');
  });
});
