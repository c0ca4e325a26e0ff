import { describe, expect, it } from 'vitest';
import { RenderCache, renderRuleSet } from '../../../src/render/index.js';
import { localTrafficFromCIDR } from '../../../src/render/types.js';
import { desiredState, endpoint, servicePort, testContext } from './fixtures.js';

const a = servicePort({ name: 'a', clusterIP: '172.30.0.1', endpoints: [endpoint('10.0.1.1')] });
const b = servicePort({ name: 'b', clusterIP: '172.30.0.2', endpoints: [endpoint('10.0.2.1')] });

describe('RenderCache', () => {
  it('returns the same ServicePortRules object for the same ServicePort object', () => {
    const cache = new RenderCache();
    const first = renderRuleSet(desiredState([a, b]), testContext, cache);
    expect(cache.stats).toEqual({ reused: 0, rendered: 2 });
    const bChanged = servicePort({ name: 'b', clusterIP: '172.30.0.2', endpoints: [endpoint('10.0.2.1'), endpoint('10.0.2.2')] });
    const second = renderRuleSet(desiredState([a, bChanged]), testContext, cache);
    expect(cache.stats).toEqual({ reused: 1, rendered: 1 });
    expect(second.servicePorts.get(a.key)).toBe(first.servicePorts.get(a.key));
    expect(second.servicePorts.get(b.key)).not.toBe(first.servicePorts.get(b.key));
    expect(second.servicePorts.get(b.key)?.chains).toHaveLength(3);
    // Node-wide parts keep their identity too while the context is unchanged.
    expect(second.staticChains).toBe(first.staticChains);
    expect(second.sharedChains).toBe(first.sharedChains);
    expect(second.jumps).toBe(first.jumps);
  });

  it('compares contexts by value, not identity', () => {
    const cache = new RenderCache();
    const first = renderRuleSet(desiredState([a]), { ...testContext }, cache);
    const second = renderRuleSet(desiredState([a]), { ...testContext, nodeIPs: [...testContext.nodeIPs] }, cache);
    expect(second.servicePorts.get(a.key)).toBe(first.servicePorts.get(a.key));
    expect(second.staticChains).toBe(first.staticChains);
  });

  it('re-renders every service port when a context field they depend on changes', () => {
    const cache = new RenderCache();
    const first = renderRuleSet(desiredState([a]), testContext, cache);
    const second = renderRuleSet(desiredState([a]), { ...testContext, localTraffic: localTrafficFromCIDR('10.0.0.0/16') }, cache);
    expect(second.servicePorts.get(a.key)).not.toBe(first.servicePorts.get(a.key));
    expect(second.servicePorts.get(a.key)?.chains[0]?.rules[0]).toContain('! -s 10.0.0.0/16');
  });

  it('keeps service ports but rebuilds node-wide chains when only node-wide settings change', () => {
    const cache = new RenderCache();
    const first = renderRuleSet(desiredState([a]), testContext, cache);
    const second = renderRuleSet(desiredState([a]), { ...testContext, randomFully: true, nodePortAddresses: ['192.168.0.0/24'] }, cache);
    expect(second.servicePorts.get(a.key)).toBe(first.servicePorts.get(a.key));
    expect(second.staticChains).not.toBe(first.staticChains);
    expect(second.sharedChains[0]?.trailer).toEqual([
      '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS',
    ]);
  });

  it('re-renders service ports when the localhost NodePort counter comes or goes (with localhost NodePorts on)', () => {
    const cache = new RenderCache();
    const np = servicePort({ name: 'np', clusterIP: '172.30.0.3', nodePort: 30003, endpoints: [endpoint('10.0.3.1')] });
    const counted = { ...testContext, localhostNodePortsCounter: 'localhost_nps_accepted_pkts' };
    const first = renderRuleSet(desiredState([np]), counted, cache);
    expect(first.servicePorts.get(np.key)?.sharedRules.filter((rule) => rule.rule.includes('-m nfacct'))).toHaveLength(1);
    const off = renderRuleSet(desiredState([np]), { ...counted, localhostNodePorts: false }, cache);
    expect(off.servicePorts.get(np.key)).not.toBe(first.servicePorts.get(np.key));
    expect(off.servicePorts.get(np.key)?.sharedRules.some((rule) => rule.rule.includes('-m nfacct'))).toBe(false);
    const uncounted = renderRuleSet(desiredState([np]), testContext, cache);
    expect(uncounted.servicePorts.get(np.key)?.sharedRules.some((rule) => rule.rule.includes('-m nfacct'))).toBe(false);
  });

  it('re-renders when the cluster crosses the large-cluster threshold', () => {
    const cache = new RenderCache();
    const ctx = { ...testContext, largeClusterEndpointsThreshold: 1 };
    const first = renderRuleSet(desiredState([a]), ctx, cache);
    expect(first.servicePorts.get(a.key)?.chains[1]?.rules[0]).toContain('--comment');
    const second = renderRuleSet(desiredState([a, b]), ctx, cache);
    expect(second.servicePorts.get(a.key)).not.toBe(first.servicePorts.get(a.key));
    expect(second.servicePorts.get(a.key)?.chains[1]?.rules[0]).toBe('-s 10.0.1.1 -j KUBE-MARK-MASQ');
  });

  it('renders without a cache, identically', () => {
    const cached = renderRuleSet(desiredState([a, b]), testContext, new RenderCache());
    const uncached = renderRuleSet(desiredState([a, b]), testContext);
    expect(uncached).toEqual(cached);
  });
});

describe('ServicePortRules', () => {
  it('orders owned chains SVC, SVL, EXT, FW, then SEPs in endpoint order', () => {
    const sp = servicePort({
      nodePort: 3001,
      loadBalancerIPs: ['1.2.3.4'],
      loadBalancerSourceRanges: ['203.0.113.0/25'],
      externalTrafficPolicy: 'Local',
      endpoints: [endpoint('10.180.0.1'), endpoint('10.180.0.2', { isLocal: true }), endpoint('10.180.0.3')],
    });
    const rules = renderRuleSet(desiredState([sp]), testContext).servicePorts.get(sp.key);
    expect(rules?.chains.map((chain) => chain.name.slice(0, 9))).toEqual([
      'KUBE-SVC-',
      'KUBE-SVL-',
      'KUBE-EXT-',
      'KUBE-FW-X',
      'KUBE-SEP-',
      'KUBE-SEP-',
      'KUBE-SEP-',
    ]);
    expect(rules?.chains.slice(4).map((chain) => chain.rules[1]?.split(' ').at(-1))).toEqual([
      '10.180.0.1:80',
      '10.180.0.2:80',
      '10.180.0.3:80',
    ]);
    expect(rules?.chains.every((chain) => chain.table === 'nat' && chain.kind === 'ordered')).toBe(true);
  });

  it('every jump target exists: an owned chain, or a static/shared one', () => {
    const sp = servicePort({
      nodePort: 3001,
      loadBalancerIPs: ['1.2.3.4'],
      loadBalancerSourceRanges: ['192.168.0.0/24'],
      externalTrafficPolicy: 'Local',
      internalTrafficPolicy: 'Local',
      sessionAffinity: { kind: 'ClientIP', timeoutSeconds: 60 },
      endpoints: [endpoint('10.180.0.1'), endpoint('10.180.0.2', { isLocal: true })],
    });
    const ruleSet = renderRuleSet(desiredState([sp]), testContext);
    const rules = ruleSet.servicePorts.get(sp.key);
    const declared = new Set([
      ...(rules?.chains ?? []).map((chain) => chain.name),
      ...ruleSet.staticChains.map((chain) => chain.name),
      ...ruleSet.sharedChains.map((chain) => chain.name),
    ]);
    const targets = [...(rules?.chains ?? []).flatMap((chain) => chain.rules), ...(rules?.sharedRules ?? []).map((shared) => shared.rule)]
      .map((rule) => / -j (KUBE-\S+)/.exec(` ${rule}`)?.[1])
      .filter((target): target is string => target !== undefined);
    expect(targets.length).toBeGreaterThan(10);
    for (const target of targets) expect(declared).toContain(target);
  });
});
