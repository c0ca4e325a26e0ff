// iptables keeps at most 255 characters of a rule comment and cuts the rest without a word. The
// names that go into comments are held to the apiserver's bounds (namespace and Service name: DNS
// labels of at most 63 characters), so that every comment rendered fits; longer names are skipped
// with a reason (logged and counted once) instead of being programmed with cut comments.

import { describe, expect, it } from 'vitest';
import { buildDesiredState } from '../../../src/model/build.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { defaultRenderContext, localTrafficFromCIDR } from '../../../src/render/types.js';
import { fullPayload } from '../../../src/sync/payload.js';
import { makeEndpoint, makeNode, makeService, makeSlice } from '../model/fixtures.js';
import { longestNamedObjects, ruleComments } from '../../support/longest-names.js';

const node = makeNode('node-a');
describe('rule comments', () => {
  it('stay within 255 characters for the longest names the apiserver allows', () => {
    const { state, skipped } = buildDesiredState({ ...longestNamedObjects(), node });
    expect(skipped).toEqual([]);
    expect(state.servicePorts.size).toBe(2);
    const payload = fullPayload(renderRuleSet(state, { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: ['172.30.0.10'], localhostNodePorts: false }), { jumps: 'append' });
    const all = ruleComments(payload);
    expect(all.length).toBeGreaterThan(20);
    const longestComment = all.reduce((a, b) => (b.length > a.length ? b : a), '');
    expect(longestComment.length, longestComment).toBeLessThanOrEqual(255);
  });

  it.each([
    ['a Service name of 64 characters', { services: [makeService('ns', 's'.repeat(64))] }, 'Service', 'metadata.name'],
    ['a Service name that is a subdomain', { services: [makeService('ns', 'web.example')] }, 'Service', 'metadata.name'],
    ['a Service name starting with a digit', { services: [makeService('ns', '1web')] }, 'Service', 'metadata.name'],
    ['a namespace of 64 characters', { services: [makeService('n'.repeat(64), 'web')] }, 'Service', 'metadata.namespace'],
    ['an EndpointSlice for a 64-character Service name', { endpointSlices: [makeSlice('ns', 'web-1', 's'.repeat(64), [makeEndpoint('10.244.0.1')])] }, 'EndpointSlice', 'kubernetes.io/service-name'],
  ])('skip %s with a reason, as the apiserver would refuse it', (_case, objects, kind, field) => {
    const { state, skipped } = buildDesiredState({ services: [], endpointSlices: [], ...objects, node });
    expect(state.servicePorts.size).toBe(0);
    expect(skipped.map((entry) => `${entry.kind} ${entry.reason}`)).toEqual([`${kind} invalid-name`]);
    expect(skipped[0]?.detail).toContain(field);
  });
});
