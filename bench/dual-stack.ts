// Dual-stack at scale on a real kernel: N generated Services x E endpoints made dual-stack (each
// IPv4 address gets an IPv6 twin in fd00::/8), one IptablesProxier per family as the agent runs
// them, restoring into a throwaway network namespace with iptables-nft-restore and
// ip6tables-nft-restore. Prints the first sync of each family and what one family's endpoint change
// costs (only that family syncs; the other's sync is a no-op). Root; never fails on timing.
//
//   npx tsx bench/dual-stack.ts [--services 5000] [--endpoints 10] [--changes 20]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { ModelStore } from '../src/model/store.js';
import { ExecNetfilter, ipv6Binaries, nftBinaries } from '../src/netfilter/exec.js';
import { IptablesProxier } from '../src/sync/iptables-proxier.js';
import type { IPFamily } from '../src/ip.js';
import { createNetns } from '../test/harness/netns.js';
import { localTrafficFromCIDR } from '../src/render/types.js';
import { benchContext, benchGenerator, benchNode } from './generated-cluster.js';

const { values } = parseArgs({ options: { services: { type: 'string', default: '5000' }, endpoints: { type: 'string', default: '10' }, changes: { type: 'string', default: '20' } } });
const serviceCount = Number(values.services);
const changes = Number(values.changes);

/** 10.a.b.c -> fd00:a:b::c (any IPv4 literal keeps a unique IPv6 twin). */
const six = (ip: string): string => {
  const [a, b, c, d] = ip.split('.').map(Number);
  return `fd00:${(a ?? 0).toString(16)}:${(b ?? 0).toString(16)}::${(((c ?? 0) << 8) | (d ?? 0)).toString(16)}`;
};
function dualService(service: V1Service): V1Service {
  const spec = service.spec ?? {};
  const v4 = spec.clusterIP ?? '';
  return {
    ...service,
    spec: {
      ...spec,
      ipFamilyPolicy: 'RequireDualStack',
      ipFamilies: ['IPv4', 'IPv6'],
      clusterIPs: [v4, six(v4)],
      ...(spec.externalIPs !== undefined ? { externalIPs: [...spec.externalIPs, ...spec.externalIPs.map(six)] } : {}),
      ...(spec.loadBalancerSourceRanges !== undefined ? { loadBalancerSourceRanges: [...spec.loadBalancerSourceRanges, 'fd00:50::/64'] } : {}),
    },
    ...(service.status?.loadBalancer?.ingress !== undefined
      ? { status: { loadBalancer: { ingress: service.status.loadBalancer.ingress.flatMap((entry) => (entry.ip === undefined ? [entry] : [entry, { ...entry, ip: six(entry.ip) }])) } } }
      : {}),
  };
}
function sixSlice(slice: V1EndpointSlice): V1EndpointSlice {
  return {
    ...slice,
    metadata: { ...slice.metadata, name: `${slice.metadata?.name ?? ''}-v6` },
    addressType: 'IPv6',
    endpoints: slice.endpoints.map((endpoint) => ({ ...endpoint, addresses: endpoint.addresses.map(six) })),
  };
}

const netns = await createNetns('bench-dual');
try {
  const generator = benchGenerator({ seed: 1, endpoints: Number(values.endpoints), unreadyRate: 0.1 });
  generator.populate(serviceCount);
  const { services, endpointSlices } = generator.objects();
  const lanes = (['IPv4', 'IPv6'] as const).map((family: IPFamily) => {
    const node = family === 'IPv4' ? benchNode : { ...benchNode, ips: ['fd00:30::10'] };
    const store = new ModelStore(node, family);
    for (const service of services) store.upsertService(dualService(service));
    for (const slice of endpointSlices) store.upsertEndpointSlice(slice);
    for (const slice of endpointSlices) store.upsertEndpointSlice(sixSlice(slice));
    const netfilter = new ExecNetfilter({ binaries: family === 'IPv4' ? nftBinaries : ipv6Binaries(nftBinaries), prefix: netns.prefix });
    const proxier = new IptablesProxier({
      family, store, netfilter, conntrackCleanup: undefined, fullSyncPeriodMs: 3_600_000, fullSyncChainsPerPart: 2000,
      renderContext: () => ({ ...benchContext, nodeIPs: node.ips, localTraffic: family === 'IPv4' ? benchContext.localTraffic : localTrafficFromCIDR('fd00:a::/32') }),
    });
    return { family, store, proxier };
  });
  console.log(`${serviceCount} dual-stack Services x ${values.endpoints} endpoints per family, iptables-nft / ip6tables-nft in a network namespace`);
  for (const lane of lanes) {
    const started = performance.now();
    const report = await lane.proxier.sync('initial');
    console.log(`first sync ${lane.family}: ${report.result}, ${((performance.now() - started) / 1000).toFixed(2)} s, ${((report.writes?.bytes ?? 0) / 1e6).toFixed(1)} MB, ${report.writes?.lines ?? 0} lines`);
  }
  const times: number[] = [];
  const bytes: number[] = [];
  let otherWrote = 0;
  for (let index = 0; index < changes; index++) {
    const mutation = generator.mutation('flipReady');
    if (mutation === undefined) continue;
    // The IPv6 twin of an IPv4 endpoint change: only the IPv6 model sees a difference.
    for (const change of mutation.changes) {
      if (change.kind === 'upsertEndpointSlice') for (const lane of lanes) lane.store.upsertEndpointSlice(sixSlice(change.endpointSlice));
    }
    const started = performance.now();
    const [v4, v6] = await Promise.all(lanes.map((lane) => lane.proxier.sync('change')));
    times.push(performance.now() - started);
    bytes.push(v6?.writes?.bytes ?? 0);
    if (v4?.result === 'applied') otherWrote += 1;
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)] ?? 0;
  const p99 = times[Math.min(times.length - 1, Math.floor(times.length * 0.99))] ?? 0;
  const medianBytes = [...bytes].sort((a, b) => a - b)[Math.floor(bytes.length / 2)] ?? 0;
  console.log(`one IPv6 endpoint change (${times.length} trials): median ${median.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, median payload ${medianBytes} bytes; IPv4 syncs that wrote anything: ${otherWrote}`);
} finally {
  await netns.delete();
}
