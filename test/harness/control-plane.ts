// A real, throwaway Kubernetes control plane for tests: etcd + kube-apiserver of the pinned release
// on loopback ports, with a fresh CA, certificates and admin kubeconfig in a temp dir. No Docker, no
// kubelet, no controller-manager: tests create Nodes and EndpointSlices themselves.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { freePorts } from './ports.js';
import { kubeBinaries, type KubeBinaries } from './versions.js';

const execFileAsync = promisify(execFile);

export interface ControlPlaneOptions {
  /** `--service-cluster-ip-range`; one CIDR or a dual-stack pair separated by a comma. */
  readonly serviceClusterIPRange?: string;
  /** How long to wait for etcd and for `/readyz` on each apiserver start. Default 120 s. */
  readonly readyTimeoutMs?: number;
  /** `--advertise-address`; by default the apiserver picks the host's primary address. */
  readonly advertiseAddress?: string;
  /** `--bind-address`. Default 127.0.0.1. */
  readonly bindAddress?: string;
  /** `--v` of kube-apiserver. Default 1. */
  readonly verbosity?: number;
  /** Appended to the kube-apiserver command line (later flags win). */
  readonly extraApiserverArgs?: readonly string[];
  /** Keep the temp dir (certs, data, logs) after stop(). Default: env KUBE_PROXY_TS_KEEP=1. */
  readonly keep?: boolean;
}

/** Milliseconds spent in each phase of the cold start. */
export interface StartupTimings {
  readonly certsMs: number;
  readonly etcdMs: number;
  readonly apiserverMs: number;
  readonly totalMs: number;
}

export interface ControlPlane {
  /** Self-contained admin kubeconfig (O=system:masters, certificates embedded). */
  readonly kubeconfigPath: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** The temp dir holding pki/, etcd-data/, the logs and the kubeconfig. */
  readonly dataDir: string;
  readonly caPath: string;
  readonly clientCertPath: string;
  readonly clientKeyPath: string;
  readonly serviceClusterIPRange: string;
  readonly etcdEndpoint: string;
  readonly etcdLogPath: string;
  readonly apiserverLogPath: string;
  readonly binaries: KubeBinaries;
  readonly startup: StartupTimings;
  /** GET `path` on the apiserver as admin. */
  get(path: string): Promise<HttpResult>;
  /** Stops kube-apiserver (etcd keeps the data) and starts it again on the same port. */
  restartApiserver(): Promise<void>;
  /** SIGTERM, then SIGKILL after a grace period. No-op when it is not running. */
  stopApiserver(): Promise<void>;
  /** Starts kube-apiserver on the same port and waits for `/readyz`. */
  startApiserver(): Promise<void>;
  /** Stops both processes and removes the temp dir (unless kept). Safe to call twice. */
  stop(): Promise<void>;
}

export interface HttpResult {
  readonly status: number;
  readonly body: string;
}

// Dual-stack, as a dual-stack cluster's apiserver: a Service gets an IPv6 cluster IP only when it asks
// (ipFamilyPolicy), so single-stack tests see the IPv4 range they always did.
const defaultServiceRange = '10.96.0.0/16,fd00:10:96::/112';
const stopGraceMs = 10_000;

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: every child is killed when this process exits, even on a failed test.

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHooksInstalled = false;

function killEverythingNow(): void {
  for (const child of liveChildren) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // a dying etcd may still hold files; the OS temp cleaner gets the rest
    }
  }
  liveDirs.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killEverythingNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killEverythingNow();
      // If nobody else handles the signal, keep its default meaning: terminate.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly binary: string,
    private readonly args: readonly string[],
    readonly logPath: string,
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Why the process is not running, or undefined while it runs. */
  get exitDescription(): string | undefined {
    if (this.child === undefined) return 'never started';
    if (this.running) return undefined;
    return this.child.signalCode !== null ? `killed by ${this.child.signalCode}` : `exited with code ${String(this.child.exitCode)}`;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    installExitHooks();
    const log = openSync(this.logPath, 'a');
    try {
      writeFileSync(log, `\n=== ${new Date().toISOString()} ${this.binary} ${this.args.join(' ')}\n`);
      const child = spawn(this.binary, this.args, { stdio: ['ignore', log, log] });
      this.child = child;
      liveChildren.add(child);
      this.exited = new Promise((resolvePromise) => {
        child.once('exit', () => {
          liveChildren.delete(child);
          resolvePromise();
        });
        child.once('error', (error) => {
          writeFileSync(this.logPath, `spawn failed: ${error.message}\n`, { flag: 'a' });
          liveChildren.delete(child);
          resolvePromise();
        });
      });
    } finally {
      closeSync(log);
    }
  }

  async stop(graceMs = stopGraceMs): Promise<void> {
    const child = this.child;
    if (child?.pid === undefined || !this.running) return;
    const exited = this.exited;
    signal(child.pid, 'SIGTERM');
    const timer = setTimeout(() => {
      if (child.pid !== undefined) signal(child.pid, 'SIGKILL');
    }, graceMs);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  async logTail(lines = 40): Promise<string> {
    try {
      return (await readFile(this.logPath, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates (openssl CLI): a CA, the apiserver's serving cert, an admin client cert and the
// service-account signing keypair.

interface Pki {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly adminCert: string;
  readonly adminKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
}

async function openssl(cwd: string, args: readonly string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { cwd });
  } catch (error: unknown) {
    const stderr = (error as { stderr?: unknown }).stderr;
    throw new Error(`openssl ${args.join(' ')} failed: ${typeof stderr === 'string' ? stderr.trim() : String(error)}`);
  }
}

const clientAuthExtensions = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth'];

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function issueLeaf(dir: string, name: string, subject: string, extensions: readonly string[]): Promise<void> {
  writeFileSync(join(dir, `${name}.ext`), `${extensions.join('\n')}\n`);
  await openssl(dir, ['req', '-new', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
  await openssl(dir, [
    'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key',
    '-set_serial', `0x1${randomBytes(8).toString('hex')}`, '-days', '3650', '-sha256',
    '-extfile', `${name}.ext`, '-out', `${name}.crt`,
  ]);
}

/**
 * Issues another client certificate from the control plane's CA (`<dataDir>/pki`) into `outDir`,
 * e.g. to rotate a client's certificate. Returns the paths of the certificate and its key.
 */
export async function issueClientCertificate(dataDir: string, outDir: string, name: string, subject: string): Promise<{ cert: string; key: string }> {
  const pkiDir = join(dataDir, 'pki');
  await issueLeaf(pkiDir, name, subject, clientAuthExtensions);
  mkdirSync(outDir, { recursive: true });
  const cert = join(outDir, `${name}.crt`);
  const key = join(outDir, `${name}.key`);
  copyFileSync(join(pkiDir, `${name}.crt`), cert);
  copyFileSync(join(pkiDir, `${name}.key`), key);
  return { cert, key };
}

async function makePki(dir: string, sans: readonly string[]): Promise<Pki> {
  await openssl(dir, [
    'req', '-x509', '-new', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-sha256',
    '-subj', '/CN=kube-proxy-ts-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  await Promise.all([
    issueLeaf(dir, 'apiserver', '/CN=kube-apiserver', [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${sans.join(',')}`,
    ]),
    issueLeaf(dir, 'admin', '/O=system:masters/CN=kube-proxy-ts-admin', clientAuthExtensions),
    (async () => {
      await openssl(dir, ['genrsa', '-out', 'service-account.key', '2048']);
      await openssl(dir, ['rsa', '-in', 'service-account.key', '-pubout', '-out', 'service-account.pub']);
    })(),
  ]);
  return {
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'apiserver.crt'),
    serverKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    serviceAccountKey: join(dir, 'service-account.key'),
    serviceAccountPub: join(dir, 'service-account.pub'),
  };
}

/** The first usable address of an IPv4 or IPv6 CIDR (the apiserver's `kubernetes` Service IP). */
export function firstAddressOf(cidr: string): string {
  const [address = '', prefixText = ''] = cidr.trim().split('/');
  const prefix = Number(prefixText);
  if (isIPv4(address) && Number.isInteger(prefix) && prefix >= 0 && prefix <= 32) {
    const value = address.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
    const size = 2 ** (32 - prefix);
    const first = Math.floor(value / size) * size + 1;
    return [24, 16, 8, 0].map((shift) => Math.floor(first / 2 ** shift) % 256).join('.');
  }
  if (isIPv6(address) && Number.isInteger(prefix) && prefix >= 0 && prefix <= 128) {
    const [head = '', tail = ''] = address.split('::');
    const headGroups = head === '' ? [] : head.split(':');
    const tailGroups = tail === '' ? [] : tail.split(':');
    const groups = address.includes('::')
      ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
      : headGroups;
    const value = groups.reduce((sum, group) => (sum << 16n) | BigInt(`0x${group}`), 0n);
    const hostBits = BigInt(128 - prefix);
    const first = ((value >> hostBits) << hostBits) + 1n;
    return Array.from({ length: 8 }, (_, i) => ((first >> BigInt(16 * (7 - i))) & 0xffffn).toString(16)).join(':');
  }
  throw new Error(`not a CIDR: ${cidr}`);
}

function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((entries) => entries ?? [])
    .filter((entry) => !entry.internal && entry.family === 'IPv4')
    .map((entry) => entry.address);
}

// ---------------------------------------------------------------------------------------------
// Readiness probes.

interface TlsClient {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

function httpGet(url: string, tls?: TlsClient, timeoutMs = 5_000): Promise<HttpResult> {
  return new Promise((resolvePromise, reject) => {
    const options = { method: 'GET', agent: false as const, timeout: timeoutMs, ...(tls ?? {}) };
    const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolvePromise({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolvePromise) => setTimeout(resolvePromise, ms));

/** Polls `probe` until it returns undefined (ready) or the deadline passes; fails fast if `managed` dies. */
async function waitUntilReady(
  managed: ManagedProcess,
  what: string,
  timeoutMs: number,
  probe: () => Promise<string | undefined>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no answer yet';
  for (;;) {
    const exit = managed.exitDescription;
    if (exit !== undefined) {
      throw new Error(`${managed.name} ${exit} before ${what}; last log lines (${managed.logPath}):\n${await managed.logTail()}`);
    }
    try {
      const problem = await probe();
      if (problem === undefined) return;
      lastProblem = problem;
    } catch (error: unknown) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} not reached within ${timeoutMs} ms (last: ${lastProblem}); last log lines (${managed.logPath}):\n${await managed.logTail()}`,
      );
    }
    await sleep(200);
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Starts etcd and kube-apiserver with fresh certificates. The caller must `stop()` it (also done
 * automatically when the process exits). Set KUBE_PROXY_TS_KEEP=1 to keep the temp dir.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const startedAt = performance.now();
  const binaries = await kubeBinaries();
  const serviceClusterIPRange = options.serviceClusterIPRange ?? defaultServiceRange;
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
  const bindAddress = options.bindAddress ?? '127.0.0.1';
  const keep = options.keep ?? process.env['KUBE_PROXY_TS_KEEP'] === '1';

  const dir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-cp-'));
  if (!keep) liveDirs.add(dir);
  const pkiDir = join(dir, 'pki');
  const etcdDataDir = join(dir, 'etcd-data');
  const kubeconfigPath = join(dir, 'kubeconfig');

  const etcd: { current?: ManagedProcess } = {};
  const apiserver: { current?: ManagedProcess } = {};
  const stopAll = async (): Promise<void> => {
    await apiserver.current?.stop();
    await etcd.current?.stop();
  };

  try {
    const certsStartedAt = performance.now();
    const [etcdClientPort, etcdPeerPort, securePort] = (await freePorts(3)) as [number, number, number];
    const serviceIPs = serviceClusterIPRange.split(',').map(firstAddressOf);
    const sanIPs = new Set(['127.0.0.1', ...serviceIPs, ...hostAddresses()]);
    if (options.advertiseAddress) sanIPs.add(options.advertiseAddress);
    if (bindAddress !== '0.0.0.0' && bindAddress !== '::') sanIPs.add(bindAddress);
    const sans = [
      ...[...sanIPs].map((ip) => `IP:${ip}`),
      ...['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'].map(
        (name) => `DNS:${name}`,
      ),
    ];
    mkdirSync(pkiDir, { recursive: true });
    const pki = await makePki(pkiDir, sans);
    const certsMs = performance.now() - certsStartedAt;

    const server = `https://127.0.0.1:${securePort}`;
    const tls: TlsClient = {
      ca: readFileSync(pki.caCert),
      cert: readFileSync(pki.adminCert),
      key: readFileSync(pki.adminKey),
    };
    writeFileSync(
      kubeconfigPath,
      toYaml({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'kube-proxy-ts-test', cluster: { server, 'certificate-authority-data': tls.ca.toString('base64') } }],
        users: [
          {
            name: 'admin',
            user: { 'client-certificate-data': tls.cert.toString('base64'), 'client-key-data': tls.key.toString('base64') },
          },
        ],
        contexts: [{ name: 'kube-proxy-ts-test', context: { cluster: 'kube-proxy-ts-test', user: 'admin', namespace: 'default' } }],
        'current-context': 'kube-proxy-ts-test',
      }),
    );

    const etcdStartedAt = performance.now();
    const etcdEndpoint = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    etcd.current = new ManagedProcess(
      'etcd',
      binaries.etcd,
      [
        '--name=test',
        `--data-dir=${etcdDataDir}`,
        `--listen-client-urls=${etcdEndpoint}`,
        `--advertise-client-urls=${etcdEndpoint}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=test=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync',
        '--logger=zap',
        '--log-level=warn',
      ],
      join(dir, 'etcd.log'),
    );
    etcd.current.start();
    await waitUntilReady(etcd.current, 'etcd /health', readyTimeoutMs, async () => {
      const result = await httpGet(`${etcdEndpoint}/health`);
      return result.status === 200 && result.body.includes('"true"') ? undefined : `HTTP ${result.status} ${result.body.trim()}`;
    });
    const etcdMs = performance.now() - etcdStartedAt;

    const apiserverArgs = [
      `--etcd-servers=${etcdEndpoint}`,
      `--secure-port=${securePort}`,
      `--bind-address=${bindAddress}`,
      ...(options.advertiseAddress ? [`--advertise-address=${options.advertiseAddress}`] : []),
      `--cert-dir=${pkiDir}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-cluster-ip-range=${serviceClusterIPRange}`,
      '--authorization-mode=RBAC',
      // As kubeadm and kind clusters (kube-proxy's own DaemonSet is privileged): the manifests'
      // init container, which sets route_localnet for NodePorts on 127.0.0.1, is privileged.
      '--allow-privileged=true',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      // No controller-manager creates service-account tokens, so pods would be rejected.
      '--disable-admission-plugins=ServiceAccount',
      // No FlowSchema bootstrapping and no request queuing: a faster start, and bulk creates in
      // benchmarks are not throttled by a single-user priority level.
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      `--v=${options.verbosity ?? 1}`,
      ...(options.extraApiserverArgs ?? []),
    ];
    const apiserverProcess = new ManagedProcess('kube-apiserver', binaries.kubeApiserver, apiserverArgs, join(dir, 'kube-apiserver.log'));
    apiserver.current = apiserverProcess;

    const get = (path: string): Promise<HttpResult> => httpGet(`${server}${path}`, tls);
    const startApiserver = async (): Promise<void> => {
      apiserverProcess.start();
      await waitUntilReady(apiserverProcess, `${server}/readyz`, readyTimeoutMs, async () => {
        const result = await get('/readyz?verbose');
        if (result.status === 200) return undefined;
        const failing = result.body.split('\n').filter((line) => line.startsWith('[-]'));
        return `HTTP ${result.status} ${failing.join('; ') || result.body.trim()}`;
      });
    };
    const stopApiserver = (): Promise<void> => apiserverProcess.stop();

    const apiserverStartedAt = performance.now();
    await startApiserver();
    const apiserverMs = performance.now() - apiserverStartedAt;

    let stopped = false;
    return {
      kubeconfigPath,
      server,
      dataDir: dir,
      caPath: pki.caCert,
      clientCertPath: pki.adminCert,
      clientKeyPath: pki.adminKey,
      serviceClusterIPRange,
      etcdEndpoint,
      etcdLogPath: etcd.current.logPath,
      apiserverLogPath: apiserverProcess.logPath,
      binaries,
      startup: {
        certsMs: Math.round(certsMs),
        etcdMs: Math.round(etcdMs),
        apiserverMs: Math.round(apiserverMs),
        totalMs: Math.round(performance.now() - startedAt),
      },
      get,
      restartApiserver: async () => {
        await stopApiserver();
        await startApiserver();
      },
      stopApiserver,
      startApiserver,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await stopAll();
        liveDirs.delete(dir);
        if (keep) {
          process.stderr.write(`control plane: kept ${dir} (KUBE_PROXY_TS_KEEP=1)\n`);
        } else {
          rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
        }
      },
    };
  } catch (error: unknown) {
    await stopAll();
    liveDirs.delete(dir);
    if (keep) {
      process.stderr.write(`control plane: failed start, kept ${dir}\n`);
    } else {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    }
    throw error;
  }
}
