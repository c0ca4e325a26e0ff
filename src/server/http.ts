// The agent's two fixed HTTP endpoints: Prometheus metrics (kube-proxy's :10249, with /proxyMode,
// /configz and /healthz beside it) and the proxy health server (kube-proxy's :10256, /healthz and /livez with kube-proxy's semantics and bodies).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { BindAddress } from '../config/types.js';
import type { ProxierHealth, ProxierHealthSnapshot } from './health.js';
import { listen, toBindAddress, type RunningServer } from './listen.js';
import type { HealthProbe } from './metrics.js';
import type { IPFamily } from '../ip.js';
import { messageOf } from '../values.js';

export type { RunningServer } from './listen.js';

function pathOf(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

const plainText = { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' };

function notFound(response: ServerResponse): void {
  response.writeHead(404, plainText);
  response.end('404 page not found\n');
}

/** What the metrics server shows besides /metrics, as kube-proxy's does. */
export interface MetricsServerInfo {
  /** `/proxyMode`: the proxy mode, e.g. `iptables`. */
  readonly proxyMode: string;
  /** `/configz`: the effective configuration, `{"kubeproxy.config.k8s.io": {...}}`. */
  readonly configz: () => unknown;
}


/**
 * kube-proxy's metrics port: GET /metrics in Prometheus text format, and with `info` /proxyMode,
 * /configz and /healthz (`ok`: the process serves; readiness is the health server's). Everything
 * else is 404.
 */
export async function startMetricsServer(bindAddress: string | BindAddress, registry: Registry, info?: MetricsServerInfo): Promise<RunningServer> {
  const server = createServer((request, response) => {
    const path = pathOf(request);
    const known = path === '/metrics' || (info !== undefined && (path === '/proxyMode' || path === '/configz' || path === '/healthz'));
    if (!known) {
      notFound(response);
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD' });
      response.end();
      return;
    }
    const send = (headers: Record<string, string>, body: string): void => {
      response.writeHead(200, headers);
      response.end(request.method === 'HEAD' ? undefined : body);
    };
    if (info !== undefined && path === '/proxyMode') {
      send(plainText, info.proxyMode);
      return;
    }
    if (info !== undefined && path === '/configz') {
      send({ 'Content-Type': 'application/json' }, JSON.stringify(info.configz()));
      return;
    }
    if (path === '/healthz') {
      send(plainText, 'ok');
      return;
    }
    registry.metrics().then(
      (text) => send({ 'Content-Type': registry.contentType }, text),
      (error: unknown) => {
        response.writeHead(500, plainText);
        response.end(`collecting metrics failed: ${messageOf(error)}\n`);
      },
    );
  });
  return listen(server, toBindAddress(bindAddress));
}

// Go's zero time.Time, which kube-proxy prints before its first successful sync.
const GO_ZERO_TIME = '0001-01-01T00:00:00Z';

/** A time as Go's encoding/json writes time.Time in UTC: RFC 3339, fraction without trailing zeros. */
export function formatGoJsonTime(ms: number | undefined): string {
  if (ms === undefined) return GO_ZERO_TIME;
  return new Date(ms).toISOString().replace(/\.?0+Z$/, 'Z');
}

/**
 * kube-proxy's body: `lastUpdated`, `currentTime`, `nodeEligible` (on /healthz only), `healthy`
 * (the proxier's, without node eligibility) and `status` per IP family once a sync succeeded.
 * While healthy, `lastUpdated` is "now", as older kube-proxies reported it.
 */
export function healthBody(
  snapshot: ProxierHealthSnapshot,
  probe: HealthProbe,
  reportedHealthy: boolean,
  liveness: Readonly<Partial<Record<IPFamily, boolean>>> = {},
): string {
  const body: Record<string, unknown> = {
    lastUpdated: formatGoJsonTime(reportedHealthy ? snapshot.currentTimeMs : snapshot.lastUpdatedMs),
    currentTime: formatGoJsonTime(snapshot.currentTimeMs),
  };
  if (probe === 'healthz') body.nodeEligible = snapshot.nodeEligible;
  body.healthy = snapshot.healthy;
  const status = Object.entries(snapshot.families).map(([family, health]) => [
    family,
    { lastUpdated: formatGoJsonTime(health.lastUpdatedMs), healthy: health.healthy && liveness[family as IPFamily] !== false },
  ]);
  if (status.length > 0) body.status = Object.fromEntries(status);
  return JSON.stringify(body);
}

export interface HealthServerOptions {
  /** Told about every answer, for `kubeproxy_proxy_healthz_total` / `kubeproxy_proxy_livez_total`. */
  readonly onProbe?: (probe: HealthProbe, statusCode: number) => void;
  /** /healthz also answers 503 until this says the agent is ready (first lists in, first sync
   * applied), so a readiness probe never admits a node without rules. /livez ignores it: a slow
   * initial list of a big cluster must not get the agent restarted. Default: always ready. */
  readonly ready?: () => boolean;
  /** Per family, false once its syncs have kept failing for too long (livezSyncFailureTimeout):
   * /livez (and /healthz) answer 503 while any family is not live, and the body's `status` shows
   * that family unhealthy. Default: every family live. */
  readonly liveness?: () => Readonly<Partial<Record<IPFamily, boolean>>>;
}

/**
 * /healthz: 200 when the proxier is healthy and the node is eligible, else 503 (load balancers
 * use it to drain a node). /livez: the proxier alone (a liveness probe must not restart us
 * because the node is being deleted).
 */
export async function startHealthServer(
  bindAddress: string | BindAddress,
  health: Pick<ProxierHealth, 'snapshot'>,
  options: HealthServerOptions = {},
): Promise<RunningServer> {
  const server = createServer((request, response) => {
    const path = pathOf(request);
    if (path !== '/healthz' && path !== '/livez') {
      notFound(response);
      return;
    }
    const probe: HealthProbe = path === '/healthz' ? 'healthz' : 'livez';
    const snapshot = health.snapshot();
    const ready = options.ready?.() ?? true;
    const liveness = options.liveness?.() ?? {};
    const live = Object.values(liveness).every((familyLive) => familyLive);
    const healthy = probe === 'healthz' ? ready && live && snapshot.healthy && snapshot.nodeEligible : live && snapshot.healthy;
    const statusCode = healthy ? 200 : 503;
    options.onProbe?.(probe, statusCode);
    response.writeHead(statusCode, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' });
    response.end(healthBody(snapshot, probe, healthy, liveness));
  });
  return listen(server, toBindAddress(bindAddress));
}
