import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ProxierHealth } from '../../../src/server/health.js';
import { formatGoJsonTime, startHealthServer, startMetricsServer, type RunningServer } from '../../../src/server/http.js';
import { createMetrics } from '../../../src/server/metrics.js';

const running: RunningServer[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function started(server: Promise<RunningServer>): Promise<RunningServer> {
  const value = await server;
  running.push(value);
  return value;
}

describe('formatGoJsonTime', () => {
  it("writes times as Go's encoding/json does in UTC", () => {
    expect(formatGoJsonTime(Date.UTC(2025, 0, 2, 3, 4, 5))).toBe('2025-01-02T03:04:05Z');
    expect(formatGoJsonTime(Date.UTC(2025, 0, 2, 3, 4, 5, 120))).toBe('2025-01-02T03:04:05.12Z');
    expect(formatGoJsonTime(Date.UTC(2025, 0, 2, 3, 4, 10, 7))).toBe('2025-01-02T03:04:10.007Z');
    expect(formatGoJsonTime(undefined)).toBe('0001-01-01T00:00:00Z');
  });
});

describe('startMetricsServer', () => {
  it('serves the registry on /metrics in Prometheus text format and 404 elsewhere', async () => {
    const registry = new Registry();
    const metrics = createMetrics(registry, { processMetrics: false });
    metrics.observeSync({ kind: 'full', result: 'applied', durationSeconds: 0.01, finishedAtSeconds: 42 });
    const server = await started(startMetricsServer('127.0.0.1:0', registry));
    expect(server.port).toBeGreaterThan(0);

    const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    expect(text).toContain('# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram');
    expect(text).toContain('kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 42');

    expect((await fetch(`http://127.0.0.1:${server.port}/metrics?x=1`)).status).toBe(200);
    const other = await fetch(`http://127.0.0.1:${server.port}/`);
    expect(other.status).toBe(404);
    await other.text();
    const post = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
  });

  it("serves kube-proxy's /proxyMode, /configz and /healthz beside /metrics when told what to show", async () => {
    const registry = new Registry();
    const server = await started(startMetricsServer('127.0.0.1:0', registry, { proxyMode: 'iptables', configz: () => ({ 'kubeproxy.config.k8s.io': { mode: 'iptables' } }) }));
    const get = async (path: string): Promise<{ status: number; type: string | null; body: string }> => {
      const response = await fetch(`http://127.0.0.1:${server.port}${path}`);
      return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
    };
    expect(await get('/proxyMode')).toEqual({ status: 200, type: 'text/plain; charset=utf-8', body: 'iptables' });
    expect(await get('/configz')).toEqual({ status: 200, type: 'application/json', body: '{"kubeproxy.config.k8s.io":{"mode":"iptables"}}' });
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok' });
    expect((await get('/debug/pprof')).status).toBe(404);
    // Without it, only /metrics.
    const bare = await started(startMetricsServer('127.0.0.1:0', registry));
    const response = await fetch(`http://127.0.0.1:${bare.port}/proxyMode`);
    expect(response.status).toBe(404);
    await response.text();
  });

  it('rejects when the port is taken', async () => {
    const registry = new Registry();
    const first = await started(startMetricsServer({ host: '127.0.0.1', port: 0 }, registry));
    await expect(startMetricsServer({ host: '127.0.0.1', port: first.port }, registry)).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});

describe('startHealthServer', () => {
  const start = Date.UTC(2025, 5, 1, 12, 0, 0);

  function setup(): { health: ProxierHealth; advance: (ms: number) => void; probes: [string, number][] } {
    let now = start;
    const health = new ProxierHealth({ syncPeriodMs: 30_000, clock: () => now });
    return { health, advance: (ms) => (now += ms), probes: [] };
  }

  async function get(port: number, path: string): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
    const response = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
  }

  it('answers 200, then 503 once changes have been pending for 2 x syncPeriod, then 200 after a sync', async () => {
    const { health, advance, probes } = setup();
    const server = await started(startHealthServer('127.0.0.1:0', health, { onProbe: (probe, code) => probes.push([probe, code]) }));
    health.syncNode({ metadata: {}, spec: {} });
    health.updated();

    const healthy = await get(server.port, '/healthz');
    expect(healthy.status).toBe(200);
    expect(healthy.headers.get('content-type')).toBe('application/json');
    expect(healthy.headers.get('x-content-type-options')).toBe('nosniff');
    expect(healthy.body).toEqual({
      lastUpdated: '2025-06-01T12:00:00Z',
      currentTime: '2025-06-01T12:00:00Z',
      nodeEligible: true,
      healthy: true,
      status: { IPv4: { lastUpdated: '2025-06-01T12:00:00Z', healthy: true } },
    });

    health.queued();
    advance(59_000);
    expect((await get(server.port, '/healthz')).status).toBe(200);
    advance(1_000);
    const stale = await get(server.port, '/healthz');
    expect(stale.status).toBe(503);
    expect(stale.body).toEqual({
      lastUpdated: '2025-06-01T12:00:00Z',
      currentTime: '2025-06-01T12:01:00Z',
      nodeEligible: true,
      healthy: false,
      status: { IPv4: { lastUpdated: '2025-06-01T12:00:00Z', healthy: false } },
    });
    expect((await get(server.port, '/livez')).status).toBe(503);

    health.updated();
    expect((await get(server.port, '/healthz')).status).toBe(200);
    expect(probes).toEqual([
      ['healthz', 200],
      ['healthz', 200],
      ['healthz', 503],
      ['livez', 503],
      ['healthz', 200],
    ]);
  });

  it('reports both families of a dual-stack proxy, and 503 when only the IPv6 one is stuck', async () => {
    const { health, advance } = setup();
    const server = await started(startHealthServer('127.0.0.1:0', health));
    health.syncNode({ metadata: {}, spec: {} });
    health.updated(undefined, 'IPv4');
    health.updated(undefined, 'IPv6');
    advance(1_000);
    health.queued(undefined, 'IPv6');
    advance(60_000);
    const stale = await get(server.port, '/healthz');
    expect(stale.status).toBe(503);
    // The top-level lastUpdated is the newest family's; `healthy` is every family's.
    expect([stale.body['lastUpdated'], stale.body['healthy']]).toEqual(['2025-06-01T12:00:00Z', false]);
    expect(stale.body['status']).toEqual({ IPv4: { lastUpdated: '2025-06-01T12:00:00Z', healthy: true }, IPv6: { lastUpdated: '2025-06-01T12:00:00Z', healthy: false } });
    health.updated(undefined, 'IPv6');
    expect((await get(server.port, '/healthz')).body).toMatchObject({
      healthy: true,
      status: { IPv4: { healthy: true }, IPv6: { lastUpdated: '2025-06-01T12:01:01Z', healthy: true } },
    });
  });

  it('fails /healthz but not /livez while the node is ineligible or unknown', async () => {
    const { health } = setup();
    const server = await started(startHealthServer({ host: '127.0.0.1', port: 0 }, health));
    const unknownNode = await get(server.port, '/healthz');
    expect(unknownNode.status).toBe(503);
    // Never synced: the zero time, and no per-family status yet.
    expect(unknownNode.body).toEqual({ lastUpdated: '0001-01-01T00:00:00Z', currentTime: '2025-06-01T12:00:00Z', nodeEligible: false, healthy: true });

    health.syncNode({ metadata: { deletionTimestamp: new Date(start) }, spec: {} });
    expect((await get(server.port, '/healthz')).status).toBe(503);
    const live = await get(server.port, '/livez');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ lastUpdated: '2025-06-01T12:00:00Z', currentTime: '2025-06-01T12:00:00Z', healthy: true });
  });

  it('answers 404 on other paths', async () => {
    const { health } = setup();
    const server = await started(startHealthServer('127.0.0.1:0', health));
    const response = await fetch(`http://127.0.0.1:${server.port}/healthz/extra`);
    expect(response.status).toBe(404);
    await response.text();
  });
});

describe('health server readiness gate', () => {
  it('answers /healthz 503 until ready() is true, while /livez is unaffected', async () => {
    const health = new ProxierHealth({ syncPeriodMs: 30_000, clock: () => 1_000 });
    health.syncNode({ metadata: {}, spec: {} });
    let ready = false;
    const server = await startHealthServer('127.0.0.1:0', health, { ready: () => ready });
    try {
      const status = async (path: string) => (await fetch(`http://127.0.0.1:${server.port}${path}`)).status;
      expect(await status('/healthz')).toBe(503);
      expect(await status('/livez')).toBe(200);
      ready = true;
      expect(await status('/healthz')).toBe(200);
    } finally {
      await server.close();
    }
  });
});
