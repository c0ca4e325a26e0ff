import { describe, expect, it } from 'vitest';
import { defaultRenderContext } from '../../../src/render/types.js';
import { render, testContext } from './fixtures.js';

const chain = (ruleSet: ReturnType<typeof render>, table: string, name: string) =>
  ruleSet.staticChains.find((candidate) => candidate.table === table && candidate.name === name);

describe('static chains', () => {
  it('default context: kube-proxy defaults (mark bit 14, --random-fully, INVALID drop, localhost NodePorts)', () => {
    const ruleSet = render([], { ...defaultRenderContext });
    expect(ruleSet.staticChains.map((c) => `${c.table}/${c.name}`)).toEqual([
      'nat/KUBE-MARK-MASQ',
      'nat/KUBE-POSTROUTING',
      'filter/KUBE-FORWARD',
      'nat/KUBE-PROXY-CANARY',
      'filter/KUBE-PROXY-CANARY',
      'filter/KUBE-FIREWALL',
    ]);
    expect(chain(ruleSet, 'nat', 'KUBE-MARK-MASQ')?.rules).toEqual(['-j MARK --or-mark 0x00004000']);
    expect(chain(ruleSet, 'nat', 'KUBE-POSTROUTING')?.rules).toEqual([
      '-m mark ! --mark 0x00004000/0x00004000 -j RETURN',
      '-j MARK --xor-mark 0x00004000',
      '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    ]);
    expect(chain(ruleSet, 'filter', 'KUBE-FORWARD')?.rules).toEqual([
      '-m conntrack --ctstate INVALID -j DROP',
      '-m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT',
      '-m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
    expect(chain(ruleSet, 'nat', 'KUBE-PROXY-CANARY')?.rules).toEqual([]);
    expect(chain(ruleSet, 'filter', 'KUBE-PROXY-CANARY')?.rules).toEqual([]);
    expect(chain(ruleSet, 'filter', 'KUBE-FIREWALL')?.rules).toEqual([
      '-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    ]);
  });

  it('formats other mark bits like Go %#08x', () => {
    expect(chain(render([], { ...testContext, masqueradeBit: 0 }), 'nat', 'KUBE-MARK-MASQ')?.rules).toEqual(['-j MARK --or-mark 0x00000001']);
    expect(chain(render([], { ...testContext, masqueradeBit: 31 }), 'nat', 'KUBE-MARK-MASQ')?.rules).toEqual(['-j MARK --or-mark 0x80000000']);
    expect(() => render([], { ...testContext, masqueradeBit: 32 })).toThrow(RangeError);
  });

  it('omits the INVALID drop when conntrack is liberal, and --random-fully when unsupported', () => {
    const ruleSet = render([], { ...testContext, conntrackTCPBeLiberal: true, randomFully: false });
    expect(chain(ruleSet, 'filter', 'KUBE-FORWARD')?.rules[0]).toContain('kubernetes forwarding rules');
    expect(chain(ruleSet, 'nat', 'KUBE-POSTROUTING')?.rules[2]).toBe(
      '-m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
    );
  });

  it("counts the INVALID drop in kube-proxy's nfacct object when the node has nfacct", () => {
    const ruleSet = render([], { ...testContext, invalidDropCounter: 'ct_state_invalid_dropped_pkts' });
    expect(chain(ruleSet, 'filter', 'KUBE-FORWARD')?.rules[0]).toBe('-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP');
  });

  it('declares the shared dispatch chains; only nat KUBE-SERVICES has a trailer', () => {
    const shared = render([]).sharedChains;
    expect(shared.map((c) => `${c.table}/${c.name}`)).toEqual([
      'nat/KUBE-SERVICES',
      'nat/KUBE-NODEPORTS',
      'filter/KUBE-SERVICES',
      'filter/KUBE-EXTERNAL-SERVICES',
      'filter/KUBE-NODEPORTS',
      'filter/KUBE-PROXY-FIREWALL',
    ]);
    expect(shared.filter((c) => c.trailer.length > 0).map((c) => `${c.table}/${c.name}`)).toEqual(['nat/KUBE-SERVICES']);
  });
});

describe('built-in jumps', () => {
  it("are upstream's iptablesJumpChains then kubelet's KUBE-FIREWALL jumps, reversed into the order kube-proxy's inserts leave in the kernel", () => {
    expect([...render([]).jumps].reverse().map((jump) => `${jump.table} ${jump.chain} ${jump.rule}`)).toEqual([
      'filter INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
      'filter FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
      'filter INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
      'filter FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'filter OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'filter FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
      'filter INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      'filter OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      'filter FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      'nat OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'nat PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'nat POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      'filter INPUT -j KUBE-FIREWALL',
      'filter OUTPUT -j KUBE-FIREWALL',
    ]);
  });

  it('never jump to the canaries, and every target is a chain the rule set declares', () => {
    const ruleSet = render([]);
    const declared = new Set([...ruleSet.staticChains, ...ruleSet.sharedChains].map((c) => `${c.table}/${c.name}`));
    for (const jump of ruleSet.jumps) {
      const target = /(?:^| )-j (\S+)$/.exec(jump.rule)?.[1] ?? '';
      expect(target).not.toBe('KUBE-PROXY-CANARY');
      expect(declared).toContain(`${jump.table}/${target}`);
    }
  });
});
