import { describe, expect, it } from 'vitest';
import type { BuiltinJump, RuleSet } from '../../../src/render/types.js';
import { planFullSync, planPartialSync, planSync, type SyncPlan } from '../../../src/sync/diff.js';
import { fullPayload } from '../../../src/sync/payload.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import { normalisedTables } from '../../support/normalise.js';
import { endpoint, render, servicePort as renderPort, testContext } from '../render/fixtures.js';
import {
  extChain,
  makeService,
  makeWorld,
  mutate,
  prng,
  sepChain,
  svcChain,
  SyntheticRenderer,
  type SyntheticService,
  type SyntheticWorld,
} from './synthetic.js';

function worldOf(...services: SyntheticService[]): SyntheticWorld {
  return { services: new Map(services.map((service) => [service.key, service])), randomFully: true, nodePortAddresses: [] };
}

function withService(world: SyntheticWorld, service: SyntheticService): SyntheticWorld {
  const services = new Map(world.services);
  services.set(service.key, service);
  return { ...world, services };
}

function withoutService(world: SyntheticWorld, key: string): SyntheticWorld {
  const services = new Map(world.services);
  services.delete(key);
  return { ...world, services };
}

function lines(plan: SyncPlan): string[] {
  return plan.payload.split('\n').filter((line) => line !== '');
}

/** Applies the plan on top of `applied` in the fake netfilter and checks it equals a fresh full restore. */
function expectConverges(applied: RuleSet, desired: RuleSet): void {
  const incremental = new FakeNetfilter();
  expect(incremental.restoreSync(fullPayload(applied, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
  const plan = planPartialSync(applied, desired);
  if (plan.payload !== '') expect(incremental.restoreSync(plan.payload, { noFlush: true })).toEqual({ ok: true });
  const fresh = new FakeNetfilter();
  expect(fresh.restoreSync(fullPayload(desired, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
  expect(normalisedTables(incremental, desired)).toBe(normalisedTables(fresh, desired));
}

describe('planPartialSync', () => {
  const a = makeService(1, 2, 30001);
  const b = makeService(2, 3);
  const c = makeService(3, 0, 30003);
  const world = worldOf(a, b, c);

  it('plans nothing when nothing changed', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const plan = planPartialSync(applied, renderer.render(world));
    expect(plan.payload).toBe('');
    expect(plan.stats).toMatchObject({ bytes: 0, lines: 0, chainsWritten: 0, chainsDeleted: 0, sharedRulesAdded: 0, sharedRulesDeleted: 0, changedChainCount: 0 });
  });

  it('plans nothing when a service port was re-rendered to the same content (new identity)', () => {
    const applied = new SyntheticRenderer().render(world);
    const desired = new SyntheticRenderer().render(world);
    expect(desired.servicePorts.get(a.key)).not.toBe(applied.servicePorts.get(a.key));
    expect(planPartialSync(applied, desired).payload).toBe('');
  });

  it('on an endpoint change writes only that SVC chain and the new SEP chain, and deletes the gone one', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const [kept, gone] = b.endpoints;
    if (kept === undefined || gone === undefined) throw new Error('fixture');
    const added = { ip: '10.250.0.9', port: 8080 };
    const changed = { ...b, endpoints: [kept, b.endpoints[2] ?? kept, added] };
    const desired = renderer.render(withService(world, changed));
    const plan = planPartialSync(applied, desired);
    expect(lines(plan)).toEqual([
      '*nat',
      // Declarations in byte order of the chain names (what iptables-legacy-restore inserts fastest).
      ...[svcChain(b), sepChain(b, added), sepChain(b, gone)].sort().map((chain) => `:${chain} - [0:0]`),
      ...(desired.servicePorts.get(b.key)?.chains[0]?.rules.map((rule) => `-A ${svcChain(b)} ${rule}`) ?? []),
      ...(desired.servicePorts.get(b.key)?.chains.find((chain) => chain.name === sepChain(b, added))?.rules.map((rule) => `-A ${sepChain(b, added)} ${rule}`) ?? []),
      `-X ${sepChain(b, gone)}`,
      'COMMIT',
    ]);
    expect(plan.stats).toMatchObject({ chainsWritten: 2, chainsDeleted: 1, sharedRulesAdded: 0, sharedRulesDeleted: 0 });
    expect(plan.stats.changedChainNames).toEqual([svcChain(b), sepChain(b, added), sepChain(b, gone)]);
    expectConverges(applied, desired);
  });

  it('on a new service writes its chains and inserts its shared rules at the top', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const d = makeService(4, 1, 30004);
    const desired = renderer.render(withService(world, d));
    const plan = planPartialSync(applied, desired);
    const payload = lines(plan);
    expect(payload.filter((line) => line.startsWith('*'))).toEqual(['*nat']);
    expect(payload.filter((line) => line.startsWith(':'))).toEqual(
      [svcChain(d), sepChain(d, d.endpoints[0] ?? { ip: '', port: 0 }), extChain(d)].sort().map((chain) => `:${chain} - [0:0]`),
    );
    // In reverse: each `-I 1` lands above the one before, so the kernel ends up in the listed order.
    expect(payload.filter((line) => line.startsWith('-I '))).toEqual([
      `-I KUBE-NODEPORTS 1 ${desired.servicePorts.get(d.key)?.sharedRules[1]?.rule ?? ''}`,
      `-I KUBE-SERVICES 1 ${desired.servicePorts.get(d.key)?.sharedRules[0]?.rule ?? ''}`,
    ]);
    expect(plan.stats).toMatchObject({ chainsWritten: 3, chainsDeleted: 0, sharedRulesAdded: 2, sharedRulesDeleted: 0 });
    expectConverges(applied, desired);
  });

  it("keeps a new NodePort's 127.0.0.0/8 counting rule ahead of its general rule, as a full restore writes them", () => {
    const context = { ...testContext, localhostNodePortsCounter: 'localhost_nps_accepted_pkts' };
    const existing = renderPort({ name: 'old', clusterIP: '172.30.0.50', nodePort: 30050, endpoints: [endpoint('10.0.5.1')] });
    const added = renderPort({ name: 'new', clusterIP: '172.30.0.51', nodePort: 30051, endpoints: [endpoint('10.0.5.2')] });
    const applied = render([existing], context);
    const desired = render([existing, added], context);
    const kernel = new FakeNetfilter();
    expect(kernel.restoreSync(fullPayload(applied, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
    expect(kernel.restoreSync(planPartialSync(applied, desired).payload, { noFlush: true })).toEqual({ ok: true });
    const nodePorts = (kernel.rules('nat', 'KUBE-NODEPORTS') ?? []).filter((rule) => rule.includes('ns1/new:p80'));
    expect(nodePorts).toHaveLength(2);
    expect(nodePorts[0]).toContain('-d 127.0.0.0/8 --dport 30051 -m nfacct --nfacct-name localhost_nps_accepted_pkts');
    expect(nodePorts[1]).toContain('-m tcp -p tcp --dport 30051 -j KUBE-EXT-');
    const fresh = new FakeNetfilter();
    expect(fresh.restoreSync(fullPayload(desired, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
    expect((fresh.rules('nat', 'KUBE-NODEPORTS') ?? []).filter((rule) => rule.includes('ns1/new:p80'))).toEqual(nodePorts);
  });

  it('on a removed service deletes its shared rules before its chains', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const desired = renderer.render(withoutService(world, a.key));
    const payload = lines(planPartialSync(applied, desired));
    const removed = applied.servicePorts.get(a.key);
    const deletes = payload.filter((line) => line.startsWith('-D '));
    expect(deletes).toEqual(removed?.sharedRules.map((shared) => `-D ${shared.chain} ${shared.rule}`));
    const removals = payload.filter((line) => line.startsWith('-X '));
    expect(removals).toEqual(removed?.chains.map((chain) => `-X ${chain.name}`));
    expect(payload.indexOf(deletes.at(-1) ?? '')).toBeLessThan(payload.indexOf(removals[0] ?? ''));
    for (const chain of removed?.chains ?? []) expect(payload).toContain(`:${chain.name} - [0:0]`);
    expectConverges(applied, desired);
  });

  it('touches both tables when a service without endpoints gains one', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const desired = renderer.render(withService(world, { ...c, endpoints: [{ ip: '10.250.1.1', port: 8080 }] }));
    const plan = planPartialSync(applied, desired);
    const payload = lines(plan);
    expect(payload.filter((line) => line.startsWith('*'))).toEqual(['*filter', '*nat']);
    expect(payload.filter((line) => line.startsWith('-D '))).toHaveLength(2);
    expect(plan.stats).toMatchObject({ sharedRulesDeleted: 2, sharedRulesAdded: 2 });
    expectConverges(applied, desired);
  });

  it('rewrites a shared chain whose trailer changed, with every service rule, and edits no rule in it', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const d = makeService(4, 1);
    const desired = renderer.render({ ...withService(world, d), nodePortAddresses: ['192.168.0.0/16'] });
    const plan = planPartialSync(applied, desired);
    const payload = lines(plan);
    expect(payload).toContain(':KUBE-SERVICES - [0:0]');
    const body = payload.filter((line) => line.startsWith('-A KUBE-SERVICES '));
    const serviceRules = [...desired.servicePorts.values()].flatMap((rules) => rules.sharedRules.filter((shared) => shared.table === 'nat' && shared.chain === 'KUBE-SERVICES'));
    expect(body).toHaveLength(serviceRules.length + 1);
    expect(body.at(-1)).toContain('-d 192.168.0.2 -j KUBE-NODEPORTS');
    expect(payload.some((line) => line.startsWith('-I KUBE-SERVICES '))).toBe(false);
    expect(plan.stats.sharedRulesAdded).toBe(serviceRules.length);
    expectConverges(applied, desired);
  });

  it('rewrites a static chain whose rules changed', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    const desired = renderer.render({ ...world, randomFully: false });
    const payload = lines(planPartialSync(applied, desired));
    expect(payload[0]).toBe('*nat');
    expect(payload.filter((line) => line.startsWith(':'))).toEqual([':KUBE-POSTROUTING - [0:0]']);
    expect(payload.filter((line) => line.startsWith('-A '))).toHaveLength(3);
    expectConverges(applied, desired);
  });

  it('deletes a static chain that is no longer rendered, and deletes and inserts changed jumps', () => {
    const renderer = new SyntheticRenderer();
    const base = renderer.render(world);
    const extraJump: BuiltinJump = { table: 'nat', chain: 'PREROUTING', rule: '-m comment --comment "extra" -j KUBE-EXTRA' };
    const applied: RuleSet = {
      ...base,
      staticChains: [...base.staticChains, { kind: 'ordered', table: 'nat', name: 'KUBE-EXTRA', rules: ['-j RETURN'] }],
      jumps: [...base.jumps, extraJump],
    };
    const newJump: BuiltinJump = { table: 'nat', chain: 'OUTPUT', rule: '-m comment --comment "new" -j KUBE-POSTROUTING' };
    const desired: RuleSet = { ...base, jumps: [newJump, ...base.jumps] };
    const payload = lines(planPartialSync(applied, desired));
    expect(payload).toEqual([
      '*nat',
      ':KUBE-EXTRA - [0:0]',
      `-D PREROUTING ${extraJump.rule}`,
      `-I OUTPUT 1 ${newJump.rule}`,
      '-X KUBE-EXTRA',
      'COMMIT',
    ]);
    expectConverges(applied, desired);
  });

  it('cancels a rule and a chain that move between service ports', () => {
    const renderer = new SyntheticRenderer();
    const applied = renderer.render(world);
    // Same chain names and rules under another key: nothing to do in the kernel.
    const moved = { ...b, key: 'other/key' };
    const desired = renderer.render(withService(withoutService(world, b.key), moved));
    const plan = planPartialSync(applied, desired);
    expect(plan.stats).toMatchObject({ chainsDeleted: 0, sharedRulesAdded: 0, sharedRulesDeleted: 0 });
    expectConverges(applied, desired);
  });

  it('converges over long random sequences (fake netfilter)', () => {
    for (let seed = 1; seed <= 25; seed++) {
      const random = prng(seed);
      const renderer = new SyntheticRenderer();
      let world = makeWorld(12, 2);
      let applied = renderer.render(world);
      const kernel = new FakeNetfilter();
      expect(kernel.restoreSync(fullPayload(applied, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
      for (let step = 0; step < 30; step++) {
        world = mutate(world, random).world;
        const desired = renderer.render(world);
        const plan = planPartialSync(applied, desired);
        if (plan.payload !== '') expect(kernel.restoreSync(plan.payload, { noFlush: true }), `seed ${seed} step ${step}\n${plan.payload}`).toEqual({ ok: true });
        const fresh = new FakeNetfilter();
        expect(fresh.restoreSync(fullPayload(desired, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
        expect(normalisedTables(kernel, desired), `seed ${seed} step ${step}`).toBe(normalisedTables(fresh, desired));
        applied = desired;
      }
    }
  }, 120_000);
});

describe('planSync / planFullSync', () => {
  const world = worldOf(makeService(1, 2), makeService(2, 1, 30002));
  const desired = new SyntheticRenderer().render(world);
  const kernel = { existingChains: new Map(), missingJumps: desired.jumps, forceFull: false };

  it('is full when nothing is known to be applied, or when forced', () => {
    expect(planSync(undefined, desired, kernel).kind).toBe('full');
    expect(planSync(desired, desired, { ...kernel, forceFull: true }).kind).toBe('full');
    expect(planSync(desired, desired, kernel)).toMatchObject({ kind: 'partial', payload: '' });
  });

  it('inserts only the missing jumps and deletes stale chains and jumps', () => {
    const missing = desired.jumps.filter((jump) => jump.table === 'nat');
    const staleJump: BuiltinJump = { table: 'filter', chain: 'INPUT', rule: '-m comment --comment "old" -j KUBE-SVC-OLD' };
    const plan = planFullSync(desired, {
      existingChains: new Map([['filter', new Set(['KUBE-SVC-OLD', 'KUBE-SERVICES'])], ['nat', new Set<string>()]]),
      missingJumps: missing,
      staleJumps: [staleJump],
    });
    expect(plan.kind).toBe('full');
    expect(plan.payload.match(/^-I (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) 1 .*$/gm)).toEqual(
      [...missing].reverse().map((jump) => `-I ${jump.chain} 1 ${jump.rule}`),
    );
    expect(plan.stats.chainsDeleted).toBe(1);
    // A full sync over a kernel that holds an older state converges too.
    const node = new FakeNetfilter();
    expect(node.restoreSync('*filter\n:KUBE-SVC-OLD - [0:0]\n-A KUBE-SVC-OLD -j ACCEPT\n-A INPUT -m comment --comment "old" -j KUBE-SVC-OLD\nCOMMIT\n', { noFlush: true })).toEqual({ ok: true });
    expect(node.restoreSync(fullPayload(desired, { jumps: 'append', onlyJumps: desired.jumps.filter((jump) => jump.table === 'filter') }), { noFlush: true })).toEqual({ ok: true });
    expect(node.restoreSync(plan.payload, { noFlush: true })).toEqual({ ok: true });
    const fresh = new FakeNetfilter();
    expect(fresh.restoreSync(fullPayload(desired, { jumps: 'append' }), { noFlush: true })).toEqual({ ok: true });
    expect(normalisedTables(node, desired)).toBe(normalisedTables(fresh, desired));
  });
});

describe('partial sync at scale', () => {
  it('plans one endpoint change among 10k services in a small payload', () => {
    const renderer = new SyntheticRenderer();
    let world = makeWorld(10_000, 10);
    const applied = renderer.render(world);
    const target = world.services.get('ns2/svc1234:http/TCP');
    if (target === undefined) throw new Error('fixture');
    world = withService(world, { ...target, endpoints: [...target.endpoints.slice(1), { ip: '10.250.9.9', port: 8080 }] });
    const desired = renderer.render(world);
    // Warm once, then average: the figure is the steady state a running agent sees.
    let plan = planPartialSync(applied, desired);
    const runs = 20;
    const started = performance.now();
    for (let run = 0; run < runs; run++) plan = planPartialSync(applied, desired);
    const elapsed = (performance.now() - started) / runs;
    console.log(`partial plan, one endpoint change at 10k services: ${elapsed.toFixed(2)} ms, ${plan.stats.bytes} bytes, ${plan.stats.lines} lines`);
    // The floor is that service's SVC chain (11 rules, ~1.5 KB with kube-proxy's comments) plus
    // the new SEP chain; nothing else may appear.
    expect(plan.stats.bytes).toBeLessThan(2560);
    const declared = plan.payload.match(/^:\S+/gm) ?? [];
    expect(declared).toHaveLength(3);
    expect(declared.filter((line) => line === `:${svcChain(target)}`)).toHaveLength(1);
    expect(declared.filter((line) => /^:KUBE-SEP-/.test(line))).toHaveLength(2);
    expect(plan.stats).toMatchObject({ chainsWritten: 2, chainsDeleted: 1, sharedRulesAdded: 0, sharedRulesDeleted: 0 });
  }, 120_000);
});
