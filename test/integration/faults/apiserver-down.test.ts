// Fault: the apiserver is unreachable for 2 minutes while the cluster keeps changing. The agent
// reaches the shared apiserver through a TCP forwarder that this test closes (connections refused,
// open ones cut) and reopens on the same port; Services and EndpointSlices are created, changed and
// deleted all along, through the apiserver itself. Afterwards the kernel must hold exactly what the
// apiserver says: updates lost 0. Prints the changes made during the outage and how long the agent
// took to converge once it could reach the apiserver again.

import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kernelSkipReason } from '../../harness/netns.js';
import { endpointChainName, serviceChainNames, startAgentInProcess, type InProcessAgent } from '../../harness/agent-in-process.js';
import { freePorts } from '../../harness/ports.js';
import { createEndpointSlice, createNamespace, createService, deleteEndpointSlice, deleteNamespace, deleteService, kubeClients, setEndpoints, type KubeClients } from '../../harness/kube.js';

const skipReason = kernelSkipReason();
if (skipReason !== undefined) console.warn(`skipping test/integration/faults/apiserver-down.test.ts: ${skipReason}`);

const OUTAGE_MS = 120_000;
const POOL = 10;

/** A TCP forwarder to the apiserver that can be cut (listener closed, connections destroyed) and reopened. */
class Forwarder {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  constructor(readonly port: number, private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(this.target);
      for (const socket of [inbound, outbound]) this.sockets.add(socket);
      const close = (): void => {
        for (const socket of [inbound, outbound]) {
          socket.destroy();
          this.sockets.delete(socket);
        }
      };
      inbound.on('error', close).on('close', close);
      outbound.on('error', close).on('close', close);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe.skipIf(skipReason !== undefined)('fault: apiserver unreachable for 2 minutes under churn', () => {
  let clients: KubeClients;
  let node: InProcessAgent;
  let forwarder: Forwarder;
  let namespace: string | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kpt-apidown-'));

  beforeAll(async () => {
    clients = kubeClients(inject('kubeconfigPath'));
    const api = new URL(inject('apiserverURL'));
    const [port] = await freePorts(1);
    forwarder = new Forwarder(port ?? 0, { host: api.hostname, port: Number(api.port) });
    await forwarder.open();
    // The admin kubeconfig with the forwarder's address (127.0.0.1 too: the certificate still fits).
    const kubeconfig = parseYaml(readFileSync(inject('kubeconfigPath'), 'utf8')) as { clusters: { cluster: { server: string } }[] };
    for (const cluster of kubeconfig.clusters) cluster.cluster.server = `https://127.0.0.1:${forwarder.port}`;
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, toYaml(kubeconfig));
    node = await startAgentInProcess({ kubeconfigPath, syncPeriod: '10s', minSyncPeriod: '1s', historyLimit: 0 });
  });

  afterAll(async () => {
    await node?.stop();
    await forwarder?.cut();
    if (namespace !== undefined) await deleteNamespace(clients, namespace);
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses no update', async () => {
    const ns = await createNamespace(clients.core);
    namespace = ns;
    const http = [{ name: 'http', port: 80, targetPort: 8080 }];
    // What the apiserver holds: Service name -> endpoint addresses (absent = no Service).
    const state = new Map<string, string[]>();
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const addresses = (): string[] => [...new Set(Array.from({ length: 1 + random(3) }, () => `10.244.7.${1 + random(40)}`))];
    const churn = async (): Promise<void> => {
      const name = `svc-${random(POOL)}`;
      const current = state.get(name);
      if (current === undefined) {
        const endpoints = addresses();
        await createService(clients.core, { namespace: ns, name, ports: http });
        await createEndpointSlice(clients.discovery, { namespace: ns, serviceName: name, name: `${name}-slice`, ports: [{ name: 'http', port: 8080 }], endpoints: endpoints.map((address) => ({ address })) });
        state.set(name, endpoints);
      } else if (random(5) === 0) {
        await deleteService(clients.core, ns, name);
        await deleteEndpointSlice(clients.discovery, ns, `${name}-slice`);
        state.delete(name);
      } else {
        const endpoints = addresses();
        await setEndpoints(clients.discovery, ns, `${name}-slice`, endpoints.map((address) => ({ address })));
        state.set(name, endpoints);
      }
    };
    const chainsOf = (name: string, endpoints: readonly string[]): string[] => [
      serviceChainNames(ns, name, 'http').cluster,
      ...endpoints.map((address) => endpointChainName(ns, name, 'http', address, 8080)),
    ];
    // Every chain any Service of the pool could have: what the kernel holds of them must be exactly the expected ones.
    const candidates = new Set(Array.from({ length: POOL }, (_, index) => chainsOf(`svc-${index}`, Array.from({ length: 40 }, (__, host) => `10.244.7.${host + 1}`))).flat());
    const lost = async (): Promise<{ missing: string[]; stale: string[] }> => {
      const expected = new Set([...state].flatMap(([name, endpoints]) => chainsOf(name, endpoints)));
      const nat = await node.kernel('nat');
      const held = [...nat.chains].filter((chain) => candidates.has(chain));
      return { missing: [...expected].filter((chain) => !nat.chains.has(chain)), stale: held.filter((chain) => !expected.has(chain)) };
    };

    let changes = 0;
    const until = async (ms: number): Promise<number> => {
      const end = Date.now() + ms;
      let made = 0;
      while (Date.now() < end) {
        await churn();
        made++;
        await new Promise((resolve) => setTimeout(resolve, 400));
      }
      return made;
    };
    changes += await until(10_000);
    await node.waitFor('the agent follows the churn before the outage', async () => {
      const { missing, stale } = await lost();
      return missing.length === 0 && stale.length === 0;
    }, 30_000);

    const restartsBefore = await node.metric('kube_proxy_ts_watch_restarts_total');
    await forwarder.cut();
    const duringOutage = await until(OUTAGE_MS);
    changes += duringOutage;
    await forwarder.open();
    const reconnectedAt = Date.now();
    const after = await until(5000);
    changes += after;
    const result = await node.waitFor('the kernel holds what the apiserver holds', async () => {
      const found = await lost();
      return found.missing.length === 0 && found.stale.length === 0 ? found : undefined;
    }, 120_000);
    const convergedMs = Date.now() - reconnectedAt;
    const restarts = (await node.metric('kube_proxy_ts_watch_restarts_total')) - restartsBefore;
    console.log(
      `apiserver unreachable for ${OUTAGE_MS / 1000} s under churn: ${changes} changes in all, ${duringOutage} during the outage, ${after} right after it\n` +
        `  converged ${convergedMs} ms after the apiserver was reachable again (the last ${after} changes included); watch restarts: ${restarts}\n` +
        `  updates lost: ${result.missing.length + result.stale.length}`,
    );
    expect(result).toEqual({ missing: [], stale: [] });
    expect(restarts).toBeGreaterThan(0);
  });
});
