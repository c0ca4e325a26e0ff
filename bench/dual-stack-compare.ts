// Dual-stack side by side with upstream kube-proxy (the pinned binary the test harness builds, as
// bench/compare uses): one apiserver holding N RequireDualStack Services x E endpoints per family,
// each proxy started in its own fresh node namespace (IPv4 and IPv6 node IPs, --cluster-cidr pair)
// with the same flags, and timed from process start to the exit of the first successful
// iptables-restore and ip6tables-restore that program the last Service (the restore wrappers of
// bench/compare record every call). Then one IPv6 endpoint change per trial: write -> exit of the
// ip6tables-restore carrying it, its input size, and whether any iptables-restore (IPv4) ran for it.
// Root; prints figures, never fails on timing.
//
//   npx tsx bench/dual-stack-compare.ts [--services 5000] [--endpoints 10] [--trials 10]
//     [--backend legacy|nft] [--proxies kube-proxy-ts,kube-proxy] [--no-build]

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startControlPlane, type ControlPlane } from '../test/harness/control-plane.js';
import { createEndpointSlice, createNamespace, createNode, createService, kubeClients, mapWithConcurrency, type KubeClients } from '../test/harness/kube.js';
import { repoRoot } from '../test/harness/versions.js';
import { exec, run } from '../test/harness/exec.js';
import { servicePortChainNames } from '../src/render/names.js';
import { createBenchNode, NODE_IP, type Backend } from './compare/node-netns.js';
import { proxyKubeconfig } from './compare/kubeconfig.js';
import { PROXIES, killAllProxiesNow, startProxy, type ProxyId, type ProxyOptions } from './compare/proxies.js';
import { RestoreLog, isIPv4Call, type RestoreCall } from './compare/restore-log.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '5000' },
    endpoints: { type: 'string', default: '10' },
    trials: { type: 'string', default: '10' },
    backend: { type: 'string', default: 'legacy' },
    proxies: { type: 'string', default: PROXIES.join(',') },
    'no-build': { type: 'boolean', default: false },
  },
});
const serviceCount = Number(values.services);
const endpointsPerService = Number(values.endpoints);
const trials = Number(values.trials);
const backend = values.backend as Backend;
const proxies = values.proxies.split(',') as ProxyId[];
const NAMESPACE = 'bench-dual';
const NODE_NAME = 'bench-node';
const NODE_IP6 = 'fd00:251::2';
const CLUSTER_CIDRS = '172.16.0.0/12,fd00:172:16::/48';
const FIRST_SYNC_TIMEOUT_MS = 30 * 60_000;

const log = (message: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Endpoint `k` (from 1) of each family: 172.16.0.0/12 and its twin in fd00:172:16::/48. */
const endpointIP = (k: number, family: 'IPv4' | 'IPv6'): string =>
  family === 'IPv4' ? `172.${16 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}` : `fd00:172:16:1:1:1:${((k >> 16) + 1).toString(16)}:${(k & 0xffff).toString(16)}`;
const serviceName = (index: number): string => `svc-${index}`;
/** The KUBE-SVC chain of a Service: the same name in both families, so one marker finds either restore. */
const chainOf = (index: number): string => servicePortChainNames(`${NAMESPACE}/${serviceName(index)}:http`, 'TCP').cluster;

function slice(index: number, family: 'IPv4' | 'IPv6', endpoints: readonly number[], suffix = '') {
  return {
    namespace: NAMESPACE,
    serviceName: serviceName(index),
    name: `${serviceName(index)}-${family.toLowerCase()}${suffix}`,
    addressType: family,
    ports: [{ name: 'http', port: 8080 }],
    endpoints: endpoints.map((k) => ({ address: endpointIP(k, family), nodeName: k % 3 === 0 ? NODE_NAME : 'other-node' })),
  } as const;
}

async function load(clients: KubeClients): Promise<number> {
  const started = Date.now();
  await createNamespace(clients.core, NAMESPACE);
  await createNode(clients.core, { name: NODE_NAME, internalIP: [NODE_IP, NODE_IP6], podCIDRs: ['172.16.0.0/24', 'fd00:172:16::/64'] });
  const indices = Array.from({ length: serviceCount }, (_, index) => index);
  let done = 0;
  await mapWithConcurrency(indices, 32, async (index) => {
    const endpoints = Array.from({ length: endpointsPerService }, (_, offset) => index * endpointsPerService + offset + 1);
    for (const family of ['IPv4', 'IPv6'] as const) await createEndpointSlice(clients.discovery, { ...slice(index, family, endpoints), triggerTime: new Date(0) });
    await createService(clients.core, {
      namespace: NAMESPACE,
      name: serviceName(index),
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] },
    });
    if (++done % 1000 === 0) log(`  created ${done}/${serviceCount} Services (+ 2 slices each)`);
  });
  return (Date.now() - started) / 1000;
}

interface FamilySync {
  readonly seconds: number;
  readonly restoreCalls: number;
  readonly restoreSeconds: number;
  readonly bytes: number;
}

interface ChangeTrial {
  readonly latencyMs: number;
  readonly ipv6Bytes: number;
  /** IPv4 restores that ran between the write and the IPv6 one that carried the change. */
  readonly ipv4Restores: number;
  readonly ipv4Bytes: number;
}

/** Polls the restore log until each family has a successful restore holding `marker`. */
async function awaitBoth(restoreLog: RestoreLog, marker: string, since: number, exited: () => boolean): Promise<Record<'IPv4' | 'IPv6', RestoreCall | undefined>> {
  const found: Record<'IPv4' | 'IPv6', RestoreCall | undefined> = { IPv4: undefined, IPv6: undefined };
  const deadline = Date.now() + FIRST_SYNC_TIMEOUT_MS;
  while ((found.IPv4 === undefined || found.IPv6 === undefined) && Date.now() < deadline && !exited()) {
    for (const call of restoreLog.poll(marker)) {
      if (call.exitCode !== 0 || !call.matched || call.startMs < since) continue;
      const family = isIPv4Call(call) ? 'IPv4' : 'IPv6';
      found[family] ??= call;
    }
    await sleep(100);
  }
  return found;
}

function familySync(restoreLog: RestoreLog, family: 'IPv4' | 'IPv6', last: RestoreCall | undefined, startedAtMs: number): FamilySync | undefined {
  if (last === undefined) return undefined;
  const calls = restoreLog.calls.filter((call) => (isIPv4Call(call) ? 'IPv4' : 'IPv6') === family && call.endMs <= last.endMs);
  return {
    seconds: (last.endMs - startedAtMs) / 1000,
    restoreCalls: calls.length,
    restoreSeconds: calls.reduce((sum, call) => sum + call.endMs - call.startMs, 0) / 1000,
    bytes: calls.reduce((sum, call) => sum + call.bytes, 0),
  };
}

async function runOne(id: ProxyId, clients: KubeClients, options: ProxyOptions, workDir: string, sequence: { next: number }) {
  const node = await createBenchNode(id === 'kube-proxy' ? 'kpd' : 'kptsd', backend, workDir);
  const proxyLog = join(workDir, `${id}.log`);
  try {
    await run('ip', ['-n', node.netns.name, '-6', 'addr', 'add', `${NODE_IP6}/64`, 'dev', 'eth0', 'nodad']);
    const restoreLog = new RestoreLog(node.captureDir);
    const proxy = startProxy(id, node, options, proxyLog);
    const last = await awaitBoth(restoreLog, `-j ${chainOf(serviceCount - 1)}\n`, 0, () => proxy.exited);
    const first = { IPv4: familySync(restoreLog, 'IPv4', last.IPv4, proxy.startedAtMs), IPv6: familySync(restoreLog, 'IPv6', last.IPv6, proxy.startedAtMs) };
    if (first.IPv4 === undefined || first.IPv6 === undefined) {
      log(`  ${id}: no first sync of both families (IPv4 ${first.IPv4 !== undefined}, IPv6 ${first.IPv6 !== undefined}); log ${proxyLog}`);
      await proxy.stop();
      return { first, changes: [] as ChangeTrial[] };
    }
    log(`  ${id}: first sync IPv4 ${first.IPv4.seconds.toFixed(2)} s (${first.IPv4.restoreCalls} restore(s), ${first.IPv4.restoreSeconds.toFixed(2)} s in iptables-restore, ${(first.IPv4.bytes / 1e6).toFixed(1)} MB), IPv6 ${first.IPv6.seconds.toFixed(2)} s (${first.IPv6.restoreCalls} restore(s), ${first.IPv6.restoreSeconds.toFixed(2)} s in ip6tables-restore, ${(first.IPv6.bytes / 1e6).toFixed(1)} MB)`);
    await sleep(5000);
    const changes: ChangeTrial[] = [];
    for (let trial = 0; trial < trials; trial++) {
      const index = Math.floor(((trial + 0.5) * serviceCount) / trials);
      // A fresh IPv6 endpoint replaces the slice's first one: only the IPv6 family changes.
      const fresh = 1_000_000 + sequence.next++;
      const endpoints = [fresh, ...Array.from({ length: endpointsPerService - 1 }, (_, offset) => index * endpointsPerService + offset + 2)];
      const body = slice(index, 'IPv6', endpoints);
      restoreLog.poll();
      const writtenAt = Date.now();
      const current = await clients.discovery.readNamespacedEndpointSlice({ namespace: NAMESPACE, name: body.name });
      current.endpoints = body.endpoints.map((endpoint) => ({ addresses: [endpoint.address], conditions: { ready: true, serving: true, terminating: false }, nodeName: endpoint.nodeName }));
      await clients.discovery.replaceNamespacedEndpointSlice({ namespace: NAMESPACE, name: body.name, body: current });
      const marker = `--to-destination [${endpointIP(fresh, 'IPv6')}]:8080`;
      let carried: RestoreCall | undefined;
      const deadline = Date.now() + 60_000;
      while (carried === undefined && Date.now() < deadline) {
        carried = restoreLog.poll(marker).find((call) => !isIPv4Call(call) && call.exitCode === 0 && call.matched);
        if (carried === undefined) await sleep(20);
      }
      await sleep(1500);
      restoreLog.poll();
      const ipv4 = restoreLog.calls.filter((call) => isIPv4Call(call) && call.startMs >= writtenAt);
      if (carried !== undefined) {
        changes.push({ latencyMs: carried.endMs - writtenAt, ipv6Bytes: carried.bytes, ipv4Restores: ipv4.length, ipv4Bytes: ipv4.reduce((sum, call) => sum + call.bytes, 0) });
      }
      await sleep(1000);
    }
    await proxy.stop();
    return { first, changes };
  } finally {
    await node.delete();
    // The host end of the veth goes with the namespace, a moment later; the next node reuses its name.
    for (let waited = 0; waited < 100 && (await exec('ip', ['link', 'show', `kptb${process.pid % 100000}`])).code === 0; waited++) await sleep(100);
  }
}

const median = (numbers: readonly number[]): number => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, iptables)');
  if (!values['no-build']) execFileSync('npm', ['run', '--silent', 'build'], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  const agentEntry = join(repoRoot, 'dist', 'src', 'cli.js');
  if (!existsSync(agentEntry)) throw new Error(`${agentEntry} missing: run npm run build`);
  const workDir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-dual-compare-'));
  let controlPlane: ControlPlane | undefined;
  try {
    controlPlane = await startControlPlane({ bindAddress: '0.0.0.0', serviceClusterIPRange: '10.96.0.0/16,fd00:10:96::/108' });
    log(`control plane up (service range ${controlPlane.serviceClusterIPRange})`);
    const clients = kubeClients(controlPlane.kubeconfigPath);
    const kubeconfigPath = join(workDir, 'proxy-kubeconfig');
    proxyKubeconfig(controlPlane, kubeconfigPath);
    log(`loading ${serviceCount} RequireDualStack Services x ${endpointsPerService} endpoints per family`);
    log(`  loaded in ${(await load(clients)).toFixed(1)} s`);
    const options: ProxyOptions = {
      kubeconfigPath, nodeName: NODE_NAME, clusterCIDR: CLUSTER_CIDRS, syncPeriod: '30s', minSyncPeriod: '1s', backend, agentEntry,
      kubeProxyBinary: controlPlane.binaries.kubeProxy, nodeFlags: [], logLevel: 'info',
    };
    const sequence = { next: 0 };
    const results = new Map<ProxyId, Awaited<ReturnType<typeof runOne>>>();
    for (const id of proxies) {
      log(`${id}: dual-stack, ${serviceCount} Services, backend ${backend}`);
      results.set(id, await runOne(id, clients, options, workDir, sequence));
    }
    process.stdout.write(`\n${serviceCount} RequireDualStack Services x ${endpointsPerService} endpoints per family, iptables-${backend}, ${trials} IPv6 endpoint changes\n`);
    process.stdout.write('proxy          first sync IPv4   first sync IPv6   IPv6 change median (payload)   IPv4 restores per IPv6 change\n');
    for (const [id, result] of results) {
      const latency = median(result.changes.map((change) => change.latencyMs));
      const bytes = median(result.changes.map((change) => change.ipv6Bytes));
      const ipv4 = result.changes.map((change) => `${change.ipv4Restores}`).join(',');
      process.stdout.write(
        `${id.padEnd(15)}${(result.first.IPv4?.seconds.toFixed(2) ?? '-').padStart(10)} s      ${(result.first.IPv6?.seconds.toFixed(2) ?? '-').padStart(10)} s      ${latency.toFixed(0).padStart(8)} ms (${bytes} B)          ${ipv4}\n`,
      );
    }
    const ours = results.get('kube-proxy-ts');
    const theirs = results.get('kube-proxy');
    if (ours !== undefined && theirs !== undefined) {
      const ratio = (family: 'IPv4' | 'IPv6'): string => {
        const a = ours.first[family]?.seconds;
        const b = theirs.first[family]?.seconds;
        return a === undefined || b === undefined ? '-' : `${(b / a).toFixed(2)}x`;
      };
      const both = (result: typeof ours): number | undefined =>
        result.first.IPv4 === undefined || result.first.IPv6 === undefined ? undefined : Math.max(result.first.IPv4.seconds, result.first.IPv6.seconds);
      const oursBoth = both(ours);
      const theirsBoth = both(theirs);
      process.stdout.write(`upstream / kube-proxy-ts, first sync: IPv4 ${ratio('IPv4')}, IPv6 ${ratio('IPv6')}, both families programmed ${oursBoth === undefined || theirsBoth === undefined ? '-' : `${(theirsBoth / oursBoth).toFixed(2)}x`}\n`);
    }
  } finally {
    killAllProxiesNow();
    await controlPlane?.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/dual-stack-compare failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
