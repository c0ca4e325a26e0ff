// explainTrace on rules rendered from objects (the product pipeline: objects -> model -> rules ->
// restore text -> parsed tables): the Service port matched, candidates with probabilities, why
// the other endpoints are excluded, masquerade and verdict reasons, session affinity.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

import { buildDesiredState } from '../../../src/model/build.js';
import type { DesiredState, NodeInfo } from '../../../src/model/types.js';
import { renderRuleSet } from '../../../src/render/index.js';
import { defaultRenderContext, localTrafficFromCIDR, type RenderContext } from '../../../src/render/types.js';
import { fullPayload } from '../../../src/sync/payload.js';
import { explainTrace, type TraceReport } from '../../../src/trace/explain.js';
import { parseSavedTables, type SavedTables } from '../../../src/trace/tables.js';
import type { Origin } from '../../../src/trace/tracer.js';
import { endpointSliceObject, serviceObject, type EndpointInput } from '../../support/objects.js';

const NODE_IP = '192.168.0.2';
const node: NodeInfo = { name: 'node1', ips: [NODE_IP], zone: 'zone-a', labels: {}, podCIDRs: [] };
const context: RenderContext = { ...defaultRenderContext, localTraffic: localTrafficFromCIDR('10.244.0.0/16'), nodeIPs: [NODE_IP], localhostNodePorts: false };

function web(clusterIP: string, spec: Partial<NonNullable<V1Service['spec']>> = {}, nodePort?: number): V1Service {
  return serviceObject({
    namespace: 'shop',
    name: `web-${clusterIP.split('.').at(-1) ?? ''}`,
    type: nodePort === undefined ? 'ClusterIP' : 'NodePort',
    clusterIP,
    ports: [{ name: 'http', port: 80, targetPort: 8080, ...(nodePort === undefined ? {} : { nodePort }) }],
    spec: { clusterIPs: [clusterIP], ...spec },
  });
}

function endpoints(service: V1Service, list: readonly EndpointInput[]): V1EndpointSlice {
  return endpointSliceObject({ namespace: 'shop', serviceName: service.metadata?.name ?? '', name: `${service.metadata?.name ?? ''}-1`, ports: [{ name: 'http', port: 8080 }], endpoints: list });
}

function build(objects: readonly (V1Service | V1EndpointSlice)[]): { saved: SavedTables; model: DesiredState } {
  const { state, skipped } = buildDesiredState({
    services: objects.filter((object): object is V1Service => object.kind === 'Service'),
    endpointSlices: objects.filter((object): object is V1EndpointSlice => object.kind === 'EndpointSlice'),
    node,
  });
  expect(skipped).toEqual([]);
  const parsed = parseSavedTables(fullPayload(renderRuleSet(state, context), { jumps: 'append' }));
  if (!parsed.ok) throw new Error(parsed.message);
  return { saved: parsed.saved, model: state };
}

function explain(
  built: { saved: SavedTables; model: DesiredState },
  source: string,
  destination: string,
  port: number,
  origin: Origin,
  withModel = true,
): TraceReport {
  return explainTrace({
    saved: built.saved,
    packet: { source, destination, destinationPort: port, protocol: 'TCP', origin, localAddresses: [NODE_IP] },
    ...(withModel ? { model: built.model } : {}),
  });
}

const summary = (report: TraceReport): string[] =>
  report.outcomes.map((outcome) => `${outcome.verdict} ${outcome.endpoint ?? '-'} ${outcome.masquerade ? 'masq' : 'kept'} ${outcome.probability.toFixed(3)}`);

describe('explainTrace', () => {
  const mixed = web('10.96.0.10');
  const zoned = web('10.96.0.11');
  const local = web('10.96.0.12', { externalTrafficPolicy: 'Local', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }, 30012);
  const noLocal = web('10.96.0.13', { externalTrafficPolicy: 'Local' }, 30013);
  const internalLocal = web('10.96.0.14', { internalTrafficPolicy: 'Local' });
  const empty = web('10.96.0.15');
  const built = build([
    mixed,
    endpoints(mixed, [
      { address: '10.244.1.11', nodeName: 'node1' },
      { address: '10.244.2.12', nodeName: 'node2' },
      { address: '10.244.2.13', nodeName: 'node2', ready: false },
      { address: '10.244.2.14', nodeName: 'node2', ready: false, serving: true, terminating: true },
      { address: '10.244.2.15', nodeName: 'node2', ready: false, serving: false, terminating: true },
    ]),
    zoned,
    endpoints(zoned, [
      { address: '10.244.1.21', nodeName: 'node1', zone: 'zone-a', forZones: ['zone-a'] },
      { address: '10.244.2.22', nodeName: 'node2', zone: 'zone-b', forZones: ['zone-b'] },
      { address: '10.244.3.23', nodeName: 'node3', zone: 'zone-a', forZones: ['zone-a'] },
    ]),
    local,
    endpoints(local, [
      { address: '10.244.1.31', nodeName: 'node1' },
      { address: '10.244.2.32', nodeName: 'node2' },
    ]),
    noLocal,
    endpoints(noLocal, [{ address: '10.244.2.41', nodeName: 'node2' }]),
    internalLocal,
    endpoints(internalLocal, [
      { address: '10.244.1.51', nodeName: 'node1' },
      { address: '10.244.2.52', nodeName: 'node2' },
    ]),
    empty,
    endpoints(empty, []),
  ]);

  it('names the Service port and spreads a pod over the ready endpoints; not ready and terminating ones are excluded', () => {
    const report = explain(built, '10.244.1.99', '10.96.0.10', 80, 'pod');
    expect(report.service).toMatchObject({ servicePortName: 'shop/web-10:http', namespace: 'shop', name: 'web-10', port: 'http', matchedBy: 'cluster IP', sessionAffinity: undefined });
    expect(summary(report)).toEqual(['ACCEPT 10.244.1.11:8080 kept 0.500', 'ACCEPT 10.244.2.12:8080 kept 0.500']);
    expect(report.outcomes.map((outcome) => outcome.endpointNode)).toEqual(['node1', 'node2']);
    expect(report.excluded).toEqual([
      { endpoint: '10.244.2.13:8080', node: 'node2', reason: 'not ready' },
      { endpoint: '10.244.2.14:8080', node: 'node2', reason: 'terminating (serving, but ready endpoints exist, so terminating ones are not used)' },
      { endpoint: '10.244.2.15:8080', node: 'node2', reason: 'terminating and no longer serving' },
    ]);
  });

  it('says which rule masquerades: the cluster IP rule for the node, the endpoint chain for a hairpin', () => {
    const fromNode = explain(built, NODE_IP, '10.96.0.10', 80, 'node');
    expect(fromNode.outcomes.every((outcome) => outcome.masquerade)).toBe(true);
    expect(fromNode.outcomes[0]?.masqueradeBy).toMatchObject({ table: 'nat', comment: 'shop/web-10:http cluster IP', target: 'KUBE-MARK-MASQ' });
    const hairpin = explain(built, '10.244.1.11', '10.96.0.10', 80, 'pod');
    const self = hairpin.outcomes.find((outcome) => outcome.endpoint === '10.244.1.11:8080');
    expect(self?.masquerade).toBe(true);
    expect(self?.masqueradeBy?.chain).toMatch(/^KUBE-SEP-/);
    expect(hairpin.outcomes.find((outcome) => outcome.endpoint === '10.244.2.12:8080')?.masquerade).toBe(false);
  });

  it('excludes endpoints hinted for other zones', () => {
    const report = explain(built, '10.244.1.99', '10.96.0.11', 80, 'pod');
    expect(summary(report)).toEqual(['ACCEPT 10.244.1.21:8080 kept 0.500', 'ACCEPT 10.244.3.23:8080 kept 0.500']);
    expect(report.excluded).toEqual([{ endpoint: '10.244.2.22:8080', node: 'node2', reason: 'topology: hinted for zone(s) zone-b, this node is in zone zone-a' }]);
  });

  it('externalTrafficPolicy Local from outside: only the local endpoint, source kept, affinity from the model', () => {
    const report = explain(built, '203.0.113.7', NODE_IP, 30012, 'outside');
    expect(report.service).toMatchObject({ matchedBy: 'node port', sessionAffinity: { timeoutSeconds: 600 }, trafficPolicy: { internal: 'Cluster', external: 'Local' } });
    expect(summary(report)).toEqual(['ACCEPT 10.244.1.31:8080 kept 1.000']);
    expect(report.excluded).toEqual([
      { endpoint: '10.244.2.32:8080', node: 'node2', reason: "on node node2: externalTrafficPolicy Local sends this traffic only to this node's endpoints" },
    ]);
    // Without the model, affinity is read from the rules.
    expect(explain(built, '203.0.113.7', NODE_IP, 30012, 'outside', false).service?.sessionAffinity).toEqual({ timeoutSeconds: 600 });
  });

  it('externalTrafficPolicy Local without a local endpoint: DROP, and why', () => {
    const report = explain(built, '203.0.113.7', NODE_IP, 30013, 'outside');
    expect(summary(report)).toEqual(['DROP - kept 1.000']);
    expect(report.outcomes[0]?.reason).toBe('filter KUBE-EXTERNAL-SERVICES #1: shop/web-13:http has no local endpoints');
    expect(report.excluded?.map((excluded) => excluded.reason)).toEqual([
      "on node node2: externalTrafficPolicy Local sends this traffic only to this node's endpoints",
    ]);
  });

  it('internalTrafficPolicy Local keeps cluster IP traffic on this node', () => {
    const report = explain(built, '10.244.1.99', '10.96.0.14', 80, 'pod');
    expect(summary(report)).toEqual(['ACCEPT 10.244.1.51:8080 kept 1.000']);
    expect(report.excluded?.[0]?.reason).toBe("on node node2: internalTrafficPolicy Local sends this traffic only to this node's endpoints");
  });

  it('a Service without endpoints: REJECT with the rule that says so', () => {
    const report = explain(built, '10.244.1.99', '10.96.0.15', 80, 'pod');
    expect(report.service?.servicePortName).toBe('shop/web-15:http');
    expect(summary(report)).toEqual(['REJECT - kept 1.000']);
    expect(report.outcomes[0]?.reason).toBe('filter KUBE-SERVICES #1: shop/web-15:http has no endpoints');
    expect(report.excluded).toEqual([]);
  });

  it('a packet no Service rule matches: no Service, accepted untouched', () => {
    const report = explain(built, '10.244.1.99', '198.51.100.1', 443, 'pod');
    expect(report.service).toBeUndefined();
    expect(summary(report)).toEqual(['ACCEPT - kept 1.000']);
    expect(report.excluded).toBeUndefined();
  });
});
