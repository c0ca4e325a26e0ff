// Looks at a node namespace's nat table directly. With the nft backend `nft list chain ip nat X`
// reads one chain (milliseconds even with 100k chains), so it can poll; with legacy every read
// copies the whole table out of the kernel (~0.9 s at 10k Services), so it only confirms.

import { spawn } from 'node:child_process';
import { exec } from '../../test/harness/exec.js';
import type { Backend, ProxyMode } from './node-netns.js';

export async function chainExists(netns: string, backend: Backend, chain: string, mode: ProxyMode): Promise<boolean> {
  const result =
    mode === 'nftables'
      ? await exec('ip', ['netns', 'exec', netns, 'nft', 'list', 'chain', 'ip', 'kube-proxy', chain])
      : backend === 'nft'
      ? await exec('ip', ['netns', 'exec', netns, 'nft', 'list', 'chain', 'ip', 'nat', chain])
      : await exec('ip', ['netns', 'exec', netns, 'iptables-legacy', '-w', '-t', 'nat', '-S', chain]);
  return result.code === 0;
}

export interface ChainCounts {
  readonly svc: number;
  readonly sep: number;
  readonly total: number;
  readonly seconds: number;
}

/** Counts our chains in nat (nft: chain names only; legacy: one iptables-save; nftables mode: service-/endpoint- chains). */
export async function countChains(netns: string, backend: Backend, mode: ProxyMode): Promise<ChainCounts | undefined> {
  const started = performance.now();
  const result =
    backend === 'nft' || mode === 'nftables'
      ? await exec('ip', ['netns', 'exec', netns, 'nft', 'list', 'chains', 'ip'], { timeoutMs: 300_000 })
      : await exec('ip', ['netns', 'exec', netns, 'iptables-legacy-save', '-t', 'nat'], { timeoutMs: 300_000 });
  if (result.code !== 0) return undefined;
  const pattern = mode === 'nftables' ? /^\s*chain ((?:service|endpoint)-)[A-Z0-9]{8}-/gm : backend === 'nft' ? /^\s*chain (KUBE-[A-Z]+-)/gm : /^:(KUBE-[A-Z]+-)/gm;
  let svc = 0;
  let sep = 0;
  let total = 0;
  for (const match of result.stdout.matchAll(pattern)) {
    total++;
    if (match[1] === 'KUBE-SVC-' || match[1] === 'service-') svc++;
    else if (match[1] === 'KUBE-SEP-' || match[1] === 'endpoint-') sep++;
  }
  return { svc, sep, total, seconds: (performance.now() - started) / 1000 };
}

export interface KernelPoller {
  /** Unix ms at which the chain was first seen, or undefined when cancelled or failed. */
  readonly seen: Promise<number | undefined>;
  cancel(): void;
}

/**
 * Polls for `chain` every `intervalMs` from a shell loop inside the namespace (one process start
 * for the loop; each probe costs one `nft` run) and reports when it appears. iptables-nft only
 * (nftables mode: see main.ts --kernel-poll-ms).
 */
export function pollChain(netns: string, chain: string, intervalMs: number): KernelPoller {
  const script = `until nft list chain ip nat "$1" >/dev/null 2>&1; do sleep ${(intervalMs / 1000).toFixed(3)}; done; echo "$EPOCHREALTIME"`;
  // Its own process group, so that cancelling kills the nft probe under way too, not only the loop.
  const child = spawn('ip', ['netns', 'exec', netns, 'bash', '-c', script, 'poll', chain], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const seen = new Promise<number | undefined>((resolvePromise) => {
    child.on('close', (code) => {
      const value = Number(output.trim());
      resolvePromise(code === 0 && Number.isFinite(value) && value > 0 ? value * 1000 : undefined);
    });
    child.on('error', () => resolvePromise(undefined));
  });
  return {
    seen,
    cancel: () => {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    },
  };
}
