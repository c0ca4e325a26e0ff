// The committed pass lists of upstream's [sig-network] Services specs on the local one-node cluster,
// one run with kube-proxy-ts and one with upstream kube-proxy (`npm run conformance -- --wider
// [--proxy kube-proxy]`, same session, same cluster). Every spec that passes with kube-proxy must
// pass with kube-proxy-ts, unless it is listed below with the reason it cannot here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../harness/versions.js';
import type { ConformanceRun } from '../../conformance/run.js';

const load = (proxy: string): ConformanceRun =>
  JSON.parse(readFileSync(join(repoRoot, 'test', 'conformance', 'results', `${proxy}.json`), 'utf8')) as ConformanceRun;

/** Specs that pass with kube-proxy and not with kube-proxy-ts, each with why (none today). */
const knownDifferences: ReadonlyMap<string, string> = new Map();

describe('committed conformance results', () => {
  const ours = load('kube-proxy-ts');
  const upstream = load('kube-proxy');

  it('come from the same spec selection and release', () => {
    expect(ours.focus).toBe(upstream.focus);
    expect(ours.skip).toBe(upstream.skip);
    expect(ours.kubeVersion).toBe(upstream.kubeVersion);
    expect(ours.specs.map((s) => s.name)).toEqual(upstream.specs.map((s) => s.name));
  });

  it('pass with kube-proxy-ts wherever they pass with kube-proxy', () => {
    const passedUpstream = upstream.specs.filter((s) => s.status === 'passed').map((s) => s.name);
    const oursByName = new Map(ours.specs.map((s) => [s.name, s.status]));
    const worse = passedUpstream.filter((name) => oursByName.get(name) !== 'passed' && !knownDifferences.has(name));
    expect(worse).toEqual([]);
    expect(ours.failed).toBe(0);
    expect(ours.suiteFailures).toEqual([]);
  });

  it('include the 17 Service conformance specs, all passed', () => {
    const conformance = ours.specs.filter((s) => s.name.includes('[Conformance]'));
    expect(conformance).toHaveLength(17);
    expect(conformance.filter((s) => s.status !== 'passed')).toEqual([]);
  });
});
