import { describe, expect, it } from 'vitest';
import type { BuiltinJump, RuleSet, ServicePortRules } from '../../../src/render/types.js';
import { buildFullPayload, fullPayload, PayloadBuilder } from '../../../src/sync/payload.js';
import { FakeNetfilter } from '../../support/fake-netfilter.js';
import { makeService, makeWorld, svcChain, SyntheticRenderer, syntheticJumps, type SyntheticWorld } from './synthetic.js';

function worldOf(...services: ReturnType<typeof makeService>[]): SyntheticWorld {
  return { services: new Map(services.map((service) => [service.key, service])), randomFully: true, nodePortAddresses: [] };
}

function sectionOf(payload: string, table: string): string[] {
  const lines = payload.split('\n');
  const start = lines.indexOf(`*${table}`);
  const end = lines.indexOf('COMMIT', start);
  return lines.slice(start + 1, end);
}

describe('fullPayload', () => {
  const a = makeService(1, 2, 30001);
  const b = makeService(2, 0, 30002);
  const ruleSet = new SyntheticRenderer().render(worldOf(a, b));

  it('writes *filter then *nat, each declaring every chain we own and ending in COMMIT', () => {
    const payload = fullPayload(ruleSet, { jumps: 'append' });
    const lines = payload.split('\n');
    expect(lines[0]).toBe('*filter');
    expect(lines.filter((line) => line.startsWith('*'))).toEqual(['*filter', '*nat']);
    expect(lines.filter((line) => line === 'COMMIT')).toHaveLength(2);
    expect(payload.endsWith('COMMIT\n')).toBe(true);
    const nat = sectionOf(payload, 'nat');
    const declared = nat.filter((line) => line.startsWith(':')).map((line) => line.slice(1).split(' ')[0]);
    const expected = [
      ...ruleSet.staticChains.filter((chain) => chain.table === 'nat').map((chain) => chain.name),
      ...ruleSet.sharedChains.filter((chain) => chain.table === 'nat').map((chain) => chain.name),
      ...[...ruleSet.servicePorts.values()].flatMap((rules) => rules.chains.map((chain) => chain.name)),
    ];
    expect(new Set(declared)).toEqual(new Set(expected));
    expect(declared).toHaveLength(expected.length);
    // Declarations come before any rule, and every declaration has the flushing form.
    const firstRule = nat.findIndex((line) => !line.startsWith(':'));
    expect(nat.slice(firstRule).some((line) => line.startsWith(':'))).toBe(false);
    expect(nat.filter((line) => line.startsWith(':')).every((line) => / - \[0:0\]$/.test(line))).toBe(true);
  });

  it('declares an ensured chain only where the kernel lacks it: declaring flushes what kubelet keeps there', () => {
    const withEnsured: RuleSet = { ...ruleSet, ensuredChains: [{ table: 'filter', name: 'KUBE-FIREWALL' }] };
    expect(sectionOf(fullPayload(withEnsured, { jumps: 'append' }), 'filter')).toContain(':KUBE-FIREWALL - [0:0]');
    const present = new Map([['filter', new Set(['KUBE-FIREWALL'])]] as const);
    const payload = fullPayload(withEnsured, { jumps: 'insert', existingChains: new Map(), presentEnsuredChains: present });
    expect(payload).not.toContain(':KUBE-FIREWALL');
    expect(payload).not.toContain('-X KUBE-FIREWALL');
  });

  it('never declares a built-in chain, so rules others keep there survive --noflush', () => {
    const payload = fullPayload(ruleSet, { jumps: 'append' });
    expect(payload).not.toMatch(/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /m);
  });

  it('assembles shared chains as service rules sorted by service port key, then the trailer', () => {
    const services = [makeService(5, 1), makeService(3, 1), makeService(4, 1)];
    const rendered = new SyntheticRenderer().render(worldOf(...services));
    const nat = sectionOf(fullPayload(rendered, { jumps: 'none' }), 'nat');
    const kubeServices = nat.filter((line) => line.startsWith('-A KUBE-SERVICES '));
    const keys = [...services].map((service) => service.key).sort();
    const expectedOrder = keys.map((key) => rendered.servicePorts.get(key)?.sharedRules[0]?.rule);
    expect(kubeServices.slice(0, 3).map((line) => line.slice('-A KUBE-SERVICES '.length))).toEqual(expectedOrder);
    expect(kubeServices[3]).toContain('-j KUBE-NODEPORTS');
  });

  it('is deterministic whatever the Map order of service ports', () => {
    const reversed: RuleSet = { ...ruleSet, servicePorts: new Map([...ruleSet.servicePorts].reverse()) };
    expect(fullPayload(reversed, { jumps: 'append' })).toBe(fullPayload(ruleSet, { jumps: 'append' }));
  });

  it('appends jumps in RuleSet order, after our chains', () => {
    const nat = sectionOf(fullPayload(ruleSet, { jumps: 'append' }), 'nat');
    const jumps = nat.filter((line) => /^-A (PREROUTING|OUTPUT|POSTROUTING) /.test(line));
    expect(jumps).toEqual(syntheticJumps.filter((jump) => jump.table === 'nat').map((jump) => `-A ${jump.chain} ${jump.rule}`));
    expect(nat.indexOf(jumps[0] ?? '')).toBeGreaterThan(nat.findIndex((line) => line.startsWith('-A KUBE-')));
  });

  it('inserts jumps so they end up in RuleSet order, above rules others already have', () => {
    const kernel = new FakeNetfilter();
    expect(kernel.restoreSync('*filter\n-A INPUT -j ACCEPT\nCOMMIT\n', { noFlush: true })).toEqual({ ok: true });
    expect(kernel.restoreSync(fullPayload(ruleSet, { jumps: 'insert' }), { noFlush: true })).toEqual({ ok: true });
    const input = kernel.rules('filter', 'INPUT');
    const wanted = syntheticJumps.filter((jump) => jump.table === 'filter' && jump.chain === 'INPUT').map((jump) => jump.rule);
    expect(input).toEqual([...wanted, '-j ACCEPT']);
    expect(fullPayload(ruleSet, { jumps: 'insert' })).toMatch(/^-I INPUT 1 /m);
  });

  it("writes no jump with jumps 'none', and only onlyJumps when given", () => {
    expect(fullPayload(ruleSet, { jumps: 'none' })).not.toMatch(/^-[AI] (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /m);
    const only: BuiltinJump[] = syntheticJumps.filter((jump) => jump.table === 'nat' && jump.chain === 'OUTPUT');
    const payload = fullPayload(ruleSet, { jumps: 'insert', onlyJumps: only });
    expect(payload.match(/^-I (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /gm)).toEqual(['-I OUTPUT ']);
  });

  it('deletes stale chains at the end of their table, after the -D of stale jumps', () => {
    const staleJump: BuiltinJump = { table: 'nat', chain: 'PREROUTING', rule: '-j KUBE-OLD-STUFF' };
    const payload = fullPayload(ruleSet, {
      jumps: 'none',
      existingChains: new Map([
        ['nat', new Set(['KUBE-SEP-STALE', 'KUBE-SERVICES', svcChain(a)])],
        ['filter', new Set(['KUBE-SVC-GONE'])],
      ]),
      staleJumps: [staleJump],
    });
    const nat = sectionOf(payload, 'nat');
    expect(nat).toContain(':KUBE-SEP-STALE - [0:0]');
    expect(nat.at(-1)).toBe('-X KUBE-SEP-STALE');
    expect(nat.filter((line) => line.startsWith('-X '))).toEqual(['-X KUBE-SEP-STALE']);
    expect(nat.indexOf('-D PREROUTING -j KUBE-OLD-STUFF')).toBeLessThan(nat.indexOf('-X KUBE-SEP-STALE'));
    expect(sectionOf(payload, 'filter').at(-1)).toBe('-X KUBE-SVC-GONE');
  });


  it("declares each table's chains, stale ones included, in byte order of their names before any rule", () => {
    const many = new SyntheticRenderer().render(makeWorld(300, 4));
    const payload = fullPayload(many, {
      jumps: 'append',
      existingChains: new Map([['nat', new Set(['KUBE-SEP-0STALE', 'KUBE-SVC-ZSTALE'])]]),
    });
    for (const table of ['filter', 'nat']) {
      const section = sectionOf(payload, table);
      const declared = section.filter((line) => line.startsWith(':')).map((line) => line.slice(1, line.indexOf(' ')));
      const byteOrder = [...declared].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      expect(declared).toEqual(byteOrder);
      // Declarations first: nothing in between them.
      expect(section.slice(0, declared.length).every((line) => line.startsWith(':'))).toBe(true);
    }
    const nat = sectionOf(payload, 'nat');
    // The stale chains sort in among ours (and are still deleted last).
    expect(nat.indexOf(':KUBE-SEP-0STALE - [0:0]')).toBeGreaterThan(0);
    expect(nat.indexOf(':KUBE-SVC-ZSTALE - [0:0]')).toBeGreaterThan(nat.indexOf(':KUBE-SEP-0STALE - [0:0]'));
    expect(nat.filter((line) => line.startsWith(':KUBE-SEP-')).length).toBeGreaterThan(1000);
    expect(nat.slice(-2)).toEqual(['-X KUBE-SEP-0STALE', '-X KUBE-SVC-ZSTALE']);
  });
  it('restores into an empty kernel and reports its own size', () => {
    const kernel = new FakeNetfilter();
    const built = buildFullPayload(ruleSet, { jumps: 'append' });
    expect(kernel.restoreSync(built.payload, { noFlush: true })).toEqual({ ok: true });
    expect(built.stats.lines).toBe(built.payload.split('\n').length - 1);
    expect(built.stats.bytes).toBe(Buffer.byteLength(built.payload));
    const owned = [...ruleSet.servicePorts.values()].reduce((sum, rules) => sum + rules.chains.length, 0);
    // A fresh kernel lacks the ensured chains (kubelet's KUBE-FIREWALL) too: declared, so written.
    expect(built.stats.chainsWritten).toBe(ruleSet.staticChains.length + ruleSet.sharedChains.length + ruleSet.ensuredChains.length + owned);
    expect(built.stats.sharedRulesAdded).toBe([...ruleSet.servicePorts.values()].reduce((sum, rules) => sum + rules.sharedRules.length, 0));
  });

  it('builds 10k services x 10 endpoints quickly', () => {
    const big = new SyntheticRenderer().render(makeWorld(10_000, 10));
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const built = buildFullPayload(big, { jumps: 'append' });
    const cpu = process.cpuUsage(cpuBefore);
    const elapsed = performance.now() - started;
    // A figure, not an assertion: timing on a shared machine is noise (STYLE.md, benchmarks).
    console.log(
      `full payload 10k x 10: ${(built.stats.bytes / 1e6).toFixed(1)} MB, ${built.stats.lines} lines, ` +
        `${elapsed.toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms cpu`,
    );
    expect(built.stats.chainsWritten).toBeGreaterThan(110_000);
  }, 120_000);
});

describe('PayloadBuilder', () => {
  it('is empty when nothing was added', () => {
    expect(new PayloadBuilder().build()).toMatchObject({ payload: '', stats: { lines: 0, bytes: 0 } });
  });

  it('caps the changed chain names and keeps the count', () => {
    const builder = new PayloadBuilder();
    for (let i = 0; i < 80; i++) builder.writeChain('nat', `KUBE-SEP-${i}`, ['-j ACCEPT']);
    const { stats } = builder.build();
    expect(stats.changedChainNames).toHaveLength(50);
    expect(stats.changedChainCount).toBe(80);
  });

  it('orders a table as declarations, -D, bodies, -I, jumps, -X', () => {
    const builder = new PayloadBuilder();
    builder.deleteChain('nat', 'KUBE-SEP-OLD');
    builder.insertSharedRule('nat', 'KUBE-SERVICES', '-d 10.0.0.1 -j KUBE-SVC-NEW');
    builder.writeChain('nat', 'KUBE-SVC-NEW', ['-j ACCEPT']);
    builder.deleteSharedRule('nat', 'KUBE-SERVICES', '-d 10.0.0.2 -j KUBE-SVC-OLD');
    builder.insertJump({ table: 'nat', chain: 'OUTPUT', rule: '-j KUBE-SERVICES' });
    expect(builder.build().payload).toBe(
      [
        '*nat',
        ':KUBE-SEP-OLD - [0:0]',
        ':KUBE-SVC-NEW - [0:0]',
        '-D KUBE-SERVICES -d 10.0.0.2 -j KUBE-SVC-OLD',
        '-A KUBE-SVC-NEW -j ACCEPT',
        '-I KUBE-SERVICES 1 -d 10.0.0.1 -j KUBE-SVC-NEW',
        '-I OUTPUT 1 -j KUBE-SERVICES',
        '-X KUBE-SEP-OLD',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });
});
