// `npm run demo`: kube-proxy-ts on a throwaway one-node "cluster" on this machine (demo/local.ts),
// or, with --kubeconfig (or inside a pod), `kube-proxy-ts run` in the foreground against that cluster.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '../test/harness/versions.js';
import { runLocal, type LocalOptions } from './local.js';

const usage = `Usage: npm run demo -- [--once] [--requests N]
       npm run demo -- --kubeconfig FILE [kube-proxy-ts run flags...]

Without --kubeconfig: starts etcd + kube-apiserver on 127.0.0.1, a node, an external client and three
pods in network namespaces, runs kube-proxy-ts on the node, and shows requests to a ClusterIP and a
NodePort Service spreading over the pods. Runs until Ctrl-C, then removes everything it created.
  --once          prove it works and exit: 0 when every pod answered and no request failed, else 1
  --requests N    requests per Service (default 30)
  --local         run the local demo even inside a pod (KUBERNETES_SERVICE_HOST set)

With --kubeconfig FILE (or inside a pod, with no flags): runs \`kube-proxy-ts run\` in the foreground
against that cluster, programming THIS machine's iptables. Extra flags go to \`kube-proxy-ts run\`.
Needs root (network namespaces and iptables) and Linux.
`;

const serviceAccountToken = '/var/run/secrets/kubernetes.io/serviceaccount/token';

type Mode =
  | { readonly kind: 'help' }
  | { readonly kind: 'invalid'; readonly message: string }
  | { readonly kind: 'local'; readonly options: LocalOptions }
  | { readonly kind: 'cluster'; readonly kubeconfig: string | undefined; readonly runArgs: readonly string[] };

function parseMode(argv: readonly string[], env: NodeJS.ProcessEnv): Mode {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        once: { type: 'boolean' },
        requests: { type: 'string' },
        local: { type: 'boolean' },
        kubeconfig: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: false,
      allowPositionals: true,
      tokens: true,
    });
  } catch (error: unknown) {
    return { kind: 'invalid', message: error instanceof Error ? error.message : String(error) };
  }
  const { values, tokens } = parsed;
  if (values.help === true) return { kind: 'help' };
  const known = new Set(['once', 'requests', 'local', 'kubeconfig', 'help']);
  // Everything that is not ours goes to `kube-proxy-ts run` in cluster mode.
  const rest: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'option' && !known.has(token.name)) rest.push(token.rawName, ...(token.value !== undefined ? [token.value] : []));
    if (token.kind === 'positional') rest.push(token.value);
  }
  const kubeconfig = typeof values.kubeconfig === 'string' ? values.kubeconfig : undefined;
  const inCluster = (env['KUBERNETES_SERVICE_HOST'] ?? '') !== '' && existsSync(serviceAccountToken);
  if (kubeconfig !== undefined || (inCluster && values.local !== true && values.once !== true && values.requests === undefined)) {
    if (values.once === true || values.requests !== undefined) {
      return { kind: 'invalid', message: '--once and --requests belong to the local demo, not to --kubeconfig' };
    }
    return { kind: 'cluster', kubeconfig, runArgs: rest };
  }
  if (rest.length > 0) return { kind: 'invalid', message: `unknown argument ${rest[0] ?? ''}` };
  const requests = values.requests === undefined ? 30 : Number(values.requests);
  if (!Number.isInteger(requests) || requests < 1 || requests > 1000) {
    return { kind: 'invalid', message: `--requests must be a whole number from 1 to 1000, not ${String(values.requests)}` };
  }
  return { kind: 'local', options: { once: values.once === true, requests } };
}

// ---------------------------------------------------------------------------------------------
// Cluster mode: the agent in the foreground, against someone else's cluster.

async function runAgainstCluster(kubeconfig: string | undefined, runArgs: readonly string[]): Promise<number> {
  const where = kubeconfig !== undefined ? `the cluster in ${kubeconfig}` : 'this pod\'s cluster (in-cluster service account)';
  process.stdout.write(
    `kube-proxy-ts demo: no local control plane; running \`kube-proxy-ts run\` against ${where}.\n` +
      'It programs THIS machine\'s iptables as the node it names (--hostname-override, else NODE_NAME, else the hostname).\n' +
      'Ctrl-C stops it; its rules stay in place until `kube-proxy-ts cleanup`.\n\n',
  );
  const args = [
    '--import', 'tsx', join(repoRoot, 'src', 'cli.ts'), 'run',
    ...(kubeconfig !== undefined ? ['--kubeconfig', kubeconfig] : []),
    ...runArgs,
  ];
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: 'inherit' });
  // The terminal's Ctrl-C reaches the agent directly (same process group); a SIGTERM sent to us is forwarded.
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.once('error', (error) => {
      process.stderr.write(`demo: cannot start the agent: ${error.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
  });
}

async function main(argv: readonly string[]): Promise<number> {
  const mode = parseMode(argv, process.env);
  switch (mode.kind) {
    case 'help':
      process.stdout.write(usage);
      return 0;
    case 'invalid':
      process.stderr.write(`demo: ${mode.message}\n\n${usage}`);
      return 2;
    case 'cluster':
      return runAgainstCluster(mode.kubeconfig, mode.runArgs);
    case 'local': {
      if (process.platform !== 'linux' || process.getuid?.() !== 0) {
        process.stderr.write('demo: the local demo needs Linux and root (network namespaces, iptables): sudo npm run demo\n');
        return 1;
      }
      return runLocal(mode.options);
    }
    default: {
      const unreachable: never = mode;
      return unreachable;
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`demo: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
