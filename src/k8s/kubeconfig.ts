// Where the agent's apiserver credentials come from: `--kubeconfig`, else $KUBECONFIG, else the
// pod's service account. Deliberately not ~/.kube/config or localhost:8080 (client-node's
// loadFromDefault fallbacks): a node agent silently talking to a user's cluster, or to nothing,
// is worse than a clear start-up error.

import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';

import { KubeConfig } from '@kubernetes/client-node';

export type KubeConfigSource = 'flag' | 'env' | 'in-cluster';

export type KubeConfigResult =
  | { readonly ok: true; readonly kubeConfig: KubeConfig; readonly source: KubeConfigSource; readonly server: string }
  | { readonly ok: false; readonly reason: KubeConfigFailure; readonly detail: string };

export type KubeConfigFailure = 'unreadable' | 'no-current-cluster' | 'no-config';

export interface LoadKubeConfigOptions {
  /** The `--kubeconfig` flag. */
  readonly kubeconfigPath?: string | undefined;
  /** Defaults to process.env; tests pass their own. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Prefix for the service-account directory (tests point it at a temporary directory). */
  readonly serviceAccountRoot?: string;
}

const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfigResult {
  const env = options.env ?? process.env;

  if (options.kubeconfigPath !== undefined && options.kubeconfigPath !== '') {
    return fromFiles([options.kubeconfigPath], 'flag');
  }

  const fromEnv = env['KUBECONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') {
    const files = fromEnv.split(delimiter).filter((file) => file !== '');
    if (files.length > 0) return fromFiles(files, 'env');
  }

  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const prefix = options.serviceAccountRoot ?? '';
  const tokenPath = `${prefix}${serviceAccountDir}/token`;
  if (host !== undefined && host !== '' && port !== undefined && port !== '' && existsSync(tokenPath)) {
    // client-node reads KUBERNETES_SERVICE_HOST/PORT from process.env itself.
    const restore = withEnv({ KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: port });
    try {
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromCluster(prefix);
      return validated(kubeConfig, 'in-cluster', tokenPath);
    } finally {
      restore();
    }
  }

  return {
    ok: false,
    reason: 'no-config',
    detail:
      'no --kubeconfig, no KUBECONFIG, and not in a pod ' +
      `(KUBERNETES_SERVICE_HOST/PORT unset or ${tokenPath} missing)`,
  };
}

// Several KUBECONFIG files merge as kubectl merges them: the first file to name a cluster, user or
// context (or to set current-context) wins. client-node's mergeConfig throws on duplicates instead.
function fromFiles(files: readonly string[], source: KubeConfigSource): KubeConfigResult {
  const [first, ...rest] = files;
  if (first === undefined) return { ok: false, reason: 'no-config', detail: 'empty kubeconfig path list' };
  try {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(first);
    for (const file of rest) {
      const other = new KubeConfig();
      other.loadFromFile(file);
      mergeFirstWins(kubeConfig, other);
    }
    return validated(kubeConfig, source, files.join(delimiter));
  } catch (error) {
    return {
      ok: false,
      reason: 'unreadable',
      detail: `cannot load kubeconfig ${files.join(delimiter)} (from ${source}): ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

function mergeFirstWins(into: KubeConfig, from: KubeConfig): void {
  // Typed as string, but undefined at run time when a file sets no current-context.
  if (!into.currentContext && from.currentContext) into.currentContext = from.currentContext;
  for (const cluster of from.clusters) {
    if (into.getCluster(cluster.name) === null) into.addCluster(cluster);
  }
  for (const user of from.users) {
    if (into.getUser(user.name) === null) into.addUser(user);
  }
  for (const context of from.contexts) {
    if (into.getContextObject(context.name) === null) into.addContext(context);
  }
}

function validated(kubeConfig: KubeConfig, source: KubeConfigSource, origin: string): KubeConfigResult {
  const cluster = kubeConfig.getCurrentCluster();
  if (cluster === null || cluster.server === '') {
    return {
      ok: false,
      reason: 'no-current-cluster',
      detail: `kubeconfig ${origin} (from ${source}) has no current context with a cluster server`,
    };
  }
  return { ok: true, kubeConfig, source, server: cluster.server };
}

function withEnv(values: Record<string, string>): () => void {
  const saved = Object.entries(values).map(([key]) => [key, process.env[key]] as const);
  for (const [key, value] of Object.entries(values)) process.env[key] = value;
  return () => {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}
