// What the demo shows: how requests spread over the pods, and a few of the agent's metrics read
// from its Prometheus text and its log. Pure except `sendRequests`, which runs the probes it is given.

export type RequestOutcome = { readonly ok: true; readonly pod: string } | { readonly ok: false; readonly detail: string };

export interface Spread {
  readonly total: number;
  /** Answers per pod name, in first-answer order. */
  readonly answers: ReadonlyMap<string, number>;
  readonly failures: readonly string[];
}

/** Sends `count` requests, `concurrency` at a time; each `request()` opens a new connection. */
export async function sendRequests(count: number, concurrency: number, request: () => Promise<RequestOutcome>): Promise<Spread> {
  const answers = new Map<string, number>();
  const failures: string[] = [];
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started += 1;
      const outcome = await request();
      if (outcome.ok) answers.set(outcome.pod, (answers.get(outcome.pod) ?? 0) + 1);
      else failures.push(outcome.detail);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return { total: count, answers, failures };
}

export interface PodLabel {
  readonly name: string;
  readonly ip: string;
}

/** One line per pod (`  web-1  10.244.1.11  ##########  10 answered`), then the failures if any. */
export function formatSpread(pods: readonly PodLabel[], spread: Spread): string[] {
  const width = Math.max(...pods.map((pod) => pod.name.length));
  const ipWidth = Math.max(...pods.map((pod) => pod.ip.length));
  const lines = pods.map((pod) => {
    const count = spread.answers.get(pod.name) ?? 0;
    const verdict = count > 0 ? `${String(count).padStart(3)} answered` : '  0 answered  <-- never reached';
    return `  ${pod.name.padEnd(width)}  ${pod.ip.padEnd(ipWidth)}  ${'#'.repeat(count).padEnd(spread.total)}${verdict}`;
  });
  const strangers = [...spread.answers.keys()].filter((name) => !pods.some((pod) => pod.name === name));
  for (const name of strangers) lines.push(`  ${name}: ${spread.answers.get(name) ?? 0} answers from a pod that is not an endpoint`);
  if (spread.failures.length > 0) {
    lines.push(`  ${spread.failures.length} of ${spread.total} requests failed, e.g. ${spread.failures[0] ?? ''}`);
  }
  return lines;
}

/** Pods that never answered, plus the failed requests: empty when the spread proves the Service works. */
export function spreadProblems(label: string, pods: readonly PodLabel[], spread: Spread): string[] {
  const problems = pods.filter((pod) => (spread.answers.get(pod.name) ?? 0) === 0).map((pod) => `${label}: ${pod.name} never answered`);
  if (spread.failures.length > 0) problems.push(`${label}: ${spread.failures.length} of ${spread.total} requests failed (${spread.failures[0] ?? ''})`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format, just enough of it: `name{label="value",...} number` lines.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export function parseMetricsText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (match === null) continue;
    const [, name = '', labelText = '', valueText = ''] = match;
    const labels: Record<string, string> = {};
    for (const label of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1] ?? ''] = (label[2] ?? '').replace(/\\(.)/g, '$1');
    }
    samples.push({ name, labels, value: Number(valueText) });
  }
  return samples;
}

function sum(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const matching = samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  return matching.length === 0 ? undefined : matching.reduce((total, sample) => total + sample.value, 0);
}

function show(value: number | undefined, digits = 0): string {
  return value === undefined || Number.isNaN(value) ? '?' : value.toFixed(digits);
}

function mean(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  const total = sum(samples, `${name}_sum`, labels);
  const count = sum(samples, `${name}_count`, labels);
  return total === undefined || count === undefined || count === 0 ? undefined : total / count;
}

/** The handful of values worth reading first, one `name  value  (meaning)` line each. */
export function keyMetrics(samples: readonly Sample[], nowSeconds: number): string[] {
  const lines: [string, string][] = [];
  const syncs = (kind: string, result: string): string => show(sum(samples, 'kube_proxy_ts_syncs_total', { kind, result }));
  lines.push([
    'kube_proxy_ts_syncs_total',
    `full: ${syncs('full', 'applied')} applied, ${syncs('full', 'failed')} failed; partial: ${syncs('partial', 'applied')} applied, ` +
      `${syncs('partial', 'unchanged')} unchanged, ${syncs('partial', 'failed')} failed`,
  ]);
  const lastSync = sum(samples, 'kubeproxy_sync_proxy_rules_last_timestamp_seconds');
  lines.push(['kubeproxy_sync_proxy_rules_last_timestamp_seconds', lastSync === undefined ? '?' : `${show(nowSeconds - lastSync, 1)} s ago`]);
  lines.push([
    'kubeproxy_sync_proxy_rules_iptables_total',
    `nat ${show(sum(samples, 'kubeproxy_sync_proxy_rules_iptables_total', { table: 'nat' }))} rules, ` +
      `filter ${show(sum(samples, 'kubeproxy_sync_proxy_rules_iptables_total', { table: 'filter' }))} rules`,
  ]);
  const syncMean = mean(samples, 'kubeproxy_sync_proxy_rules_duration_seconds');
  lines.push([
    'kubeproxy_sync_proxy_rules_duration_seconds',
    `${show(sum(samples, 'kubeproxy_sync_proxy_rules_duration_seconds_count'))} syncs, mean ${syncMean === undefined ? '?' : show(syncMean * 1000, 1)} ms`,
  ]);
  const programmingMean = mean(samples, 'kubeproxy_network_programming_duration_seconds');
  lines.push([
    'kubeproxy_network_programming_duration_seconds',
    `${show(sum(samples, 'kubeproxy_network_programming_duration_seconds_count'))} EndpointSlice changes programmed, ` +
      `mean ${programmingMean === undefined ? '?' : show(programmingMean, 2)} s from change to rules`,
  ]);
  for (const kind of ['full', 'partial']) {
    const bytes = mean(samples, 'kube_proxy_ts_sync_restore_payload_bytes', { kind });
    if (bytes === undefined) continue;
    lines.push([
      `kube_proxy_ts_sync_restore_payload_bytes{kind="${kind}"}`,
      `${show(sum(samples, 'kube_proxy_ts_sync_restore_payload_bytes_count', { kind }))} payload(s), mean ${show(bytes)} bytes`,
    ]);
  }
  lines.push(['kubeproxy_sync_proxy_rules_iptables_restore_failures_total', show(sum(samples, 'kubeproxy_sync_proxy_rules_iptables_restore_failures_total'))]);
  const width = Math.max(...lines.map(([name]) => name.length));
  return lines.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`);
}

// ---------------------------------------------------------------------------------------------
// The agent's "sync applied" log lines (pino JSON, one object a line).

export interface AppliedSync {
  readonly kind: string;
  readonly bytes: number;
  readonly lines: number;
  readonly chainsWritten: number;
  readonly chainsDeleted: number;
  readonly changedChains: readonly string[];
}

export function appliedSyncs(log: string): AppliedSync[] {
  const syncs: AppliedSync[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"sync applied"')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const number = (key: string): number => (typeof entry[key] === 'number' ? entry[key] : 0);
    syncs.push({
      kind: typeof entry['kind'] === 'string' ? entry['kind'] : '?',
      bytes: number('bytes'),
      lines: number('lines'),
      chainsWritten: number('chainsWritten'),
      chainsDeleted: number('chainsDeleted'),
      changedChains: Array.isArray(entry['changedChains']) ? entry['changedChains'].filter((name): name is string => typeof name === 'string') : [],
    });
  }
  return syncs;
}

/** `partial sync: 551 bytes, 8 lines of iptables-restore input (chains rewritten: 1, deleted: 1; touched: ...)`. */
export function describeSync(sync: AppliedSync): string {
  const chains = [...new Set(sync.changedChains)];
  return (
    `${sync.kind} sync: ${sync.bytes} bytes, ${sync.lines} lines of iptables-restore input ` +
    `(chains rewritten: ${sync.chainsWritten}, deleted: ${sync.chainsDeleted}; touched: ${chains.join(', ') || 'none'})`
  );
}

/** The iptables backend (`nft` or `legacy`) from the agent's startup log line. */
export function backendOf(log: string): string | undefined {
  return /"backend":"([a-z]+)"/.exec(log)?.[1];
}
