import { describe, expect, it } from 'vitest';

import { planFullSync, planPartialSync } from '../../../src/sync/diff.js';
import { buildFullPayload } from '../../../src/sync/payload.js';
import { rulesWrittenPerTable } from './count-rules.js';
import { makeService, SyntheticRenderer, type SyntheticWorld } from './synthetic.js';

function world(count: number, endpoints: number): SyntheticWorld {
  const services = Array.from({ length: count }, (_, index) => makeService(index + 1, endpoints, index % 3 === 0 ? 30000 + index : undefined));
  return { services: new Map(services.map((service) => [service.key, service])), randomFully: true, nodePortAddresses: [] };
}

describe('payload chunks', () => {
  it('are newline-terminated pieces whose concatenation is the payload, with its byte count', () => {
    const ruleSet = new SyntheticRenderer().render(world(400, 10));
    const built = buildFullPayload(ruleSet, { jumps: 'append' });
    const chunks = [...built.chunks];
    expect(chunks.length).toBeGreaterThan(3);
    for (const chunk of chunks) expect(chunk.endsWith('\n')).toBe(true);
    const text = chunks.join('');
    // Generated again, the same pieces.
    expect([...built.chunks]).toEqual(chunks);
    expect(built.payload).toBe(text);
    expect(built.stats.bytes).toBe(Buffer.byteLength(text));
    expect(built.stats.lines).toBe(text.split('\n').length - 1);
    // Rules written per table, counted by the builder, are what the text holds.
    expect(built.stats.rulesWritten).toEqual({ filter: 0, nat: 0, ...rulesWrittenPerTable(text) });
    expect(built.stats.rulesWritten.nat).toBeGreaterThan(8000);
    expect(text.startsWith('*filter\n')).toBe(true);
    expect(text.endsWith('COMMIT\n')).toBe(true);
  });

  it('plans carry the chunks; an unchanged partial plan has none and an empty payload', () => {
    const renderer = new SyntheticRenderer();
    const first = renderer.render(world(50, 3));
    const full = planFullSync(first, { existingChains: new Map(), missingJumps: first.jumps });
    expect([...full.chunks].join('')).toBe(full.payload);
    const same = planPartialSync(first, renderer.render(world(50, 3)));
    expect([...same.chunks]).toEqual([]);
    expect(same.stats.bytes).toBe(0);
    expect(same.payload).toBe('');
    const changed = planPartialSync(first, renderer.render(world(51, 3)));
    expect([...changed.chunks].join('')).toBe(changed.payload);
    expect(changed.payload).toMatch(/^\*nat\n/m);
    expect(changed.stats.rulesWritten).toEqual({ filter: 0, nat: 0, ...rulesWrittenPerTable(changed.payload) });
    expect(same.stats.rulesWritten).toEqual({ filter: 0, nat: 0 });
  });
});
