import { describe, expect, it } from 'vitest';
import { render as renderRuleSet } from './fixtures.js';
import { chainNames, endpoint, lines, renderOne, servicePort, testContext } from './fixtures.js';

const svc = 'KUBE-SVC-XPGD46QRK7WJZT7O';
const svl = 'KUBE-SVL-XPGD46QRK7WJZT7O';
const sep1 = 'KUBE-SEP-SXIVWICOYRO3J4NJ'; // ns1/svc1:p80 tcp 10.180.0.1:80
const clusterIPRule = `-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j ${svc}`;
const masqueradeRule = `-A ${svc} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`;

describe('ClusterIP service', () => {
  it('without endpoints: only a filter REJECT, no nat rule and no chains', () => {
    const rules = renderOne(servicePort());
    expect(rules.chains).toEqual([]);
    expect(lines(rules, 'nat')).toEqual([]);
    expect(lines(rules, 'filter')).toEqual([
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT',
    ]);
  });

  it('with one endpoint: cluster IP jump, masquerade from outside clusterCIDR, one unconditional pick, DNAT', () => {
    const rules = renderOne(servicePort({ endpoints: [endpoint('10.180.0.1')] }));
    expect(chainNames(rules)).toEqual([svc, sep1]);
    expect(lines(rules, 'nat')).toEqual([
      masqueradeRule,
      `-A ${svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j ${sep1}`,
      `-A ${sep1} -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ`,
      `-A ${sep1} -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80`,
      clusterIPRule,
    ]);
    expect(lines(rules, 'filter')).toEqual([]);
  });

  it('with three endpoints: probabilities 1/3, 1/2, then unconditional, SEPs in endpoint order', () => {
    const rules = renderOne(
      servicePort({ endpoints: [endpoint('10.180.0.1'), endpoint('10.180.0.2', { port: 8080 }), endpoint('10.180.0.3')] }),
    );
    const svcChain = rules.chains[0];
    expect(svcChain?.name).toBe(svc);
    const seps = rules.chains.slice(1).map((chain) => chain.name);
    expect(seps).toHaveLength(3);
    expect(svcChain?.rules).toEqual([
      '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.3333333333 -j ${seps[0]}`,
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.2:8080" -m statistic --mode random --probability 0.5000000000 -j ${seps[1]}`,
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.3:80" -j ${seps[2]}`,
    ]);
    expect(rules.chains[2]?.rules[1]).toBe('-m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:8080');
  });

  it('without clusterCIDR: no masquerade rule (upstream with a no-op local detector)', () => {
    const rules = renderOne(servicePort({ endpoints: [endpoint('10.180.0.1')] }), { ...testContext, localTraffic: undefined });
    expect(rules.chains[0]?.rules).toEqual([`-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j ${sep1}`]);
  });

  it('with masqueradeAll: masquerades every cluster IP connection', () => {
    const rules = renderOne(servicePort({ endpoints: [endpoint('10.180.0.1')] }), { ...testContext, masqueradeAll: true });
    expect(rules.chains[0]?.rules[0]).toBe(
      '-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ',
    );
  });

  it('with ClientIP affinity: recent checks before the dice, and SEPs record the client', () => {
    const rules = renderOne(
      servicePort({
        sessionAffinity: { kind: 'ClientIP', timeoutSeconds: 10800 },
        endpoints: [endpoint('10.180.0.1'), endpoint('10.180.0.2')],
      }),
    );
    const [svcChain, first, second] = rules.chains;
    const sep2 = second?.name ?? '';
    expect(svcChain?.rules.slice(1)).toEqual([
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name ${sep1} --rcheck --seconds 10800 --reap -j ${sep1}`,
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m recent --name ${sep2} --rcheck --seconds 10800 --reap -j ${sep2}`,
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j ${sep1}`,
      `-m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j ${sep2}`,
    ]);
    expect(first?.rules).toEqual([
      '-m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ',
      `-m comment --comment ns1/svc1:p80 -m recent --name ${sep1} --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80`,
    ]);
  });

  it('names protocol matches after the protocol (UDP, SCTP) and omits an empty port name', () => {
    const udp = renderOne(servicePort({ protocol: 'UDP', portName: '', port: 53, endpoints: [endpoint('10.180.0.1', { port: 53 })] }));
    expect(lines(udp, 'nat')).toContain(
      `-A KUBE-SERVICES -m comment --comment "ns1/svc1 cluster IP" -m udp -p udp -d 172.30.0.41 --dport 53 -j ${udp.chains[0]?.name}`,
    );
    expect(udp.chains[1]?.rules[1]).toBe('-m comment --comment ns1/svc1 -m udp -p udp -j DNAT --to-destination 10.180.0.1:53');
    const sctp = renderOne(servicePort({ protocol: 'SCTP' }));
    expect(lines(sctp, 'filter')[0]).toContain('-m sctp -p sctp -d 172.30.0.41 --dport 80 -j REJECT');
  });
});

describe('internalTrafficPolicy Local', () => {
  it('sends cluster IP traffic to KUBE-SVL- (with the masquerade rule) when there is a local endpoint', () => {
    const rules = renderOne(
      servicePort({ internalTrafficPolicy: 'Local', endpoints: [endpoint('10.180.0.1'), endpoint('10.180.2.1', { isLocal: true })] }),
    );
    const [svlChain, sep] = rules.chains;
    expect(chainNames(rules)).toEqual([svl, sep?.name]);
    expect(svlChain?.rules).toEqual([
      `-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
      `-m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j ${sep?.name}`,
    ]);
    expect(rules.sharedRules).toEqual([
      {
        table: 'nat',
        chain: 'KUBE-SERVICES',
        rule: `-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j ${svl}`,
      },
    ]);
  });

  it('DROPs (not REJECTs) cluster IP traffic when endpoints exist only on other nodes', () => {
    const rules = renderOne(servicePort({ internalTrafficPolicy: 'Local', endpoints: [endpoint('10.180.0.1')] }));
    expect(rules.chains).toEqual([]);
    expect(lines(rules, 'filter')).toEqual([
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP',
    ]);
  });
});

describe('terminating endpoints', () => {
  it('uses serving terminating endpoints when nothing is ready', () => {
    const terminating = endpoint('10.180.0.1', { ready: false, serving: true, terminating: true });
    const rules = renderOne(servicePort({ endpoints: [terminating] }));
    expect(chainNames(rules)).toEqual([svc, sep1]);
    expect(lines(rules, 'nat')).toContain(clusterIPRule);
  });

  it('rejects when the only endpoints are terminating and no longer serving', () => {
    const gone = endpoint('10.180.0.1', { ready: false, serving: false, terminating: true });
    const rules = renderOne(servicePort({ endpoints: [gone] }));
    expect(rules.chains).toEqual([]);
    expect(lines(rules, 'filter')[0]).toContain('"ns1/svc1:p80 has no endpoints"');
  });

  it('with internalTrafficPolicy Local: a local serving terminating endpoint still serves', () => {
    const local = endpoint('10.180.2.1', { isLocal: true, ready: false, serving: true, terminating: true });
    const rules = renderOne(servicePort({ internalTrafficPolicy: 'Local', endpoints: [local] }));
    expect(chainNames(rules)[0]).toBe(svl);
  });
});

describe('large clusters', () => {
  const twoEndpoints = (name: string, base: number) =>
    servicePort({ name, clusterIP: `172.30.1.${base}`, endpoints: [endpoint(`10.1.${base}.1`), endpoint(`10.1.${base}.2`, { ready: false, serving: false })] });

  it('drops per-endpoint comments once all endpoints (ready or not) exceed the threshold, keeping the others', () => {
    const ctx = { ...testContext, largeClusterEndpointsThreshold: 3 };
    const small = renderRuleSet([twoEndpoints('a', 1)], ctx).servicePorts.get('ns1/a:p80/TCP');
    expect(small?.chains[1]?.rules[0]).toBe('-m comment --comment ns1/a:p80 -s 10.1.1.1 -j KUBE-MARK-MASQ');

    const large = renderRuleSet([twoEndpoints('a', 1), twoEndpoints('b', 2)], ctx).servicePorts.get('ns1/a:p80/TCP');
    const [svcChain, sep] = large?.chains ?? [];
    expect(svcChain?.rules).toEqual([
      '-m comment --comment "ns1/a:p80 cluster IP" -m tcp -p tcp -d 172.30.1.1 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ',
      `-j ${sep?.name}`,
    ]);
    expect(sep?.rules).toEqual(['-s 10.1.1.1 -j KUBE-MARK-MASQ', '-m tcp -p tcp -j DNAT --to-destination 10.1.1.1:80']);
    expect(large?.sharedRules[0]?.rule).toContain('--comment "ns1/a:p80 cluster IP"');
  });

  it('defaults to kube-proxy threshold of 1000 endpoints', () => {
    const many = Array.from({ length: 1001 }, (_, index) => endpoint(`10.2.${Math.floor(index / 250)}.${index % 250}`));
    const rules = renderOne(servicePort({ endpoints: many }));
    expect(rules.chains[1]?.rules[0]).toBe('-s 10.2.0.0 -j KUBE-MARK-MASQ');
    const atThreshold = renderOne(servicePort({ endpoints: many.slice(0, 1000) }));
    expect(atThreshold.chains[1]?.rules[0]).toBe('-m comment --comment ns1/svc1:p80 -s 10.2.0.0 -j KUBE-MARK-MASQ');
  });
});
