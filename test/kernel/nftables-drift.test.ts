// The nftables mode's per-rule drift check against a real kernel: a table fresh from a full sync
// shows no drift (nft's own spelling of our rules is not drift); a rule someone else changed in a
// service's endpoint chain and one deleted from a static chain are found by the read a periodic
// sync starts and rewritten by the next sync, after which the table equals a fresh node's.

import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelStore } from '../../src/model/store.js';
import { Nft } from '../../src/nftables/nft.js';
import { NftablesProxier, type NftablesSyncReport } from '../../src/nftables/nftables-proxier.js';
import { nftContextFor, type NftSettings } from '../../src/nftables/context.js';
import { nftEndpointNames } from '../../src/nftables/vocabulary.js';
import { createNetns, kernelSkipReason, type Netns } from '../harness/netns.js';
import { normalisedNftTable } from '../harness/nft-table.js';
import { service, slice } from '../unit/agent/fixtures.js';

const skipReason = kernelSkipReason();
const node = { name: 'node1', ips: ['172.30.0.10'], zone: undefined, labels: {}, podCIDRs: [] };
/** From the settings, as the agent builds it: detectLocal ClusterCIDR, NodePorts on the node IP, a ServiceCIDR per family. */
const settings: NftSettings = {
  nodeIPs: [], masqueradeBit: 14, masqueradeAll: false, detectLocal: { mode: 'ClusterCIDR' }, clusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'], nodePortAddresses: { kind: 'all' },
};
const serviceCIDRs = ['10.96.0.0/16', 'fd00:10:96::/112'];

const node6 = { ...node, ips: ['fd00:30::10'] };

/** IPv6 Services with the same constructs (nft spells IPv6 addresses, sets and dnat targets its own way too). */
function fill6(store: ModelStore): void {
  const ipv6 = (object: V1Service): V1Service => ({ ...object, spec: { ...object.spec, ipFamilies: ['IPv6'] } }) as V1Service;
  const slice6 = (name: string, ips: string[]): V1EndpointSlice => ({ ...slice(name, ips), addressType: 'IPv6' }) as V1EndpointSlice;
  store.upsertService(ipv6(service('a', 'fd00:10:96::1')));
  store.upsertEndpointSlice(slice6('a', Array.from({ length: 12 }, (_, index) => `fd00:10:244:1::${index + 1}`)));
  const sticky = service('b', 'fd00:10:96::2', { nodePort: 30002 });
  store.upsertService(ipv6({ ...sticky, spec: { ...sticky.spec, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } } } as V1Service));
  store.upsertEndpointSlice(slice6('b', ['fd00:10:244:1::30']));
  const balanced = service('lb', 'fd00:10:96::3', { nodePort: 30003 });
  store.upsertService(ipv6({
    ...balanced,
    spec: { ...balanced.spec, type: 'LoadBalancer', loadBalancerSourceRanges: ['2001:db8:2::/48', '2001:db8:1::/48'] },
    status: { loadBalancer: { ingress: [{ ip: '2001:db8::40' }] } },
  } as V1Service));
  store.upsertEndpointSlice(slice6('lb', ['fd00:10:244:1::40']));
}

/** Every construct the renderer writes: numgen over many endpoints, affinity, NodePort, a firewall, no endpoints. */
function fill(store: ModelStore): void {
  store.upsertService(service('a', '10.96.0.1'));
  store.upsertEndpointSlice(slice('a', Array.from({ length: 20 }, (_, index) => `10.244.1.${index + 1}`)));
  const sticky = service('b', '10.96.0.2', { nodePort: 30002 });
  store.upsertService({ ...sticky, spec: { ...sticky.spec, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } } } as V1Service);
  store.upsertEndpointSlice(slice('b', ['10.244.1.30', '10.244.1.31']));
  const balanced = service('lb', '10.96.0.3', { nodePort: 30003 });
  store.upsertService({
    ...balanced,
    spec: { ...balanced.spec, type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/25', '198.51.100.0/24'], externalTrafficPolicy: 'Local' },
    status: { loadBalancer: { ingress: [{ ip: '192.0.2.40' }] } },
  } as V1Service);
  store.upsertEndpointSlice(slice('lb', ['10.244.1.40'], { node: 'node1' }));
  store.upsertService(service('empty', '10.96.0.4'));
}

describe.skipIf(skipReason !== undefined)('nftables drift check on a real kernel', () => {
  let netns: Netns;
  let fresh: Netns;
  let clock = 0;

  beforeAll(async () => {
    netns = await createNetns('nft-rule-drift');
    fresh = await createNetns('nft-rule-fresh');
  });
  afterAll(async () => {
    await netns.delete();
    await fresh.delete();
  });

  const proxierFor = (store: ModelStore, target: Netns, family: 'IPv4' | 'IPv6' = 'IPv4'): NftablesProxier =>
    new NftablesProxier({
      family, store, nft: new Nft({ prefix: target.prefix }), conntrackCleanup: undefined, context: () => nftContextFor(settings, family === 'IPv4' ? node : node6, family, { serviceCIDRs }),
      fullSyncPeriodMs: 3_600_000, chainsPerTransaction: 2000, monotonic: () => clock,
    });

  /** One syncPeriod later: a periodic sync, then the read it began finishes. */
  async function period(proxier: NftablesProxier): Promise<NftablesSyncReport> {
    clock += 60_000;
    const report = await proxier.sync('periodic');
    await proxier.driftReadSettled();
    return report;
  }

  it('finds a changed and a deleted rule within two periods and rewrites their chains; no drift in a fresh table', async () => {
    const store = new ModelStore(node);
    fill(store);
    const proxier = proxierFor(store, netns);
    expect((await proxier.sync('initial')).result).toBe('applied');
    await period(proxier);
    // The read of an untouched table: nothing differs (nft prints some rules its own way).
    const clean = await period(proxier);
    expect(clean.drift).toMatchObject({ kind: 'checked', findings: [] });

    const endpointChain = nftEndpointNames('default', 'a', 'p', 'TCP', '10.244.1.1', 8080).chain;
    const handleOf = async (chain: string, pattern: RegExp): Promise<string> => {
      const listed = (await netns.exec('nft', ['-a', 'list', 'chain', 'ip', 'kube-proxy', chain])).stdout;
      const line = listed.split('\n').find((text) => pattern.test(text));
      const handle = / # handle (\d+)/.exec(line ?? '')?.[1];
      if (handle === undefined) throw new Error(`no rule ${String(pattern)} in ${chain}:\n${listed}`);
      return handle;
    };
    const dnat = await handleOf(endpointChain, /dnat to 10\.244\.1\.1:8080/);
    expect((await netns.exec('nft', ['replace', 'rule', 'ip', 'kube-proxy', endpointChain, 'handle', dnat, 'meta', 'l4proto', 'tcp', 'dnat', 'to', '10.244.9.9:8080'])).code).toBe(0);
    const masquerade = await handleOf('masquerading', /masquerade fully-random/);
    expect((await netns.exec('nft', ['delete', 'rule', 'ip', 'kube-proxy', 'masquerading', 'handle', masquerade])).code).toBe(0);

    // This period compares the read begun before the tampering and starts one after it...
    expect((await period(proxier)).drift).toMatchObject({ kind: 'checked', findings: [] });
    // ...which the next period compares and repairs.
    const repaired = await period(proxier);
    expect(repaired.drift?.kind === 'checked' ? [...repaired.drift.findings].sort((x, y) => x.chain.localeCompare(y.chain)) : repaired.drift).toEqual([
      { table: 'kube-proxy', chain: endpointChain, kind: 'rule-changed' },
      { table: 'kube-proxy', chain: 'masquerading', kind: 'rule-missing' },
    ]);
    expect(repaired).toMatchObject({ result: 'applied', kind: 'partial' });

    const freshStore = new ModelStore(node);
    fill(freshStore);
    expect((await proxierFor(freshStore, fresh).sync('initial')).result).toBe('applied');
    expect(await normalisedNftTable(netns)).toEqual(await normalisedNftTable(fresh));
    expect((await period(proxier)).drift).toMatchObject({ kind: 'checked', findings: [] });
  });

  it('an IPv6 table fresh from a full sync shows no drift', async () => {
    const store = new ModelStore(node6, 'IPv6');
    fill6(store);
    const proxier = proxierFor(store, fresh, 'IPv6');
    const first = await proxier.sync('initial');
    expect(first.result, JSON.stringify(first)).toBe('applied');
    expect(first.result === 'applied' ? first.ruleset.servicePorts.size : 0).toBe(3);
    await period(proxier);
    expect((await period(proxier)).drift).toMatchObject({ kind: 'checked', findings: [] });
  });
});
