// Takeover under live traffic on the real node (hack/local-cluster.sh): upstream kube-proxy serves
// the node while pods send steady TCP and UDP requests to a ClusterIP and to a NodePort; kube-proxy
// stops (its rules stay) and kube-proxy-ts, installed from manifests/, takes over; then a rolling
// update of the kube-proxy-ts DaemonSet replaces its pod. Every request is logged by the client
// pod with its time; the test counts the failed ones inside each switch and prints the figures.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostFootprint, kubectl, localCluster, localClusterEnv, type LocalClusterEnv } from '../harness/local-cluster.js';

const namespace = 'takeover';
const agnhost = 'registry.k8s.io/e2e-test-images/agnhost:2.53';
// How long traffic runs before, between and after the switches: long enough for a steady rate on
// each side of a switch, and for late failures (a proxy that breaks flows seconds after it starts).
const settleMs = 15_000;

const flows = ['tcp-clusterip', 'tcp-nodeport', 'udp-clusterip', 'udp-nodeport'] as const;
type Flow = (typeof flows)[number];

// Each flow: one request every 100 ms, a new connection (TCP) or a new socket (UDP, so a new
// conntrack entry) each time, 2 s to answer. bash's /dev/udp sends the datagram; dd reads the whole
// reply in one read (bash's `read` takes a datagram one byte at a time and loses the rest).
const clientScript = `
flow() {
  local name=$1 kind=$2 host=$3 port=$4 ok reply
  while true; do
    ok=0
    if [[ $kind == tcp ]]; then
      reply=$(curl -s --max-time 2 "http://$host:$port/hostname") && [[ $reply == web-* ]] && ok=1
    elif exec 3<>"/dev/udp/$host/$port"; then
      printf hostname >&3
      reply=$(timeout 2 dd bs=512 count=1 status=none <&3) && [[ $reply == web-* ]] && ok=1
      exec 3>&-
    fi
    echo "$EPOCHREALTIME $name $ok"
    sleep 0.1
  done
}
flow tcp-clusterip tcp "$CLUSTER_IP" 80 &
flow tcp-nodeport tcp "$NODE_IP" "$TCP_NODE_PORT" &
flow udp-clusterip udp "$CLUSTER_IP" 81 &
flow udp-nodeport udp "$NODE_IP" "$UDP_NODE_PORT" &
wait
`;

interface Sample {
  readonly atMs: number;
  readonly flow: Flow;
  readonly ok: boolean;
}

interface Window {
  readonly name: string;
  readonly fromMs: number;
  readonly toMs: number;
}

type Counts = Record<Flow, { readonly requests: number; readonly failed: number }>;

function count(samples: readonly Sample[], window: Window): Counts {
  const counts = Object.fromEntries(flows.map((flow) => [flow, { requests: 0, failed: 0 }])) as Record<Flow, { requests: number; failed: number }>;
  for (const sample of samples) {
    if (sample.atMs < window.fromMs || sample.atMs > window.toMs) continue;
    counts[sample.flow].requests += 1;
    if (!sample.ok) counts[sample.flow].failed += 1;
  }
  return counts;
}

/** Seconds from the kube-proxy-ts pod's creation to its Ready condition (its agent's first sync). */
async function podCreatedToReady(): Promise<number> {
  const pods = JSON.parse(await kubectl(env, ['-n', 'kube-proxy-ts', 'get', 'pods', '-o', 'json'])) as {
    items: Array<{ metadata: { creationTimestamp: string; deletionTimestamp?: string }; status: { conditions?: Array<{ type: string; status: string; lastTransitionTime: string }> } }>;
  };
  const pod = pods.items.find((item) => item.metadata.deletionTimestamp === undefined);
  const ready = pod?.status.conditions?.find((condition) => condition.type === 'Ready' && condition.status === 'True');
  if (pod === undefined || ready === undefined) return Number.NaN;
  return (Date.parse(ready.lastTransitionTime) - Date.parse(pod.metadata.creationTimestamp)) / 1000;
}

let env: LocalClusterEnv;
let wasUp = false;
let dir: string;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.sequential('takeover under live traffic on a real node', () => {
  beforeAll(async () => {
    wasUp = (await hostFootprint()).netns.includes('kpts-node');
    await localCluster(['up']);
    env = await localClusterEnv();
    await localCluster(['uninstall-proxy']);
    dir = mkdtempSync(join(tmpdir(), 'takeover-'));
  });

  afterAll(async () => {
    if (env !== undefined) await kubectl(env, ['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    if (!wasUp) await localCluster(['down']).catch(() => undefined);
  });

  it('kube-proxy -> kube-proxy-ts, then a rolling update of kube-proxy-ts: no failed request', async () => {
    await localCluster(['install-proxy', 'kube-proxy']);

    const manifest = join(dir, 'workload.yaml');
    writeFileSync(
      manifest,
      `apiVersion: v1
kind: Namespace
metadata: {name: ${namespace}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${namespace}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: netexec
          image: ${agnhost}
          imagePullPolicy: Never
          args: ["netexec", "--http-port=8080", "--udp-port=8081"]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ${namespace}}
spec:
  type: NodePort
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
    - {name: udp, port: 81, targetPort: 8081, protocol: UDP}
`,
    );
    await kubectl(env, ['apply', '-f', manifest]);
    await kubectl(env, ['-n', namespace, 'rollout', 'status', 'deployment/web', '--timeout=120s'], 150_000);
    const service = JSON.parse(await kubectl(env, ['-n', namespace, 'get', 'service', 'web', '-o', 'json'])) as {
      spec: { clusterIP: string; ports: Array<{ name: string; nodePort: number }> };
    };
    const nodePort = (name: string): number => service.spec.ports.find((port) => port.name === name)?.nodePort ?? 0;
    const clientManifest = join(dir, 'client.yaml');
    writeFileSync(
      clientManifest,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client', namespace },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'client',
              image: agnhost,
              imagePullPolicy: 'Never',
              command: ['bash', '-c', clientScript],
              env: [
                { name: 'CLUSTER_IP', value: service.spec.clusterIP },
                { name: 'NODE_IP', value: env.nodeIP },
                { name: 'TCP_NODE_PORT', value: String(nodePort('http')) },
                { name: 'UDP_NODE_PORT', value: String(nodePort('udp')) },
              ],
            },
          ],
        },
      }),
    );
    await kubectl(env, ['apply', '-f', clientManifest]);
    await kubectl(env, ['-n', namespace, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s'], 150_000);
    await sleep(settleMs);

    // Switch 1: kube-proxy stops (rules stay), kube-proxy-ts is applied and becomes Ready.
    const takeoverFrom = Date.now();
    await localCluster(['install-proxy', 'kube-proxy-ts', '--takeover']);
    const takeoverReady = Date.now();
    const takeoverPodReady = await podCreatedToReady();
    await sleep(settleMs);

    // Switch 2: a rolling update (a new pod template: the old pod goes, a new one starts).
    const rolloutFrom = Date.now();
    await kubectl(env, ['-n', 'kube-proxy-ts', 'patch', 'daemonset', 'kube-proxy-ts', '--type=merge', '-p',
      JSON.stringify({ spec: { template: { metadata: { annotations: { 'kube-proxy-ts.test/restarted-at': new Date().toISOString() } } } } })]);
    await kubectl(env, ['-n', 'kube-proxy-ts', 'rollout', 'status', 'daemonset/kube-proxy-ts', '--timeout=180s'], 200_000);
    const rolloutReady = Date.now();
    const rolloutPodReady = await podCreatedToReady();
    await sleep(settleMs);

    const log = await kubectl(env, ['-n', namespace, 'logs', 'client'], 60_000);
    const samples: Sample[] = [];
    for (const line of log.split('\n')) {
      const match = /^(\d+)[.,](\d+) (\S+) ([01])$/.exec(line.trim());
      if (match === null || !flows.includes(match[3] as Flow)) continue;
      samples.push({ atMs: Number(match[1]) * 1000 + Number(match[2]!.slice(0, 3).padEnd(3, '0')), flow: match[3] as Flow, ok: match[4] === '1' });
    }
    const first = samples[0]?.atMs ?? 0;
    const windows: Window[] = [
      { name: 'before (kube-proxy)', fromMs: first, toMs: takeoverFrom },
      { name: 'takeover: install-proxy kube-proxy-ts --takeover until Ready (+15 s)', fromMs: takeoverFrom, toMs: takeoverReady + settleMs },
      { name: 'rolling update of kube-proxy-ts (+15 s)', fromMs: rolloutFrom, toMs: rolloutReady + settleMs },
    ];
    const report = windows.map((window) => ({ window, counts: count(samples, window) }));
    const lines = [
      `takeover under live traffic: install-proxy --takeover took ${((takeoverReady - takeoverFrom) / 1000).toFixed(1)} s ` +
        `(image check and import, kube-proxy stopped, apply, rollout; the kube-proxy-ts pod went from created to Ready in ${takeoverPodReady} s); ` +
        `the rolling update took ${((rolloutReady - rolloutFrom) / 1000).toFixed(1)} s (new pod created to Ready in ${rolloutPodReady} s)`,
      ...report.map(({ window, counts }) =>
        `  ${window.name} (${((window.toMs - window.fromMs) / 1000).toFixed(1)} s): ` +
        flows.map((flow) => `${flow} ${counts[flow].failed}/${counts[flow].requests} failed`).join(', '),
      ),
    ];
    console.log(lines.join('\n'));

    // The traffic ran: every flow answered before the first switch and in each window.
    for (const { counts } of report) for (const flow of flows) expect(counts[flow].requests, lines.join('\n')).toBeGreaterThan(20);
    expect(Object.values(report[0]!.counts).every((c) => c.failed === 0), lines.join('\n')).toBe(true);
    // The bound: 0. Both proxies use the same chain names, kube-proxy's rules stay in the kernel
    // while no proxy runs, and each proxy rewrites them in one iptables-restore transaction, so no
    // new connection or datagram ever meets a missing or half-written rule; established flows keep
    // their conntrack entries. Nothing in the Services changes during the switches, so no stale
    // UDP entry has to go either.
    for (const { counts } of report.slice(1)) for (const flow of flows) expect(counts[flow].failed, lines.join('\n')).toBe(0);
  });
});
