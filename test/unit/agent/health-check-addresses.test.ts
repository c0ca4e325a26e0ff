// healthCheckNodePort servers honour nodePortAddresses: the agent, wired to a stand-in apiserver
// and the fake netfilter, listens only on the Node's matching IP, once the Node is known, and
// follows the Node when its IP changes. All addresses are in 127.0.0.0/8 (local on Linux), so a
// wrong bind (0.0.0.0) shows as an answer on 127.0.0.1.
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgentOnStandIn, type AgentOnStandIn } from './agent-on-stand-in.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      const port = address !== null && typeof address === 'object' ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The HTTP status at host:port, or the connect error's code. */
async function probe(host: string, port: number): Promise<number | string> {
  try {
    return (await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch (error: unknown) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? String(error);
  }
}

function node(...ips: string[]): unknown {
  return { metadata: { name: 'node1', resourceVersion: ips.join(',') }, status: { addresses: ips.map((address) => ({ type: 'InternalIP', address })) } };
}

/** The HTTP status at [ip]:port over IPv6, or the connect error's code. */
function probe6(ip: string, port: number): Promise<number | string> {
  return probe(`[${ip}]`, port);
}

function lbService(healthCheckNodePort: number, dualStack = false): unknown {
  return {
    metadata: { namespace: 'default', name: 'lb', resourceVersion: '1' },
    spec: {
      type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort,
      ...(dualStack
        ? { clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50', 'fd00:96::50'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }
        : { clusterIP: '10.96.0.50', clusterIPs: ['10.96.0.50'] }),
      ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30080 }],
    },
  };
}

/** A dual-stack agent (one proxier per family) whose Node has 127.0.0.2 and ::1, the LoadBalancer
 * Service having a local endpoint in each family. */
async function startDualStackAgent(args: readonly string[], healthCheckNodePort: number): Promise<AgentOnStandIn> {
  const slice = (addressType: 'IPv4' | 'IPv6', address: string): unknown => ({
    metadata: { namespace: 'default', name: `lb-${addressType.toLowerCase()}`, resourceVersion: '1', labels: { 'kubernetes.io/service-name': 'lb' } },
    addressType,
    endpoints: [{ addresses: [address], conditions: { ready: true }, nodeName: 'node1' }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  const started = await startAgentOnStandIn(
    args,
    { services: [lbService(healthCheckNodePort, true)], endpointSlices: [slice('IPv4', '10.244.0.5'), slice('IPv6', 'fd00:244::5')], nodes: [node('127.0.0.2', '::1')] },
    { families: ['IPv4', 'IPv6'] },
  );
  cleanups.push(() => started.stop());
  return started;
}

async function startAgent(nodePortAddresses: string, healthCheckNodePort: number): Promise<AgentOnStandIn> {
  const service = lbService(healthCheckNodePort);
  const slice = {
    metadata: { namespace: 'default', name: 'lb-1', resourceVersion: '1', labels: { 'kubernetes.io/service-name': 'lb' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true }, nodeName: 'node1' }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
  const started = await startAgentOnStandIn(['--nodeport-addresses', nodePortAddresses], { services: [service], endpointSlices: [slice], nodes: [node('127.0.0.2')] });
  cleanups.push(() => started.stop());
  return started;
}

describe('healthCheckNodePort servers with nodePortAddresses', () => {
  it('listen only on the Node IP that nodePortAddresses matches (primary), never on every address', async () => {
    const port = await freePort();
    await startAgent('primary', port);
    expect(await probe('127.0.0.2', port)).toBe(200);
    expect(await probe('127.0.0.1', port)).toBe('ECONNREFUSED');
  });

  it('move with the Node when its IP changes', async () => {
    const port = await freePort();
    const { apiserver } = await startAgent('127.0.0.0/29', port);
    expect(await probe('127.0.0.2', port)).toBe(200);
    // 127.0.0.1 is in the CIDR: kube-proxy serves the loopback there too (a local interface address).
    expect(await probe('127.0.0.1', port)).toBe(200);
    expect(await probe('127.0.0.3', port)).toBe('ECONNREFUSED');
    const [watch] = apiserver.openWatches('/api/v1/nodes');
    watch?.send('MODIFIED', node('127.0.0.3'));
    const deadline = Date.now() + 5_000;
    while ((await probe('127.0.0.3', port)) !== 200 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await probe('127.0.0.3', port)).toBe(200);
    expect(await probe('127.0.0.2', port)).toBe('ECONNREFUSED');
  });
});

describe('healthCheckNodePort servers on a dual-stack node', () => {
  it('answer over IPv6 as well as IPv4 when nodePortAddresses is unset', async () => {
    const port = await freePort();
    await startDualStackAgent([], port);
    expect(await probe('127.0.0.1', port)).toBe(200);
    expect(await probe6('::1', port)).toBe(200);
  });

  it('answer on the matching IPs of each family when nodePortAddresses lists CIDRs', async () => {
    const ipv6Only = await freePort();
    await startDualStackAgent(['--nodeport-addresses', '::1/128'], ipv6Only);
    expect(await probe6('::1', ipv6Only)).toBe(200);
    // No IPv4 CIDR: IPv4 NodePorts match every address (kube-proxy's matchAll), so does the server.
    expect(await probe('127.0.0.2', ipv6Only)).toBe(200);

    const both = await freePort();
    await startDualStackAgent(['--nodeport-addresses', '127.0.0.2/32,::1/128'], both);
    expect(await probe('127.0.0.2', both)).toBe(200);
    expect(await probe6('::1', both)).toBe(200);
    expect(await probe('127.0.0.1', both)).toBe('ECONNREFUSED');

    const ipv4Only = await freePort();
    await startDualStackAgent(['--nodeport-addresses', '127.0.0.2/32'], ipv4Only);
    expect(await probe('127.0.0.2', ipv4Only)).toBe(200);
    // No IPv6 CIDR: every IPv6 address, as that family's NodePorts.
    expect(await probe6('::1', ipv4Only)).toBe(200);
  });
});
