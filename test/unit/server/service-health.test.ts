import { createServer, type Server } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { createMetrics } from '../../../src/server/metrics.js';
import { ServiceHealthServers, type ServiceHealthEntry } from '../../../src/server/service-health.js';

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function listenTcp(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve(server));
  });
}

function closeTcp(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Ports the kernel just handed out and took back: free for the test (barring a rare race). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => listenTcp(0)));
  const ports = servers.map((server) => {
    const address = server.address();
    return address !== null && typeof address === 'object' ? address.port : 0;
  });
  await Promise.all(servers.map(closeTcp));
  return ports;
}

function setup(options: { healthy?: () => boolean } = {}) {
  const logLines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) } });
  const registry = new Registry();
  const metrics = createMetrics(registry, { processMetrics: false });
  const servers = new ServiceHealthServers({
    isProxyHealthy: options.healthy ?? (() => true),
    addresses: ['127.0.0.1'],
    logger,
    metrics,
  });
  cleanups.push(() => servers.close());
  return { servers, registry, logLines };
}

function services(...entries: ServiceHealthEntry[]): ReadonlyMap<string, ServiceHealthEntry> {
  return new Map(entries.map((entry) => [`${entry.namespace}/${entry.name}`, entry]));
}

async function probe(port: number, path = '/'): Promise<{ status: number; weight: string | null; text: string; type: string | null }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return {
    status: response.status,
    weight: response.headers.get('x-load-balancing-endpoint-weight'),
    type: response.headers.get('content-type'),
    text: await response.text(),
  };
}

async function gauge(registry: Registry, name: string): Promise<number | undefined> {
  return (await registry.getSingleMetric(name)?.get())?.values[0]?.value;
}

describe('ServiceHealthServers', () => {
  it('answers 200 with the local endpoint count on any path while the proxy is healthy', async () => {
    const [port = 0] = await freePorts(1);
    const { servers, registry } = setup();
    const result = await servers.sync(services({ namespace: 'shop', name: 'web', healthCheckNodePort: port, localEndpoints: 2 }));
    expect(result).toEqual({ listening: [port], failed: [] });

    const answer = await probe(port, '/healthz');
    expect(answer.status).toBe(200);
    expect(answer.weight).toBe('2');
    expect(answer.type).toBe('application/json');
    expect(answer.text).toBe('{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}');
    expect((await probe(port, '/anything/else')).status).toBe(200);
    expect(await gauge(registry, 'kube_proxy_ts_health_check_node_port_servers')).toBe(1);
  });

  it('answers 503 when the node has no local endpoint, and updates the count in place', async () => {
    const [port = 0] = await freePorts(1);
    const { servers } = setup();
    await servers.sync(services({ namespace: 'shop', name: 'web', healthCheckNodePort: port, localEndpoints: 0 }));
    const none = await probe(port);
    expect(none.status).toBe(503);
    expect(none.weight).toBe('0');
    expect(JSON.parse(none.text)).toEqual({ service: { namespace: 'shop', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true });

    await servers.sync(services({ namespace: 'shop', name: 'web', healthCheckNodePort: port, localEndpoints: 3 }));
    const some = await probe(port);
    expect(some.status).toBe(200);
    expect(some.weight).toBe('3');
    expect(servers.ports()).toEqual([port]);
  });

  it('answers 503 with local endpoints while the proxy is unhealthy', async () => {
    const [port = 0] = await freePorts(1);
    let healthy = false;
    const { servers } = setup({ healthy: () => healthy });
    await servers.sync(services({ namespace: 'a', name: 'b', healthCheckNodePort: port, localEndpoints: 1 }));
    const answer = await probe(port);
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.text)).toMatchObject({ localEndpoints: 1, serviceProxyHealthy: false });
    healthy = true;
    expect((await probe(port)).status).toBe(200);
  });

  it('closes the server of a Service that is gone, and moves a Service whose port changed', async () => {
    const [first = 0, second = 0, third = 0] = await freePorts(3);
    const { servers, registry } = setup();
    await servers.sync(
      services(
        { namespace: 'a', name: 'one', healthCheckNodePort: first, localEndpoints: 1 },
        { namespace: 'a', name: 'two', healthCheckNodePort: second, localEndpoints: 1 },
      ),
    );
    expect(servers.ports()).toEqual([first, second].sort((x, y) => x - y));

    await servers.sync(services({ namespace: 'a', name: 'two', healthCheckNodePort: third, localEndpoints: 1 }));
    expect(servers.ports()).toEqual([third]);
    await expect(fetch(`http://127.0.0.1:${first}/`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${second}/`)).rejects.toThrow();
    expect((await probe(third)).status).toBe(200);
    expect(await gauge(registry, 'kube_proxy_ts_health_check_node_port_servers')).toBe(1);
  });

  it('survives a port in use: logs and counts it, serves the others, and retries on the next sync', async () => {
    const [busy = 0, free = 0] = await freePorts(2);
    const squatter = await listenTcp(busy);
    const { servers, registry, logLines } = setup();
    const wanted = services(
      { namespace: 'a', name: 'blocked', healthCheckNodePort: busy, localEndpoints: 1 },
      { namespace: 'a', name: 'fine', healthCheckNodePort: free, localEndpoints: 1 },
    );

    const result = await servers.sync(wanted);
    expect(result.listening).toEqual([free]);
    expect(result.failed).toEqual([{ port: busy, service: 'a/blocked', error: 'EADDRINUSE' }]);
    expect((await probe(free)).status).toBe(200);
    expect(await gauge(registry, 'kube_proxy_ts_health_check_node_port_listen_failures_total')).toBe(1);
    expect(logLines.some((line) => line.level === 'error' && line.port === busy && line.error === 'EADDRINUSE')).toBe(true);

    await closeTcp(squatter);
    const retried = await servers.sync(wanted);
    expect(retried).toEqual({ listening: [busy, free].sort((x, y) => x - y), failed: [] });
    expect((await probe(busy)).status).toBe(200);
  });

  it('ignores Services without a healthCheckNodePort and serves one Service when two claim a port', async () => {
    const [port = 0] = await freePorts(1);
    const { servers, logLines } = setup();
    const result = await servers.sync(
      services(
        { namespace: 'a', name: 'none', healthCheckNodePort: 0, localEndpoints: 1 },
        { namespace: 'b', name: 'second', healthCheckNodePort: port, localEndpoints: 0 },
        { namespace: 'a', name: 'first', healthCheckNodePort: port, localEndpoints: 4 },
      ),
    );
    expect(result).toEqual({ listening: [port], failed: [] });
    expect(JSON.parse((await probe(port)).text)).toMatchObject({ service: { namespace: 'a', name: 'first' }, localEndpoints: 4 });
    expect(logLines.some((line) => line.level === 'warn' && line.port === port)).toBe(true);
  });

  it('closes every server on close() and ignores syncs afterwards', async () => {
    const [port = 0] = await freePorts(1);
    const { servers, registry } = setup();
    await servers.sync(services({ namespace: 'a', name: 'b', healthCheckNodePort: port, localEndpoints: 1 }));
    await servers.close();
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    expect(await servers.sync(services({ namespace: 'a', name: 'b', healthCheckNodePort: port, localEndpoints: 1 }))).toEqual({
      listening: [],
      failed: [],
    });
    expect(await gauge(registry, 'kube_proxy_ts_health_check_node_port_servers')).toBe(0);
  });

  it('serializes overlapping syncs so the last one wins', async () => {
    const [first = 0, second = 0] = await freePorts(2);
    const { servers } = setup();
    const one = servers.sync(services({ namespace: 'a', name: 'b', healthCheckNodePort: first, localEndpoints: 1 }));
    const two = servers.sync(services({ namespace: 'a', name: 'b', healthCheckNodePort: second, localEndpoints: 1 }));
    await Promise.all([one, two]);
    expect(servers.ports()).toEqual([second]);
  });
});
