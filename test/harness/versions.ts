// The pinned Kubernetes release and the helper scripts that provide its binaries. hack/versions.env
// is the single source of truth; this module only parses it.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Reads KEY=value lines (no shell expansion) from hack/versions.env. */
export function readVersionsEnv(path: string = join(repoRoot, 'hack', 'versions.env')): ReadonlyMap<string, string> {
  const values = new Map<string, string>();
  for (const rawLine of readFileSync(path, 'utf8').split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!match?.[1] || match[2] === undefined) continue;
    values.set(match[1], match[2].replace(/^(['"])(.*)\1$/, '$2'));
  }
  return values;
}

/** The pinned release, e.g. `v1.33.13`. */
export const kubeVersion: string = (() => {
  const version = readVersionsEnv().get('KUBE_VERSION');
  if (!version || !/^v1\.\d+\.\d+$/.test(version)) {
    throw new Error(`hack/versions.env: KUBE_VERSION missing or malformed (${String(version)})`);
  }
  return version;
})();

export interface KubeBinaries {
  readonly kubeApiserver: string;
  readonly kubeProxy: string;
  readonly kubectl: string;
  readonly etcd: string;
}

/** Runs a hack/ script and returns the last line it printed (the scripts' contract). */
async function lastLineOf(script: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync('bash', [join(repoRoot, 'hack', script)], {
      cwd: repoRoot,
      maxBuffer: 16 * 1024 * 1024,
    });
    const line = stdout.trim().split('\n').pop()?.trim();
    if (!line) throw new Error('printed nothing');
    return line;
  } catch (error: unknown) {
    const stderr = (error as { stderr?: unknown }).stderr;
    const detail = typeof stderr === 'string' && stderr.trim() !== '' ? `\n${stderr.trim().split('\n').slice(-20).join('\n')}` : '';
    throw new Error(`hack/${script} failed: ${error instanceof Error ? error.message : String(error)}${detail}`);
  }
}

let binaries: Promise<KubeBinaries> | undefined;

/**
 * Paths of kube-apiserver, kube-proxy, kubectl (hack/k8s-binaries.sh) and etcd (hack/etcd.sh).
 * Instant when cached; the first call on a fresh machine builds them (run hack/deps.sh first).
 */
export function kubeBinaries(): Promise<KubeBinaries> {
  binaries ??= (async () => {
    const [k8sDir, etcd] = await Promise.all([lastLineOf('k8s-binaries.sh'), lastLineOf('etcd.sh')]);
    return {
      kubeApiserver: join(k8sDir, 'kube-apiserver'),
      kubeProxy: join(k8sDir, 'kube-proxy'),
      kubectl: join(k8sDir, 'kubectl'),
      etcd,
    };
  })();
  binaries.catch(() => {
    binaries = undefined;
  });
  return binaries;
}
