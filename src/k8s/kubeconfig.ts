// Where the agent's apiserver connection comes from: `--kubeconfig`, else $KUBECONFIG, else the
// pod's service account. Deliberately not ~/.kube/config or localhost:8080 (client-node's
// loadFromDefault fallbacks): a node agent silently talking to a user's cluster, or to nothing,
// is worse than a clear start-up error.
//
// Read here, with the `yaml` parser and node:https, for what a node agent is given: a service
// account token, a client certificate, a bearer token or token file. That keeps
// @kubernetes/client-node (~2 s of module loading on a busy node and ~65 MB of memory) off the
// agent's start: the first lists go out sooner. Users that need a credential plugin (`exec`,
// `auth-provider`) or a `proxy-url` are handed to client-node, loaded on first use.
//
// Credentials in files are read again once a minute, as client-go does: a token file (the kubelet
// rotates service account tokens) and a client certificate with its key when both are files (cert
// rotation). A new certificate also closes the connections made with the old one, so watches
// reconnect with it.
//
// No message built here quotes the file's text or a value from it (kubeconfig-quiet.ts): an
// unreadable file is named by the field that names it.

import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import { delimiter, dirname, isAbsolute, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';

import type { ApiConnection } from './connection.js';
import { fsErrorCode, parseYamlQuietly, serverUrlProblem } from './kubeconfig-quiet.js';
import { asRecord, asString, isRecord, messageOf } from '../values.js';

export type KubeConfigSource = 'flag' | 'env' | 'in-cluster';

/** How requests authenticate; `plugin` goes through client-node. */
export type AuthKind = 'client-certificate' | 'token' | 'token-file' | 'basic' | 'plugin' | 'none';

export type KubeConfigResult =
  | {
      readonly ok: true;
      readonly connection: ApiConnection;
      readonly source: KubeConfigSource;
      readonly auth: AuthKind;
      /** The current context's name; `in-cluster` for the service account. */
      readonly context: string;
    }
  | { readonly ok: false; readonly reason: KubeConfigFailure; readonly detail: string };

export type KubeConfigFailure = 'unreadable' | 'no-current-cluster' | 'no-config';

export interface LoadKubeConfigOptions {
  /** The `--kubeconfig` flag. */
  readonly kubeconfigPath?: string | undefined;
  /** Defaults to process.env; tests pass their own. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Prefix for the service-account directory (tests point it at a temporary directory). */
  readonly serviceAccountRoot?: string;
  /**
   * How long a token file, or a client certificate and key given as files, is used before the files
   * are read again (default 60 s).
   */
  readonly credentialFileCacheMs?: number;
  /** Clock for the credential file cache (tests). */
  readonly now?: () => number;
}

const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';
const DEFAULT_CREDENTIAL_FILE_CACHE_MS = 60_000;

export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfigResult {
  const env = options.env ?? process.env;

  if (options.kubeconfigPath !== undefined && options.kubeconfigPath !== '') {
    return fromFiles([options.kubeconfigPath], 'flag', options);
  }

  const fromEnv = env['KUBECONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') {
    const files = fromEnv.split(delimiter).filter((file) => file !== '');
    if (files.length > 0) return fromFiles(files, 'env', options);
  }

  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const prefix = options.serviceAccountRoot ?? '';
  const tokenPath = `${prefix}${serviceAccountDir}/token`;
  if (host !== undefined && host !== '' && port !== undefined && port !== '' && existsSync(tokenPath)) {
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const caPath = `${prefix}${serviceAccountDir}/ca.crt`;
    let ca: Buffer | undefined;
    try {
      ca = existsSync(caPath) ? readFileSync(caPath) : undefined;
    } catch (error: unknown) {
      return { ok: false, reason: 'unreadable', detail: `cannot read ${caPath}: ${messageOf(error)}` };
    }
    return {
      ok: true,
      connection: directConnection(server, fixedTls({ ...(ca !== undefined ? { ca } : {}) }), tokenFileHeader(tokenPath, tokenPath, options)),
      source: 'in-cluster',
      auth: 'token-file',
      context: 'in-cluster',
    };
  }

  return {
    ok: false,
    reason: 'no-config',
    detail:
      'no --kubeconfig, no KUBECONFIG, and not in a pod ' +
      `(KUBERNETES_SERVICE_HOST/PORT unset or ${tokenPath} missing)`,
  };
}

// ---------------------------------------------------------------------------------------------
// kubeconfig files

type Fields = Readonly<Record<string, unknown>>;

/** A cluster, user or context entry, with the directory its file's relative paths start from. */
interface Entry {
  readonly name: string;
  readonly fields: Fields;
  readonly dir: string;
}

interface MergedConfig {
  readonly clusters: Map<string, Entry>;
  readonly users: Map<string, Entry>;
  readonly contexts: Map<string, Entry>;
  currentContext: string | undefined;
}

class KubeconfigError extends Error {}

// Several KUBECONFIG files merge as kubectl merges them: the first file to name a cluster, user or
// context (or to set current-context) wins.
function fromFiles(files: readonly string[], source: KubeConfigSource, options: LoadKubeConfigOptions): KubeConfigResult {
  const origin = files.join(delimiter);
  try {
    const merged: MergedConfig = { clusters: new Map(), users: new Map(), contexts: new Map(), currentContext: undefined };
    for (const file of files) mergeFile(merged, file);
    const contextName = merged.currentContext;
    const context = contextName !== undefined ? merged.contexts.get(contextName) : undefined;
    const clusterName = context !== undefined ? asString(context.fields['cluster']) : undefined;
    const cluster = clusterName !== undefined ? merged.clusters.get(clusterName) : undefined;
    const server = cluster !== undefined ? checkedServer(cluster) : undefined;
    if (contextName === undefined || context === undefined || cluster === undefined || server === undefined || server === '') {
      return {
        ok: false,
        reason: 'no-current-cluster',
        detail: `kubeconfig ${origin} (from ${source}) has no current context with a cluster server`,
      };
    }
    const userName = asString(context.fields['user']);
    const user = userName !== undefined ? merged.users.get(userName) : undefined;
    const { connection, auth } = connect(server, cluster, user, options);
    return { ok: true, connection, source, auth, context: contextName };
  } catch (error: unknown) {
    return { ok: false, reason: 'unreadable', detail: `cannot load kubeconfig ${origin} (from ${source}): ${messageOf(error)}` };
  }
}

function mergeFile(into: MergedConfig, file: string): void {
  const parsed = parseYamlQuietly(readFileSync(file, 'utf8'), file);
  if (parsed === null || parsed === undefined) return; // an empty file adds nothing
  if (!isRecord(parsed)) throw new KubeconfigError(`${file} is not a kubeconfig (not a mapping)`);
  const dir = dirname(resolve(file));
  const current = parsed['current-context'];
  if (into.currentContext === undefined && typeof current === 'string' && current !== '') into.currentContext = current;
  mergeEntries(into.clusters, parsed['clusters'], 'cluster', dir, file);
  mergeEntries(into.users, parsed['users'], 'user', dir, file);
  mergeEntries(into.contexts, parsed['contexts'], 'context', dir, file);
}

/** The cluster's server, refused when it cannot be used or carries user:password. */
function checkedServer(cluster: Entry): string | undefined {
  const server = asString(cluster.fields['server']);
  if (server === undefined || server === '') return server;
  const problem = serverUrlProblem(server);
  if (problem !== undefined) throw new KubeconfigError(`cluster ${cluster.name}: ${problem}`);
  return server;
}

function mergeEntries(into: Map<string, Entry>, list: unknown, key: string, dir: string, file: string): void {
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) throw new KubeconfigError(`${file}: ${key}s is not a list`);
  for (const item of list) {
    if (!isRecord(item) || typeof item['name'] !== 'string') throw new KubeconfigError(`${file}: a ${key} entry without a name`);
    const fields = item[key];
    if (into.has(item['name'])) continue;
    into.set(item['name'], { name: item['name'], fields: asRecord(fields), dir });
  }
}

function connect(
  server: string,
  cluster: Entry,
  user: Entry | undefined,
  options: LoadKubeConfigOptions,
): { connection: ApiConnection; auth: AuthKind } {
  const userFields = user?.fields ?? {};
  if (user !== undefined && (userFields['as'] !== undefined || userFields['as-groups'] !== undefined || userFields['as-uid'] !== undefined)) {
    throw new KubeconfigError(`user ${user.name} asks for impersonation (as, as-groups, as-uid), which kube-proxy-ts does not support`);
  }
  if (userFields['exec'] !== undefined || userFields['auth-provider'] !== undefined || cluster.fields['proxy-url'] !== undefined) {
    return { connection: clientNodeConnection(server, cluster, user), auth: 'plugin' };
  }

  const tls: https.RequestOptions = {};
  const ca = material(cluster, 'certificate-authority');
  if (ca !== undefined) tls.ca = ca;
  if (cluster.fields['insecure-skip-tls-verify'] === true) tls.rejectUnauthorized = false;
  const serverName = asString(cluster.fields['tls-server-name']);
  if (serverName !== undefined && serverName !== '') tls.servername = serverName;

  if (user === undefined) return { connection: directConnection(server, fixedTls(tls), noHeader), auth: 'none' };
  const cert = material(user, 'client-certificate');
  const key = material(user, 'client-key');
  if ((cert === undefined) !== (key === undefined)) {
    throw new KubeconfigError(`user ${user.name} has a client certificate without its key, or a key without its certificate`);
  }
  if (cert !== undefined && key !== undefined) {
    tls.cert = cert;
    tls.key = key;
  }
  const certFile = fileOnly(user, 'client-certificate');
  const keyFile = fileOnly(user, 'client-key');
  const tlsSource = certFile !== undefined && keyFile !== undefined ? rotatingClientCertificate(tls, certFile, keyFile, options) : fixedTls(tls);

  const token = asString(userFields['token']);
  const tokenFile = asString(userFields['tokenFile']);
  const username = asString(userFields['username']);
  const password = asString(userFields['password']);
  if (token !== undefined && token !== '') {
    const header = { Authorization: `Bearer ${token}` };
    return { connection: directConnection(server, tlsSource, async () => header), auth: 'token' };
  }
  if (tokenFile !== undefined && tokenFile !== '') {
    return {
      connection: directConnection(server, tlsSource, tokenFileHeader(pathIn(user, tokenFile), `the file that user ${user.name}'s tokenFile names`, options)),
      auth: 'token-file',
    };
  }
  if (username !== undefined && password !== undefined) {
    const header = { Authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` };
    return { connection: directConnection(server, tlsSource, async () => header), auth: 'basic' };
  }
  return { connection: directConnection(server, tlsSource, noHeader), auth: cert !== undefined ? 'client-certificate' : 'none' };
}

/** `<name>-data` (base64) or the file `<name>` (relative to the kubeconfig's directory). */
function material(entry: Entry, name: string): Buffer | undefined {
  const data = asString(entry.fields[`${name}-data`]);
  if (data !== undefined && data !== '') return Buffer.from(data, 'base64');
  const file = asString(entry.fields[name]);
  if (file === undefined || file === '') return undefined;
  try {
    return readFileSync(pathIn(entry, file));
  } catch (error: unknown) {
    throw new KubeconfigError(`kubeconfig entry ${entry.name}: cannot read the file that ${name} names (${fsErrorCode(error)}; the value is not shown, it may be a credential)`);
  }
}

/** The path of `<name>` when it is given as a file only (no `<name>-data`). */
function fileOnly(entry: Entry, name: string): string | undefined {
  const data = asString(entry.fields[`${name}-data`]);
  const file = asString(entry.fields[name]);
  return (data === undefined || data === '') && file !== undefined && file !== '' ? pathIn(entry, file) : undefined;
}

function pathIn(entry: Entry, file: string): string {
  return isAbsolute(file) ? file : resolve(entry.dir, file);
}

// ---------------------------------------------------------------------------------------------
// connections

type AuthHeader = () => Promise<Readonly<Record<string, string>>>;

const noHeader: AuthHeader = async () => ({});

/** The TLS options for the next request: the same object until the material changes. */
type TlsSource = () => https.RequestOptions;

function fixedTls(tls: https.RequestOptions): TlsSource {
  return () => tls;
}

function directConnection(server: string, tlsSource: TlsSource, authHeader: AuthHeader): ApiConnection {
  // One keep-alive agent per TLS material: list pages reuse the TLS session; watches hold their own
  // sockets. New material (a rotated client certificate) gets a new agent and the old one's sockets
  // are closed, so nothing keeps talking with the certificate that was replaced.
  const newAgent = (): http.Agent => (new URL(server).protocol === 'http:' ? new http.Agent({ keepAlive: true }) : new https.Agent({ keepAlive: true }));
  let current: { tls: https.RequestOptions; agent: http.Agent } | undefined;
  return {
    server,
    async requestOptions() {
      const tls = tlsSource();
      if (current?.tls !== tls) {
        current?.agent.destroy();
        current = { tls, agent: newAgent() };
      }
      return { ...tls, agent: current.agent, headers: { ...(await authHeader()) } };
    },
  };
}

/**
 * A client certificate and key read again from their files once `credentialFileCacheMs` passed.
 * A new pair is used only when both files read and belong together: a rotation caught half-way
 * (new certificate, old key) keeps the old pair until the next read.
 */
function rotatingClientCertificate(initial: https.RequestOptions, certFile: string, keyFile: string, options: LoadKubeConfigOptions): TlsSource {
  const cacheMs = options.credentialFileCacheMs ?? DEFAULT_CREDENTIAL_FILE_CACHE_MS;
  const now = options.now ?? Date.now;
  let tls = initial;
  let readAt = now();
  return () => {
    if (now() - readAt < cacheMs) return tls;
    readAt = now();
    try {
      const cert = readFileSync(certFile);
      const key = readFileSync(keyFile);
      if (tls.cert instanceof Buffer && tls.key instanceof Buffer && cert.equals(tls.cert) && key.equals(tls.key)) return tls;
      createSecureContext({ cert, key });
      tls = { ...tls, cert, key };
    } catch {
      // unreadable or not a pair (yet): keep the current one
    }
    return tls;
  };
}

/**
 * A bearer token read from a file, read again once `credentialFileCacheMs` passed (the kubelet rotates it).
 * `label` names the file in errors (a tokenFile value may be a token pasted where its path belongs).
 */
function tokenFileHeader(path: string, label: string, options: LoadKubeConfigOptions): AuthHeader {
  const cacheMs = options.credentialFileCacheMs ?? DEFAULT_CREDENTIAL_FILE_CACHE_MS;
  const now = options.now ?? Date.now;
  let cached: { header: Record<string, string>; readAt: number } | undefined;
  return async () => {
    if (cached === undefined || now() - cached.readAt >= cacheMs) {
      let token: string;
      try {
        token = readFileSync(path, 'utf8').trim();
      } catch (error: unknown) {
        throw new Error(`cannot read ${label} (${fsErrorCode(error)})`);
      }
      cached = { header: { Authorization: `Bearer ${token}` }, readAt: now() };
    }
    return cached.header;
  };
}

/**
 * The current context handed to client-node's KubeConfig, loaded on the first request: its
 * credential plugins (exec, OIDC and other auth providers) and proxy support.
 */
function clientNodeConnection(server: string, cluster: Entry, user: Entry | undefined): ApiConnection {
  const absolute = (entry: Entry, names: readonly string[]): Fields => {
    const fields: Record<string, unknown> = { ...entry.fields };
    for (const name of names) {
      const value = fields[name];
      if (typeof value === 'string' && value !== '') fields[name] = pathIn(entry, value);
    }
    return fields;
  };
  const text = toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster.name, cluster: absolute(cluster, ['certificate-authority']) }],
    users: user !== undefined ? [{ name: user.name, user: absolute(user, ['client-certificate', 'client-key', 'tokenFile']) }] : [],
    contexts: [{ name: 'current', context: { cluster: cluster.name, ...(user !== undefined ? { user: user.name } : {}) } }],
    'current-context': 'current',
  });
  let loaded: Promise<{ applyToHTTPSOptions(options: https.RequestOptions): Promise<void> }> | undefined;
  const load = async (): Promise<{ applyToHTTPSOptions(options: https.RequestOptions): Promise<void> }> => {
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(text);
    return kubeConfig;
  };
  return {
    server,
    async requestOptions() {
      loaded ??= load();
      const kubeConfig = await loaded;
      const options: https.RequestOptions = {};
      await kubeConfig.applyToHTTPSOptions(options);
      return options;
    },
  };
}

// ---------------------------------------------------------------------------------------------


