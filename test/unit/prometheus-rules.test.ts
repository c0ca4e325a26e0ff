// The Prometheus rules shipped in manifests/optional/: the plain rules file passes `promtool check
// rules`, every case in test/prometheus/ passes `promtool test rules` (and each alert has a case
// where it fires and one where it stays quiet, each recording rule an evaluated value), the
// PrometheusRule carries exactly the plain file's groups, and every raw selector names the same job.
// Also the agent's metric registry through `promtool check metrics` (the running agent's /metrics:
// test/integration/agent-metrics-health.test.ts). promtool comes from hack/deps.sh; without it
// these tests fail, they do not skip.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createMetrics } from '../../src/server/metrics.js';
import { repoRoot } from '../harness/versions.js';
import { checkMetrics, promtool } from '../support/promtool.js';

const optionalDir = join(repoRoot, 'manifests', 'optional');
const rulesPath = join(optionalDir, 'prometheus', 'kube-proxy-ts.rules.yaml');
const prometheusRulePath = join(optionalDir, 'prometheusrule.yaml');
const testsDir = join(repoRoot, 'test', 'prometheus');
const JOB_SELECTOR = 'job="kube-proxy-ts"';

interface Rule {
  readonly record?: string;
  readonly alert?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
interface RuleGroup {
  readonly name: string;
  readonly rules: readonly Rule[];
}
interface RuleTests {
  readonly rule_files: readonly string[];
  readonly tests: readonly {
    readonly name?: string;
    readonly alert_rule_test?: readonly { readonly alertname: string; readonly exp_alerts?: readonly unknown[] }[];
    readonly promql_expr_test?: readonly { readonly expr: string }[];
  }[];
}

const plain = parseYaml(readFileSync(rulesPath, 'utf8')) as { groups: RuleGroup[] };
const rules = plain.groups.flatMap((group) => group.rules);
const alerts = rules.flatMap((rule) => (rule.alert === undefined ? [] : [rule.alert]));
const records = rules.flatMap((rule) => (rule.record === undefined ? [] : [rule.record]));
const testFiles = readdirSync(testsDir)
  .filter((name) => name.endsWith('.test.yaml'))
  .sort()
  .map((name) => join(testsDir, name));
const ruleTests = testFiles.map((path) => parseYaml(readFileSync(path, 'utf8')) as RuleTests);

describe('the shipped Prometheus rules', () => {
  it('are the expected alerts and recordings', () => {
    expect(Object.keys(plain)).toEqual(['groups']);
    expect(alerts.sort()).toEqual(['KubeProxyTsDown', 'KubeProxyTsProgrammingLatencyHigh', 'KubeProxyTsRestoreFailures', 'KubeProxyTsSyncStale']);
    expect(records.length).toBeGreaterThanOrEqual(2);
    for (const rule of rules) {
      if (rule.alert === undefined) continue;
      expect(rule.labels?.['severity'], rule.alert).toMatch(/^(critical|warning)$/);
      expect(rule.annotations?.['summary'], rule.alert).toBeTruthy();
      expect(rule.annotations?.['description'], rule.alert).toBeTruthy();
    }
  });

  it('pass promtool check rules', async () => {
    const result = await promtool(['check', 'rules', rulesPath]);
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0);
    expect(result.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
  }, 60_000);

  it('pass every promtool test rules case in test/prometheus/', async () => {
    expect(testFiles.length).toBeGreaterThan(0);
    for (const tests of ruleTests) expect(tests.rule_files.map((file) => join(testsDir, file))).toContain(rulesPath);
    const result = await promtool(['test', 'rules', ...testFiles]);
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0);
    expect(result.stdout).toContain('SUCCESS');
  }, 60_000);

  it('have a firing and a quiet promtool case for every alert, and an evaluated value for every recording', () => {
    const cases = ruleTests.flatMap((tests) => tests.tests.flatMap((test) => test.alert_rule_test ?? []));
    for (const alert of alerts) {
      const own = cases.filter((entry) => entry.alertname === alert);
      expect(own.some((entry) => (entry.exp_alerts ?? []).length > 0), `${alert} never fires in test/prometheus/`).toBe(true);
      expect(own.some((entry) => (entry.exp_alerts ?? []).length === 0), `${alert} is never checked quiet in test/prometheus/`).toBe(true);
    }
    const exprs = ruleTests.flatMap((tests) => tests.tests.flatMap((test) => (test.promql_expr_test ?? []).map((entry) => entry.expr)));
    for (const record of records) expect(exprs.some((expr) => expr.includes(record)), `${record} is never evaluated in test/prometheus/`).toBe(true);
  });

  it(`select the agent's raw series with ${JOB_SELECTOR} and nothing else`, () => {
    // Raw series: kube-proxy's and our metric names and `up`, not recorded ones (level:metric:ops).
    const raw = /(?<![\w:])(up|kubeproxy_\w+|kube_proxy_ts_\w+)(?![\w:])(\{[^}]*\})?/g;
    let selectors = 0;
    for (const rule of rules) {
      for (const match of rule.expr.matchAll(raw)) {
        expect(match[2], `${rule.alert ?? rule.record}: ${match[0]}`).toBe(`{${JOB_SELECTOR}}`);
        selectors += 1;
      }
      const jobMatchers = rule.expr.match(/\bjob\s*(=~|!=|!~|=)\s*"[^"]*"/g) ?? [];
      expect(jobMatchers.every((matcher) => matcher === JOB_SELECTOR), `${rule.alert ?? rule.record}: ${jobMatchers.join(', ')}`).toBe(true);
    }
    expect(selectors).toBeGreaterThanOrEqual(rules.length);
  });

  it("the PrometheusRule carries exactly the plain file's groups", () => {
    const prometheusRule = parseYaml(readFileSync(prometheusRulePath, 'utf8')) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string; namespace: string; labels: Record<string, string> };
      spec: { groups: unknown };
    };
    expect(prometheusRule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(prometheusRule.kind).toBe('PrometheusRule');
    expect(prometheusRule.metadata).toEqual({ name: 'kube-proxy-ts', namespace: 'kube-proxy-ts', labels: { 'app.kubernetes.io/name': 'kube-proxy-ts' } });
    expect(Object.keys(prometheusRule.spec)).toEqual(['groups']);
    expect(prometheusRule.spec.groups).toEqual(plain.groups);
  });
});

describe("the agent's metric registry", () => {
  it('passes promtool check metrics, but for the names we keep from kube-proxy and prom-client', async () => {
    const registry = new Registry();
    const metrics = createMetrics(registry);
    metrics.countInvalidDrops(async () => 0);
    const lint = await checkMetrics(await registry.metrics());
    expect(lint.unexpected, lint.stderr).toEqual([]);
    expect([0, 3], `promtool check metrics exited ${lint.code}: ${lint.stderr}`).toContain(lint.code);
  }, 60_000);
});
