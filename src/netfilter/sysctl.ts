// Kernel settings under /proc/sys, read and written as files (no `sysctl` binary needed). In a
// container /proc/sys is read-only unless the container is privileged: writing then fails with
// EROFS, and the caller says so. Tests give a prefix (`ip netns exec NS`) so that the setting of a
// throwaway network namespace is read and written, never the host's.

import { readFile, writeFile } from 'node:fs/promises';
import { messageOf } from '../values.js';
import { runProcess, type ProcessRunner } from '../process.js';

/** NodePorts on 127.0.0.1 need it: the kernel otherwise drops packets from 127.0.0.0/8 routed off `lo`. */
export const ROUTE_LOCALNET = 'net/ipv4/conf/all/route_localnet';

/** `net/ipv4/conf/all/route_localnet` -> `net.ipv4.conf.all.route_localnet`, as people write it. */
export function sysctlName(name: string): string {
  return name.replaceAll('/', '.');
}

export class Sysctl {
  constructor(
    private readonly run: ProcessRunner = runProcess,
    /** e.g. ['ip', 'netns', 'exec', 'node1'] in tests; empty on a real node (then plain file IO). */
    private readonly prefix: readonly string[] = [],
    private readonly root = '/proc/sys',
  ) {}

  /** The setting's integer value; throws when it cannot be read. */
  async get(name: string): Promise<number> {
    const path = `${this.root}/${name}`;
    let text: string;
    if (this.prefix.length === 0) {
      text = await readFile(path, 'utf8');
    } else {
      const output = await this.exec(['cat', path]);
      if (output.code !== 0) throw new Error(output.stderr.trim() || `cat ${path} exited with ${output.code}`);
      text = output.stdout;
    }
    const value = Number(text.trim());
    if (text.trim() === '' || !Number.isInteger(value)) throw new Error(`${path} holds ${JSON.stringify(text.trim())}, not an integer`);
    return value;
  }

  /** Writes the setting; throws when the kernel refuses (e.g. EROFS in an unprivileged container). */
  async set(name: string, value: number): Promise<void> {
    const path = `${this.root}/${name}`;
    if (this.prefix.length === 0) {
      await writeFile(path, `${value}\n`);
      return;
    }
    const output = await this.exec(['tee', path], `${value}\n`);
    if (output.code !== 0) throw new Error(output.stderr.trim() || `tee ${path} exited with ${output.code}`);
  }

  private exec(args: readonly string[], input?: string): ReturnType<ProcessRunner> {
    const [command = args[0] ?? '', ...rest] = [...this.prefix, ...args];
    return this.run(command, rest, input);
  }
}

/** What callers need of a Sysctl (tests pass fakes). */
export type SysctlAccess = Pick<Sysctl, 'get' | 'set'>;

export type EnsureResult =
  | { readonly ok: true; readonly changed: boolean; readonly before: number | undefined }
  | { readonly ok: false; readonly before: number | undefined; readonly error: string };

/**
 * upstream's EnsureSysctl: writes `value` unless the setting already holds it (a setting that cannot
 * be read is written too), so a read-only /proc/sys is no problem when someone set it before.
 */
export async function ensureSysctl(sysctl: SysctlAccess, name: string, value: number): Promise<EnsureResult> {
  let before: number | undefined;
  try {
    before = await sysctl.get(name);
  } catch {
    before = undefined;
  }
  if (before === value) return { ok: true, changed: false, before };
  try {
    await sysctl.set(name, value);
  } catch (error: unknown) {
    return { ok: false, before, error: messageOf(error) };
  }
  return { ok: true, changed: true, before };
}
