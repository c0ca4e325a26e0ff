// The local demo: etcd + kube-apiserver on 127.0.0.1, a node and an external client in network
// namespaces, kube-proxy-ts running in the node, three pods behind a ClusterIP and a NodePort
// Service, and requests showing which pod answered. Everything it creates is removed on exit.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, waitFor } from '../test/harness/agent-process.js';
import { startControlPlane, type ControlPlane } from '../test/harness/control-plane.js';
import { exec } from '../test/harness/exec.js';
import { createEndpointSlice, createNamespace, createNode, createService, kubeClients, setEndpoints } from '../test/harness/kube.js';
import { CLUSTER_CIDR, EXTERNAL_IP, Topology, type PodHandle, type ProbeResult } from '../test/harness/topology.js';
import { kubeVersion } from '../test/harness/versions.js';
import { appliedSyncs, backendOf, describeSync, formatSpread, keyMetrics, parseMetricsText, sendRequests, spreadProblems, type RequestOutcome } from './report.js';

const NAMESPACE = 'demo';
const NODE_NAME = 'demo-node';
const POD_NAMES = ['web-1', 'web-2', 'web-3'] as const;
const POD_PORT = 8080;
const SERVICE_PORT = 80;
const NODE_PORT = 30080;
const METRICS_PORT = 10249;
const HEALTHZ_PORT = 10256;

export interface LocalOptions {
  readonly once: boolean;
  readonly requests: number;
}

class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** Ctrl-C / SIGTERM: the first asks the demo to stop and clean up; a second one exits at once. */
class Interrupt {
  private received: NodeJS.Signals | undefined;
  private wake: () => void = () => undefined;
  readonly signalled: Promise<void> = new Promise((resolve) => {
    this.wake = resolve;
  });

  constructor(onSecond: () => void) {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(signal, () => {
        if (this.received !== undefined) {
          onSecond();
          process.exit(130);
        }
        this.received = signal;
        process.stdout.write(`\n${signal}: stopping and cleaning up (again to exit at once)...\n`);
        this.wake();
      });
    }
  }

  get signal(): NodeJS.Signals | undefined {
    return this.received;
  }

  /** Throws between steps once a signal came. */
  check(): void {
    if (this.received !== undefined) throw new Interrupted(this.received);
  }
}

interface Cleanup {
  readonly what: string;
  readonly run: () => Promise<void>;
}

async function runCleanups(cleanups: Cleanup[]): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup.run();
    } catch (error: unknown) {
      process.stderr.write(`demo: cleanup of ${cleanup.what} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}

function requestOutcome(result: ProbeResult): RequestOutcome {
  return result.ok ? { ok: true, pod: result.reply.pod } : { ok: false, detail: `${result.error}: ${result.detail}` };
}

export async function runLocal(options: LocalOptions): Promise<number> {
  const startedAt = Date.now();
  const say = (text: string): void => {
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(1).padStart(5);
    process.stdout.write(`[${seconds}s] ${text}\n`);
  };
  const cleanups: Cleanup[] = [];
  let topologyId: string | undefined;
  const interrupt = new Interrupt(() => {
    if (topologyId !== undefined) process.stderr.write(`demo: exiting at once; network namespaces ${topologyId}-* may remain: ip netns list\n`);
  });
  const workDir = mkdtempSync(join(tmpdir(), 'kube-proxy-ts-demo-'));
  const keep = process.env['KUBE_PROXY_TS_KEEP'] === '1';
  cleanups.push({ what: workDir, run: async () => (keep ? say(`kept ${workDir} (KUBE_PROXY_TS_KEEP=1)`) : rmSync(workDir, { recursive: true, force: true })) });
  let agentLogTail: (() => string) | undefined;
  try {
    process.stdout.write('kube-proxy-ts demo: a local control plane, one node in a network namespace, kube-proxy-ts on it.\n');
    say(`starting etcd and kube-apiserver ${kubeVersion}...`);
    const controlPlane: ControlPlane = await startControlPlane();
    cleanups.push({ what: 'the control plane', run: () => controlPlane.stop() });
    say(`control plane ready in ${(controlPlane.startup.totalMs / 1000).toFixed(1)} s: ${controlPlane.server}, admin kubeconfig ${controlPlane.kubeconfigPath}`);
    interrupt.check();

    const topology = await Topology.create([NODE_NAME]);
    topologyId = topology.id;
    cleanups.push({ what: 'the network namespaces', run: () => topology.destroy() });
    const node = topology.node(NODE_NAME);
    say(`node ${NODE_NAME}: netns ${node.netns}, ${node.ip} on the LAN, pod CIDR ${node.podCIDR}; external client: netns ${topology.externalNetns}, ${EXTERNAL_IP}`);
    interrupt.check();

    const clients = kubeClients(controlPlane.kubeconfigPath);
    await createNode(clients.core, { name: NODE_NAME, internalIP: node.ip, podCIDRs: [node.podCIDR] });
    interrupt.check();

    say(`starting kube-proxy-ts run inside ${node.netns}...`);
    // The node reaches the apiserver (on the host's 127.0.0.1) through a Unix-socket bridge. The
    // harness runs agents for tests with short periods and debug logs; the demo uses the defaults.
    const agent = await AgentProcess.start(
      {
        netns: node.netns,
        nodeName: NODE_NAME,
        kubeconfigPath: controlPlane.kubeconfigPath,
        clusterCIDR: CLUSTER_CIDR,
        logDir: workDir,
        readyTimeoutMs: 90_000,
        extraArgs: ['--sync-period', '30s', '--min-sync-period', '1s', '--log-level', 'info'],
      },
      controlPlane.server,
    );
    agentLogTail = () => agent.logTail(30);
    cleanups.push({ what: 'the agent', run: async () => void (await agent.stop({ keepLog: true })) });
    say(`agent synced and answers /healthz (iptables backend: ${backendOf(agent.log()) ?? 'unknown'}); log: ${agent.logPath}`);
    interrupt.check();

    const pods: PodHandle[] = [];
    for (const name of POD_NAMES) pods.push(await topology.addPod(node, name, { tcp: [POD_PORT] }));
    const client = await topology.addPod(node, 'client', {});
    interrupt.check();
    await createNamespace(clients.core, NAMESPACE);
    const endpoints = pods.map((pod) => ({ address: pod.ip, nodeName: NODE_NAME, ready: true }));
    const ports = [{ name: 'http', port: SERVICE_PORT, targetPort: POD_PORT }];
    const clusterIPService = await createService(clients.core, { namespace: NAMESPACE, name: 'web', ports });
    const nodePortService = await createService(clients.core, {
      namespace: NAMESPACE,
      name: 'web-nodeport',
      type: 'NodePort',
      ports: [{ name: 'http', port: SERVICE_PORT, targetPort: POD_PORT, nodePort: NODE_PORT }],
    });
    const slices = [];
    for (const serviceName of ['web', 'web-nodeport']) {
      slices.push(await createEndpointSlice(clients.discovery, { namespace: NAMESPACE, serviceName, ports: [{ name: 'http', port: POD_PORT }], endpoints }));
    }
    const webSliceName = slices[0]?.metadata?.name ?? '';
    const createdAt = Date.now();
    const clusterIP = clusterIPService.spec?.clusterIP ?? '';
    say(`pods ${pods.map((pod) => `${pod.name} ${pod.ip}`).join(', ')} (socat on :${POD_PORT}, each answers with its name)`);
    say(`Services ${NAMESPACE}/web (ClusterIP ${clusterIP}:${SERVICE_PORT}) and ${NAMESPACE}/web-nodeport (NodePort ${node.ip}:${NODE_PORT}, ClusterIP ${nodePortService.spec?.clusterIP ?? '?'}), one EndpointSlice each`);

    await waitFor(
      async () => {
        interrupt.check();
        if (!agent.running) throw new Error('the agent exited');
        // Both Services must be programmed before requests are counted: their objects arrive in
        // separate watch events, so the ClusterIP can answer one sync before the NodePort does.
        if (!(await topology.tcp(client.netns, clusterIP, SERVICE_PORT, { timeoutMs: 500 })).ok) return false;
        return (await topology.tcp(topology.externalNetns, node.ip, NODE_PORT, { timeoutMs: 500 })).ok;
      },
      60_000,
      'the first answers through the ClusterIP and the NodePort',
      200,
    );
    say(`rules programmed: the ClusterIP and the NodePort answered ${((Date.now() - createdAt) / 1000).toFixed(1)} s after the objects were created`);

    const labels = pods.map((pod) => ({ name: pod.name, ip: pod.ip }));
    const viaClusterIP = await sendRequests(options.requests, 4, async () => requestOutcome(await topology.tcp(client.netns, clusterIP, SERVICE_PORT)));
    interrupt.check();
    const viaNodePort = await sendRequests(options.requests, 4, async () => requestOutcome(await topology.tcp(topology.externalNetns, node.ip, NODE_PORT)));
    interrupt.check();
    process.stdout.write(`\n${options.requests} requests to ClusterIP ${clusterIP}:${SERVICE_PORT} from pod client (${client.ip}), one connection each:\n`);
    process.stdout.write(`${formatSpread(labels, viaClusterIP).join('\n')}\n`);
    process.stdout.write(`\n${options.requests} requests to NodePort ${node.ip}:${NODE_PORT} from the external client (${EXTERNAL_IP}):\n`);
    process.stdout.write(`${formatSpread(labels, viaNodePort).join('\n')}\n`);
    const problems = [...spreadProblems('ClusterIP', labels, viaClusterIP), ...spreadProblems('NodePort', labels, viaNodePort)];
    if (problems.length === 0) {
      process.stdout.write(`\nEvery pod answered through both Services: ${POD_NAMES.join(', ')}; no request failed.\n`);
    }

    // A change costs what changed: dropping one endpoint rewrites one Service chain and deletes one
    // endpoint chain; kube-proxy's partial sync would also rewrite its shared dispatch chains.
    const removed = pods[pods.length - 1];
    const remaining = pods.slice(0, -1);
    let scaleProblems: string[] = [];
    if (removed !== undefined) {
      interrupt.check();
      process.stdout.write(`\nScaling ${NAMESPACE}/web down: ${removed.name} leaves its EndpointSlice (web-nodeport keeps all three).\n`);
      const syncsBefore = appliedSyncs(agent.log()).length;
      await setEndpoints(clients.discovery, NAMESPACE, webSliceName, endpoints.filter((endpoint) => endpoint.address !== removed.ip));
      await waitFor(
        async () => {
          interrupt.check();
          return appliedSyncs(agent.log()).length > syncsBefore;
        },
        30_000,
        'the sync of the scale-down',
      );
      const sync = appliedSyncs(agent.log()).at(-1);
      if (sync !== undefined) process.stdout.write(`  ${describeSync(sync)}\n`);
      const afterScale = await sendRequests(options.requests, 4, async () => requestOutcome(await topology.tcp(client.netns, clusterIP, SERVICE_PORT)));
      process.stdout.write(`${options.requests} requests to ClusterIP ${clusterIP}:${SERVICE_PORT} again:\n`);
      process.stdout.write(`${formatSpread(remaining, afterScale).join('\n')}\n`);
      const strays = afterScale.answers.get(removed.name) ?? 0;
      process.stdout.write(`  ${removed.name}  ${removed.ip}  ${strays === 0 ? 'no longer an endpoint: 0 answered' : `still answered ${strays} times  <-- stale rules`}\n`);
      scaleProblems = spreadProblems('ClusterIP after scale-down', remaining, afterScale);
      if (strays > 0) scaleProblems.push(`ClusterIP after scale-down: ${removed.name} still answered ${strays} times`);
      interrupt.check();
    }

    const metrics = await exec('ip', ['netns', 'exec', node.netns, 'curl', '-s', '-m', '5', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
    process.stdout.write(`\nMetrics of the agent (listening inside ${node.netns}):\n`);
    process.stdout.write(`${metrics.code === 0 ? keyMetrics(parseMetricsText(metrics.stdout), Date.now() / 1000).join('\n') : `  (could not read: ${metrics.stderr.trim()})`}\n`);
    const save = backendOf(agent.log()) === 'legacy' ? 'iptables-legacy-save' : 'iptables-nft-save';
    process.stdout.write(
      '\nLook around (as root, while the demo runs):\n' +
        `  ip netns exec ${node.netns} curl -s localhost:${METRICS_PORT}/metrics | grep kubeproxy_\n` +
        `  ip netns exec ${node.netns} curl -s localhost:${HEALTHZ_PORT}/healthz\n` +
        `  ip netns exec ${node.netns} ${save} -t nat | grep -e KUBE-SVC -e KUBE-NODEPORTS\n` +
        `  ip netns exec ${client.netns} socat - TCP4:${clusterIP}:${SERVICE_PORT}\n` +
        `  ip netns exec ${topology.externalNetns} socat - TCP4:${node.ip}:${NODE_PORT}\n` +
        `  KUBECONFIG=${controlPlane.kubeconfigPath} ${controlPlane.binaries.kubectl} get svc,endpointslices -n ${NAMESPACE}\n` +
        `  tail -f ${agent.logPath}\n`,
    );

    problems.push(...scaleProblems);
    if (problems.length > 0) process.stdout.write(`\nProblems:\n${problems.map((problem) => `  ${problem}`).join('\n')}\n`);
    if (options.once) {
      if (problems.length > 0) {
        process.stdout.write(`\nLast agent log lines:\n${agent.logTail(30)}\n\ndemo: FAILED\n`);
        return 1;
      }
      process.stdout.write('\ndemo: OK (--once: cleaning up)\n');
      return 0;
    }
    process.stdout.write('\nRunning until Ctrl-C; then the agent, the namespaces, the control plane and temp files are removed.\n');
    let watcher: NodeJS.Timeout | undefined;
    const agentGone = new Promise<void>((resolve) => {
      watcher = setInterval(() => {
        if (!agent.running) resolve();
      }, 1000);
    });
    await Promise.race([interrupt.signalled, agentGone]);
    clearInterval(watcher);
    if (interrupt.signal === undefined) {
      process.stdout.write(`demo: the agent exited; last log lines:\n${agent.logTail(30)}\n`);
      return 1;
    }
    return 0;
  } catch (error: unknown) {
    if (error instanceof Interrupted) return 130;
    process.stderr.write(`\ndemo: FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    if (agentLogTail !== undefined) process.stderr.write(`last agent log lines:\n${agentLogTail()}\n`);
    return 1;
  } finally {
    say('cleaning up...');
    await runCleanups(cleanups);
    say('done');
  }
}
