import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ConntrackCleaner } from '../../../src/agent/conntrack-cleaner.js';
import type { ConntrackDeleteResult, ConntrackDeleter } from '../../../src/conntrack/tool.js';
import { createConntrackMetrics } from '../../../src/server/conntrack-metrics.js';
import type { ConntrackDeletion } from '../../../src/conntrack/plan.js';

const endpoint = (index: number): ConntrackDeletion => ({ kind: 'service-ip-endpoint', serviceIP: '10.96.0.10', port: 53, endpointIP: `10.244.0.${index}` });

/** A deleter whose calls finish only when the test lets them (or answer at once with `answer`). */
class ControlledDeleter implements ConntrackDeleter {
  readonly started: ConntrackDeletion[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(public answer: (deletion: ConntrackDeletion) => ConntrackDeleteResult, public hold = false) {}
  async delete(deletion: ConntrackDeletion): Promise<ConntrackDeleteResult> {
    this.started.push(deletion);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    if (this.hold) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else await Promise.resolve();
    this.inFlight -= 1;
    return this.answer(deletion);
  }
  release(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

function setup(deleter: ConntrackDeleter, options: { retryDelayMs?: number } = {}) {
  const registry = new Registry();
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const cleaner = new ConntrackCleaner({ deleter, logger, metrics: createConntrackMetrics(registry), concurrency: 3, retryDelayMs: options.retryDelayMs ?? 20, maxRetryDelayMs: 50 });
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const found = (await registry.getMetricsAsJSON()).find((entry) => entry.name === name);
    const values = (found?.values ?? []) as { value: number; labels: Record<string, string> }[];
    return values.filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted)).reduce((sum, value) => sum + value.value, 0);
  };
  return { cleaner, lines, metric };
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ConntrackCleaner', () => {
  it('returns from enqueue at once and runs the filters beside it, at most `concurrency` at a time', async () => {
    const deleter = new ControlledDeleter(() => ({ ok: true, entriesDeleted: 1 }), true);
    const { cleaner, metric } = setup(deleter);
    cleaner.enqueue(Array.from({ length: 10 }, (_, index) => endpoint(index)));
    // Nothing has finished, yet enqueue returned: a sync never waits for conntrack.
    expect(cleaner.pending).toBe(10);
    await settle(5);
    expect(deleter.inFlight).toBe(3);
    while (cleaner.pending > 0) {
      deleter.release();
      await settle(1);
    }
    await cleaner.idle();
    expect(deleter.maxInFlight).toBe(3);
    expect(deleter.started).toHaveLength(10);
    expect(await metric('kubeproxy_conntrack_reconciler_deleted_entries_total')).toBe(10);
    expect(await metric('kube_proxy_ts_conntrack_cleanup_pending')).toBe(0);
  });

  it('keeps a failed filter queued and retries it until it succeeds', async () => {
    let failuresLeft = 2;
    const deleter = new ControlledDeleter((deletion) => {
      if (deletion.kind === 'service-ip-endpoint' && deletion.endpointIP === '10.244.0.2' && failuresLeft > 0) {
        failuresLeft -= 1;
        return { ok: false, reason: 'failed', message: 'Operation not permitted' };
      }
      return { ok: true, entriesDeleted: 1 };
    });
    const { cleaner, metric, lines } = setup(deleter);
    cleaner.enqueue([endpoint(1), endpoint(2)]);
    await cleaner.idle();
    expect(cleaner.pending).toBe(1);
    for (let waited = 0; cleaner.pending > 0 && waited < 2_000; waited += 10) await settle(10);
    await cleaner.idle();
    expect(cleaner.pending).toBe(0);
    const attemptsOf2 = deleter.started.filter((deletion) => deletion.kind === 'service-ip-endpoint' && deletion.endpointIP === '10.244.0.2');
    expect(attemptsOf2).toHaveLength(3);
    expect(await metric('kube_proxy_ts_conntrack_cleanup_failures_total', { reason: 'failed' })).toBe(2);
    // Loud once, quiet while the same failure lasts, and a word when it recovers.
    expect(lines.filter((line) => line.level === 40).map((line) => line.msg)).toHaveLength(1);
    expect(lines.some((line) => line.level === 30 && /recovered/.test(line.msg))).toBe(true);
  });

  it('runs a filter again when it is queued again while its round is running', async () => {
    const deleter = new ControlledDeleter(() => ({ ok: true, entriesDeleted: 0 }), true);
    const { cleaner } = setup(deleter);
    cleaner.enqueue([endpoint(1)]);
    await settle(1);
    cleaner.enqueue([endpoint(1)]);
    while (deleter.started.length < 2) {
      deleter.release();
      await settle(1);
    }
    deleter.release();
    await cleaner.idle();
    expect(deleter.started).toHaveLength(2);
    expect(cleaner.pending).toBe(0);
  });

  it('lists the UDP flows once and runs only the filters that match one', async () => {
    const deleter = new ControlledDeleter(() => ({ ok: true, entriesDeleted: 1 }));
    let listings = 0;
    const listing: ConntrackDeleter = {
      delete: (deletion) => deleter.delete(deletion),
      listUdp: async () => {
        listings += 1;
        return { ok: true, flows: [{ originalDestination: '10.96.0.10', originalDestinationPort: 53, replySource: '10.244.0.7' }] };
      },
    };
    const { cleaner } = setup(listing);
    cleaner.enqueue(Array.from({ length: 1000 }, (_, index) => endpoint(index)));
    await cleaner.idle();
    expect(listings).toBe(1);
    expect(deleter.started).toEqual([endpoint(7)]);
    expect(cleaner.pending).toBe(0);
  });

  it('without the binary: stops the round at the first filter, counts it, logs one error, keeps everything queued', async () => {
    const deleter = new ControlledDeleter(() => ({ ok: false, reason: 'binary-missing', message: 'spawn conntrack ENOENT' }));
    const { cleaner, metric, lines } = setup(deleter, { retryDelayMs: 10 });
    cleaner.enqueue(Array.from({ length: 100 }, (_, index) => endpoint(index)));
    await settle(100);
    await cleaner.stop();
    expect(cleaner.pending).toBe(100);
    const rounds = deleter.started.length;
    // Each round tried at most `concurrency` filters before giving up on it.
    expect(rounds).toBeGreaterThan(1);
    expect(await metric('kube_proxy_ts_conntrack_cleanup_failures_total', { reason: 'binary-missing' })).toBe(rounds);
    const errors = lines.filter((line) => line.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toMatch(/conntrack binary is missing/);
    expect(await metric('kube_proxy_ts_conntrack_cleanup_pending')).toBe(100);
  });
});
