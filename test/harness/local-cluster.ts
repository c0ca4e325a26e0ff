// The local one-node cluster (hack/local-cluster.sh) as tests see it: its commands, its
// environment, and a snapshot of everything on the host that `up` may create, so a test can prove
// that `down` removed it all.
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exec, run } from './exec.js';
import { repoRoot } from './versions.js';

const script = join(repoRoot, 'hack', 'local-cluster.sh');

export interface LocalClusterEnv {
  readonly kubeconfig: string;
  readonly netns: string;
  readonly nodeName: string;
  readonly nodeIP: string;
  /** The cluster is dual-stack, IPv4 first: these are the IPv6 halves. */
  readonly nodeIP6: string;
  readonly serviceCIDR: string;
  readonly serviceCIDR6: string;
  readonly clusterCIDR: string;
  readonly clusterCIDR6: string;
  readonly dnsIP: string;
  readonly k8sBin: string;
  readonly stateDir: string;
  readonly containerdSock: string;
}

/** Runs `hack/local-cluster.sh ARGS`; rejects with the tail of its output when it fails. */
export async function localCluster(args: readonly string[], timeoutMs = 45 * 60_000): Promise<string> {
  const result = await exec('bash', [script, ...args], { timeoutMs });
  if (result.code !== 0) {
    const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-40).join('\n');
    throw new Error(`hack/local-cluster.sh ${args.join(' ')} exited ${result.code}:\n${tail}`);
  }
  return result.stdout;
}

export async function localClusterEnv(): Promise<LocalClusterEnv> {
  const values = new Map<string, string>();
  for (const line of (await localCluster(['env'])).split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match?.[1] && match[2] !== undefined) values.set(match[1], match[2]);
  }
  const get = (key: string): string => {
    const value = values.get(key);
    if (!value) throw new Error(`hack/local-cluster.sh env: no ${key}`);
    return value;
  };
  return {
    kubeconfig: get('KUBECONFIG'),
    netns: get('NETNS'),
    nodeName: get('NODE_NAME'),
    nodeIP: get('NODE_IP'),
    nodeIP6: get('NODE_IP6'),
    serviceCIDR: get('SERVICE_CIDR'),
    serviceCIDR6: get('SERVICE_CIDR6'),
    clusterCIDR: get('CLUSTER_CIDR'),
    clusterCIDR6: get('CLUSTER_CIDR6'),
    dnsIP: get('DNS_IP'),
    k8sBin: get('K8S_BIN'),
    stateDir: get('STATE_DIR'),
    containerdSock: get('CONTAINERD_SOCK'),
  };
}

/** A command inside the node's network namespace (host mount namespace). */
export function inNode(env: LocalClusterEnv, command: string, args: readonly string[], timeoutMs = 120_000): ReturnType<typeof exec> {
  return exec('nsenter', [`--net=/run/netns/${env.netns}`, '--', command, ...args], { timeoutMs });
}

export async function kubectl(env: LocalClusterEnv, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const result = await inNode(env, join(env.k8sBin, 'kubectl'), ['--kubeconfig', env.kubeconfig, ...args], timeoutMs);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`);
  return result.stdout;
}

/** What `up` can leave on the host, each as a sorted list of strings. */
export interface HostFootprint {
  readonly processes: readonly string[];
  readonly mounts: readonly string[];
  readonly netns: readonly string[];
  readonly cgroups: readonly string[];
  readonly paths: readonly string[];
  readonly sysctls: readonly string[];
  readonly links: readonly string[];
}

const ownedPaths = ['/var/lib/kube-proxy-ts-cluster', '/run/kube-proxy-ts-cluster', '/var/lib/kubelet', '/var/log/pods', '/var/log/containers', '/var/lib/cni'];
const kubeletSysctls = ['kernel.panic', 'kernel.panic_on_oops', 'vm.overcommit_memory', 'kernel.keys.root_maxkeys', 'kernel.keys.root_maxbytes'];
// Processes of the cluster: started with the cluster's state paths (every component `up` starts
// names one; a host's own containerd or etcd, and the control planes other test projects start
// from the same cached binaries, do not), and what runs in its containers.
const processPattern = /(kube-proxy-ts-cluster|^\/agnhost|^\/coredns|^\/pause\b|containerd-shim|\/app\/(dist\/src\/cli\.js|hack\/docker-entrypoint\.sh))/;

export async function hostFootprint(): Promise<HostFootprint> {
  const processes: string[] = [];
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (processPattern.test(cmdline) && !cmdline.includes('vitest')) processes.push(cmdline.slice(0, 200));
    } catch {
      // gone meanwhile
    }
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((target) => ownedPaths.some((p) => target.startsWith(p)) || /^\/(var\/)?run\/netns\/(cni-|kpts-node)/.test(target));
  const netnsList = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n === 'kpts-node' || n.startsWith('cni-'));
  const cgroups: string[] = [];
  for (const hierarchy of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    for (const name of ['kubepods', 'k8s.io', 'kubepods.slice']) {
      if (existsSync(join('/sys/fs/cgroup', hierarchy, name))) cgroups.push(`${hierarchy}/${name}`);
    }
  }
  const sysctls = await Promise.all(kubeletSysctls.map(async (key) => `${key}=${(await exec('sysctl', ['-n', key])).stdout.trim()}`));
  const links = (await run('ip', ['-o', 'link', 'show'])).split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter((n) => /^(cni0|veth|kpts)/.test(n));
  return {
    processes: processes.sort(),
    mounts: mounts.sort(),
    netns: netnsList.sort(),
    cgroups: cgroups.sort(),
    paths: ownedPaths.filter((p) => existsSync(p)).sort(),
    sysctls,
    links: links.sort(),
  };
}
