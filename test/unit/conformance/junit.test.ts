import { describe, expect, it } from 'vitest';
import { decodeXmlText, parseJUnit } from '../../conformance/junit.js';

// Shaped like the junit_01.xml upstream's e2e binary writes into --report-dir (Ginkgo v2).
const report = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" disabled="0" errors="0" failures="1" time="31.2">
  <testsuite name="Kubernetes e2e suite" package="/" tests="4" disabled="0" skipped="1" errors="0" failures="1" time="31.2">
    <properties><property name="SuiteSucceeded" value="false"></property></properties>
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="1.5"></testcase>
    <testcase name="[It] [sig-network] Services should serve a basic endpoint from pods  [Conformance]" classname="Kubernetes e2e suite" status="passed" time="12.25">
      <system-err>STEP: creating service endpoint-test2 &#xA;</system-err>
    </testcase>
    <testcase name="[It] [sig-network] Services should be able to change the type from ExternalName to ClusterIP &#39;quoted&#39; [Conformance]" classname="Kubernetes e2e suite" status="failed" time="15">
      <failure message="service is not reachable within 2m0s timeout on endpoint 10.96.7.7:80 over TCP protocol&#xA;more" type="failed">[FAILED] ...</failure>
    </testcase>
    <testcase name="[It] [sig-network] Services should fail health check node port if there are only terminating endpoints" classname="Kubernetes e2e suite" status="skipped" time="0.4">
      <skipped message="skipped - Requires at least 2 nodes (not 1)"></skipped>
    </testcase>
    <testcase name="[It] [sig-apps] Deployment not selected" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[SynchronizedAfterSuite]" classname="Kubernetes e2e suite" status="failed" time="2"><failure message="x" type="failed"></failure></testcase>
  </testsuite>
</testsuites>`;

describe('parseJUnit', () => {
  it('reads one outcome per selected spec, with why it failed or skipped, and suite nodes and unselected specs apart', () => {
    const summary = parseJUnit(report);
    expect(summary).toMatchObject({ passed: 1, failed: 1, skipped: 1, notSelected: 1, suiteFailures: ['[SynchronizedAfterSuite]'] });
    expect(summary.specs).toEqual([
      {
        name: "[sig-network] Services should be able to change the type from ExternalName to ClusterIP 'quoted' [Conformance]",
        status: 'failed',
        seconds: 15,
        reason: 'service is not reachable within 2m0s timeout on endpoint 10.96.7.7:80 over TCP protocol',
      },
      {
        name: '[sig-network] Services should fail health check node port if there are only terminating endpoints',
        status: 'skipped',
        seconds: 0.4,
        reason: 'skipped - Requires at least 2 nodes (not 1)',
      },
      { name: '[sig-network] Services should serve a basic endpoint from pods [Conformance]', status: 'passed', seconds: 12.25 },
    ]);
  });

  it('counts a spec without a status attribute by its child elements', () => {
    const summary = parseJUnit(
      '<testcase name="[It] a"><failure message="m"/></testcase><testcase name="[It] b"><skipped message="skipped - why"/></testcase><testcase name="[It] c"/>',
    );
    expect(summary.specs.map((s) => [s.name, s.status])).toEqual([
      ['a', 'failed'],
      ['b', 'skipped'],
      ['c', 'passed'],
    ]);
  });

  it('decodes XML entities', () => {
    expect(decodeXmlText('&lt;a&gt; &amp; &quot;b&quot; &#39;c&#39; &#x41;')).toBe('<a> & "b" \'c\' A');
  });
});
