// Throwaway network namespaces for kernel tests: unique names, always deleted (by the caller's
// finally/afterAll, and as a last resort when the process exits), commands run inside with
// `ip netns exec`. Each namespace has its own netfilter tables for both iptables backends.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runProcess, type ProcessOutput } from '../../src/process.js';

export interface Netns {
  readonly name: string;
  /** ['ip', 'netns', 'exec', name]: for ExecNetfilter / Conntrack / detectIptablesVariant `prefix`. */
  readonly prefix: readonly string[];
  /** Runs a command inside the namespace, `input` on stdin. */
  exec(command: string, args: readonly string[], input?: string): Promise<ProcessOutput>;
  /** Idempotent. */
  delete(): Promise<void>;
}

const live = new Set<string>();
let exitHookInstalled = false;
let counter = 0;

/** Kernel tests need root (network namespaces, netfilter). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Why kernel tests cannot run here, or undefined when they can. */
export function kernelSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'kernel tests need Linux';
  if (!isRoot()) return 'kernel tests need root (network namespaces and netfilter)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'kernel tests need iproute2 (`ip netns`)';
  }
  return undefined;
}

export async function createNetns(label = 'test'): Promise<Netns> {
  installExitHook();
  // pid + counter + random: unique across parallel vitest workers and reruns after a crash.
  const name = `kpt-${label}-${process.pid}-${++counter}-${randomBytes(3).toString('hex')}`;
  const created = await runProcess('ip', ['netns', 'add', name]);
  if (created.code !== 0) throw new Error(`ip netns add ${name}: ${created.stderr.trim()}`);
  live.add(name);
  const prefix = ['ip', 'netns', 'exec', name] as const;
  return {
    name,
    prefix,
    exec: (command, args, input) => runProcess('ip', ['netns', 'exec', name, command, ...args], input),
    delete: async () => {
      if (!live.has(name)) return;
      live.delete(name);
      await runProcess('ip', ['netns', 'del', name]);
    },
  };
}

/** Runs `body` with a fresh namespace and deletes it afterwards, also when `body` throws. */
export async function withNetns<T>(body: (netns: Netns) => Promise<T>, label = 'test'): Promise<T> {
  const netns = await createNetns(label);
  try {
    return await body(netns);
  } finally {
    await netns.delete();
  }
}

/** Deletes every namespace this process created and has not deleted yet (for afterAll). */
export async function deleteAllNetns(): Promise<void> {
  for (const name of [...live]) {
    live.delete(name);
    await runProcess('ip', ['netns', 'del', name]);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted run must not leave namespaces behind; 'exit' only allows sync work.
  process.on('exit', () => {
    for (const name of live) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
  });
}

/**
 * Gives a node namespace its address on an interface of its own (NodePorts on a CIDR match local
 * addresses): a veth pair kept inside the namespace (this kernel has no dummy interfaces), lo up.
 */
export async function addNodeAddress(netns: Pick<Netns, 'name'>, cidr: string, ipv6Cidr?: string): Promise<void> {
  const ip = async (...args: string[]): Promise<void> => {
    const result = await runProcess('ip', ['-n', netns.name, ...args]);
    if (result.code !== 0) throw new Error(`ip -n ${netns.name} ${args.join(' ')}: ${result.stderr.trim()}`);
  };
  await ip('link', 'add', 'node0', 'type', 'veth', 'peer', 'name', 'node0p');
  await ip('addr', 'add', cidr, 'dev', 'node0');
  // nodad: usable at once, no duplicate address detection wait.
  if (ipv6Cidr !== undefined) await ip('-6', 'addr', 'add', ipv6Cidr, 'dev', 'node0', 'nodad');
  for (const link of ['node0', 'node0p', 'lo']) await ip('link', 'set', link, 'up');
}
