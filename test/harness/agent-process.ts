// Runs `kube-proxy-ts run` as a real process inside a node's network namespace, as a DaemonSet pod
// with hostNetwork would run on that node: its own iptables tables, conntrack table and :10249 /
// :10256 servers. The apiserver listens on the host's 127.0.0.1, which a node namespace cannot
// reach, so an ApiBridge carries it over a Unix socket (paths are not per network namespace):
// socat listens on 127.0.0.1:<apiserver port> inside the node namespace and the test process
// forwards each connection to the real apiserver. The admin kubeconfig then works unchanged.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exec } from './exec.js';
import { repoRoot } from './versions.js';

export interface AgentProcessOptions {
  /** The node's network namespace. */
  readonly netns: string;
  /** `--hostname-override`: the Node object's name. */
  readonly nodeName: string;
  readonly kubeconfigPath: string;
  readonly clusterCIDR?: string;
  /** Appended to the command line (later flags win). */
  readonly extraArgs?: readonly string[];
  /** Where the log goes; a fresh temp dir by default. */
  readonly logDir?: string;
  /** Extra environment variables for the agent. */
  readonly env?: Readonly<Record<string, string>>;
  /** A command the agent's `ip netns exec ...` runs under (its arguments follow), e.g. a mount
   * namespace set up by `unshare`. It must exec the command, so the child's pid stays the agent's. */
  readonly wrap?: readonly string[];
  /** How long to wait for the first applied sync. Default 60 s. */
  readonly readyTimeoutMs?: number;
}

/** Forwards TCP connections made inside a node namespace to an address of the test's namespace. */
export class ApiBridge {
  private listener: ChildProcess | undefined;

  private constructor(
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    readonly socketPath: string,
    private readonly dir: string,
  ) {}

  /** Forwards `127.0.0.1:<port of apiserverURL>` inside `netns` to `apiserverURL`'s host and port. */
  static async start(netns: string, apiserverURL: string): Promise<ApiBridge> {
    const url = new URL(apiserverURL);
    const port = Number(url.port);
    const host = url.hostname;
    const dir = mkdtempSync(join(tmpdir(), 'kpt-bridge-'));
    const socketPath = join(dir, 'apiserver.sock');
    const sockets = new Set<Socket>();
    const server = createServer((inbound) => {
      const outbound = connect({ host, port });
      sockets.add(inbound);
      sockets.add(outbound);
      const close = (): void => {
        inbound.destroy();
        outbound.destroy();
        sockets.delete(inbound);
        sockets.delete(outbound);
      };
      inbound.on('error', close).on('close', close);
      outbound.on('error', close).on('close', close);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    const bridge = new ApiBridge(server, sockets, socketPath, dir);
    const listener = spawn('ip', ['netns', 'exec', netns, 'socat', `TCP4-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${socketPath}`], {
      stdio: 'ignore',
    });
    bridge.listener = listener;
    try {
      await waitFor(async () => {
        const listening = await exec('ip', ['netns', 'exec', netns, 'ss', '-lntH', `sport = :${port}`]);
        return listening.stdout.includes(`:${port}`);
      }, 10_000, `api bridge in ${netns} listening on 127.0.0.1:${port}`);
    } catch (error: unknown) {
      await bridge.stop();
      throw error;
    }
    return bridge;
  }

  async stop(): Promise<void> {
    if (this.listener !== undefined) await stopChild(this.listener, 2000);
    this.listener = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One running agent. `stop()` is safe to call twice. */
export class AgentProcess {
  private exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  private constructor(
    readonly netns: string,
    readonly nodeName: string,
    readonly logPath: string,
    private readonly child: ChildProcess,
    private readonly bridge: ApiBridge,
    private readonly ownedLogDir: string | undefined,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal !== null ? -1 : null);
        resolve(code);
      });
    });
  }

  /** Starts the agent and waits until `/healthz` inside the namespace reports a successful sync. */
  static async start(options: AgentProcessOptions, apiserverURL: string): Promise<AgentProcess> {
    const ownedLogDir = options.logDir === undefined ? mkdtempSync(join(tmpdir(), 'kpt-agent-')) : undefined;
    const logDir = options.logDir ?? ownedLogDir ?? tmpdir();
    const logPath = join(logDir, `agent-${options.nodeName}.log`);
    const bridge = await ApiBridge.start(options.netns, apiserverURL);
    const args = [
      'netns', 'exec', options.netns,
      process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'cli.ts'), 'run',
      '--kubeconfig', options.kubeconfigPath,
      '--hostname-override', options.nodeName,
      '--cluster-cidr', options.clusterCIDR ?? '10.244.0.0/16',
      '--sync-period', '2s',
      '--min-sync-period', '100ms',
      '--log-level', 'debug',
      ...(options.extraArgs ?? []),
    ];
    const logFd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      // `ip netns exec` execs the command, so the child's pid is the agent's.
      const [command, ...rest] = [...(options.wrap ?? []), 'ip', ...args];
      child = spawn(command ?? 'ip', rest, { cwd: repoRoot, stdio: ['ignore', logFd, logFd], env: { ...process.env, ...options.env } });
    } finally {
      closeSync(logFd);
    }
    const agent = new AgentProcess(options.netns, options.nodeName, logPath, child, bridge, ownedLogDir);
    try {
      await agent.waitReady(options.readyTimeoutMs ?? 60_000);
    } catch (error: unknown) {
      const tail = agent.logTail();
      await agent.stop();
      throw new Error(`${error instanceof Error ? error.message : String(error)}\n--- agent log (${options.nodeName}) ---\n${tail}`);
    }
    return agent;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** GET `http://127.0.0.1:<port><path>` inside the node namespace. */
  async httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    return httpGetIn(this.netns, '127.0.0.1', port, path);
  }

  /** The agent's `/metrics` text (its :10249 inside the namespace). */
  async metrics(): Promise<string> {
    const response = await this.httpGet(10249, '/metrics');
    if (response.status !== 200) throw new Error(`agent on ${this.nodeName}: /metrics answered ${response.status}`);
    return response.body;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    await waitFor(async () => {
      if (!this.running) throw new Error(`agent on ${this.nodeName} exited with ${String(this.exitCode)} before it was ready`);
      const health = await this.httpGet(10256, '/healthz');
      // kube-proxy's body carries `status` once a sync succeeded.
      return health.status === 200 && health.body.includes('"status"');
    }, timeoutMs, `agent on ${this.nodeName}: /healthz reporting a successful sync`);
  }

  /** The last `lines` lines of the agent's log. */
  logTail(lines = 60): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** The whole log (e.g. to count syncs). */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM, SIGKILL after `graceMs`; then the API bridge; the log is removed unless `keepLog`. */
  async stop(options: { readonly graceMs?: number; readonly keepLog?: boolean } = {}): Promise<number | null> {
    await stopChild(this.child, options.graceMs ?? 5000);
    await this.bridge.stop();
    const keep = options.keepLog ?? process.env['KUBE_PROXY_TS_KEEP'] === '1';
    if (this.ownedLogDir !== undefined && !keep) rmSync(this.ownedLogDir, { recursive: true, force: true });
    return this.exited;
  }
}

/** The sum of every sample of `name` (all label sets) in a Prometheus text exposition. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/** `GET http://host:port/path` from inside `netns` with curl; status 0 when nothing answered. */
export async function httpGetIn(netns: string, host: string, port: number, path: string, timeoutSeconds = 2): Promise<{ status: number; body: string }> {
  const marker = '\n__status__=';
  const result = await exec(
    'ip',
    ['netns', 'exec', netns, 'curl', '-s', '--max-time', String(timeoutSeconds), '-w', `${marker}%{http_code}`, `http://${host}:${port}${path}`],
    { timeoutMs: timeoutSeconds * 1000 + 3000 },
  );
  const at = result.stdout.lastIndexOf(marker);
  if (at < 0) return { status: 0, body: result.stderr };
  return { status: Number(result.stdout.slice(at + marker.length).trim()) || 0, body: result.stdout.slice(0, at) };
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Polls `check` until it returns true; rethrows what it throws; fails after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
