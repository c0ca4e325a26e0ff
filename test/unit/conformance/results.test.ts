// The committed pass lists of upstream's e2e specs on the local one-node cluster, one run with
// kube-proxy-ts and one with upstream kube-proxy (same session, same cluster), per spec set: the
// [sig-network] Services set (`npm run conformance -- --wider [--proxy kube-proxy]`) and the
// dual-stack set (`--dual-stack`, in results/dual-stack), and the 17 Service conformance specs with
// both proxies in nftables mode (`--mode nftables`, in results/nftables). Every spec that passes with kube-proxy
// must pass with kube-proxy-ts, unless it is listed below with the reason it cannot here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../harness/versions.js';
import type { ConformanceRun } from '../../conformance/run.js';

const load = (set: string, proxy: string): ConformanceRun =>
  JSON.parse(readFileSync(join(repoRoot, 'test', 'conformance', 'results', set, `${proxy}.json`), 'utf8')) as ConformanceRun;

/** Specs that pass with kube-proxy and not with kube-proxy-ts, each with why (none today). */
const knownDifferences: ReadonlyMap<string, string> = new Map();

describe.each([
  { set: '', title: 'Services' },
  { set: 'dual-stack', title: 'dual-stack' },
  { set: 'nftables', title: 'nftables mode' },
])('committed conformance results: $title', ({ set }) => {
  const ours = load(set, 'kube-proxy-ts');
  const upstream = load(set, 'kube-proxy');

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
});

describe('committed nftables-mode results', () => {
  it('were run with both proxies in nftables mode', () => {
    expect([load('nftables', 'kube-proxy-ts').mode, load('nftables', 'kube-proxy').mode]).toEqual(['nftables', 'nftables']);
  });
});

describe.each([
  { set: '', title: 'Services' },
  { set: 'nftables', title: 'nftables mode' },
])('committed conformance results: $title', ({ set }) => {
  it('include the 17 Service conformance specs, all passed', () => {
    const conformance = load(set, 'kube-proxy-ts').specs.filter((s) => s.name.includes('[Conformance]'));
    expect(conformance).toHaveLength(17);
    expect(conformance.filter((s) => s.status !== 'passed')).toEqual([]);
  });
});

describe('committed dual-stack results', () => {
  it('hold the one-node [Feature:IPv6DualStack] specs, Services of both family orders passed with kube-proxy-ts', () => {
    const ours = load('dual-stack', 'kube-proxy-ts');
    const passed = ours.specs.filter((s) => s.status === 'passed').map((s) => s.name);
    for (const spec of ['should create service with ipv4,v6 cluster ip', 'should create service with ipv6,v4 cluster ip', 'should be able to reach pod on ipv4 and ipv6 ip']) {
      expect(passed).toContain(`[sig-network] [Feature:IPv6DualStack] ${spec}`);
    }
  });
});
