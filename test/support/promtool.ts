// promtool (Debian's `prometheus` package, installed by hack/deps.sh) for the tests of the shipped
// Prometheus rules and of the agent's /metrics exposition. A missing promtool fails the calling
// test with what to install: these checks must not pass by skipping.

import { exec, type ExecResult } from '../harness/exec.js';

export async function promtool(args: readonly string[], options: { readonly input?: string } = {}): Promise<ExecResult> {
  const result = await exec('promtool', args, { ...options, timeoutMs: 120_000 });
  if (result.code === 127 && /ENOENT/.test(result.stderr)) {
    throw new Error(
      'promtool is not installed (not found in PATH): run hack/deps.sh, or apt-get install prometheus (Debian/Ubuntu ship promtool in it)',
    );
  }
  return result;
}

/**
 * Problems `promtool check metrics` reports that we keep on purpose, by metric name and message.
 * Each is a name we do not own, so renaming it would break the dashboards and alerts built on it.
 */
export const ACCEPTED_METRIC_LINT: ReadonlyMap<string, string> = new Map([
  // kube-proxy's own names (pkg/proxy/metrics): gauges that upstream ends in _total. We keep
  // kube-proxy's names, types and labels so that its dashboards and alerts work unchanged.
  ['kubeproxy_sync_proxy_rules_iptables_total', 'non-counter metrics should not have "_total" suffix'],
  ['kubeproxy_sync_proxy_rules_no_local_endpoints_total', 'non-counter metrics should not have "_total" suffix'],
  // prom-client's default Node.js collectors (collectDefaultMetrics): gauges that prom-client names
  // with _total, the names every Node.js dashboard reads. They cannot be renamed one by one (only
  // all of them, with a prefix), so they stay as prom-client exports them.
  ['nodejs_active_handles_total', 'non-counter metrics should not have "_total" suffix'],
  ['nodejs_active_requests_total', 'non-counter metrics should not have "_total" suffix'],
  ['nodejs_active_resources_total', 'non-counter metrics should not have "_total" suffix'],
]);

export interface MetricsLint {
  /** promtool's exit code: 0 clean, 3 lint problems only; anything else means it could not parse the text. */
  readonly code: number;
  /** Every problem reported, as promtool prints it: `<metric> <message>`. */
  readonly problems: readonly string[];
  /** The problems not in ACCEPTED_METRIC_LINT. */
  readonly unexpected: readonly string[];
  readonly stderr: string;
}

/** `promtool check metrics` on a Prometheus text exposition. */
export async function checkMetrics(exposition: string): Promise<MetricsLint> {
  const result = await promtool(['check', 'metrics'], { input: exposition });
  const problems = result.stderr.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  const unexpected = problems.filter((line) => {
    const space = line.indexOf(' ');
    const accepted = space < 0 ? undefined : ACCEPTED_METRIC_LINT.get(line.slice(0, space));
    return accepted === undefined || line.slice(space + 1) !== accepted;
  });
  return { code: result.code, problems, unexpected, stderr: result.stderr };
}
