// Extra first-sync samples: the proxy started on a fresh node namespace and stopped once its first
// full sync is in the kernel, nothing else. One sample per proxy is at the mercy of whatever else
// the machine does for those seconds (iptables-legacy-restore of 38 MB took 10 to 15 s on this
// 2-core machine from one run to the next), so the comparison uses the median of several starts,
// taken alternately for the two proxies.

import { join } from 'node:path';
import { createBenchNode, type Backend, type ProxyMode } from './node-netns.js';
import { sampleProcess, startProxy, type ProxyId, type ProxyOptions } from './proxies.js';
import { RestoreLog } from './restore-log.js';
import { awaitFirstSync } from './run-proxy.js';
import { fullSyncMarker } from './workload.js';

export interface ColdStartSettings {
  readonly id: ProxyId;
  readonly services: number;
  readonly endpointsPerService: number;
  readonly proxy: ProxyOptions;
  readonly backend: Backend;
  readonly mode: ProxyMode;
  readonly workDir: string;
  readonly timeoutMs: number;
  readonly sample: number;
}

export interface ColdStart {
  /** Process start -> exit of the restore that programs the last Service; undefined on timeout. */
  readonly seconds: number | undefined;
  readonly restoreSeconds: number | undefined;
  readonly peakRssBytes: number | undefined;
}

export async function coldStart(settings: ColdStartSettings): Promise<ColdStart> {
  const node = await createBenchNode(settings.id === 'kube-proxy' ? 'kp' : 'kpts', settings.backend, settings.workDir);
  const logPath = join(settings.workDir, `${settings.id}-${settings.services}-cold-${settings.sample}.log`);
  const proxy = startProxy(settings.id, node, settings.proxy, logPath);
  try {
    const marker = fullSyncMarker(settings.services, settings.endpointsPerService, settings.mode);
    const first = await awaitFirstSync(proxy, new RestoreLog(node.captureDir), marker.payloadText, settings.timeoutMs);
    if (typeof first === 'string') return { seconds: undefined, restoreSeconds: undefined, peakRssBytes: undefined };
    return {
      seconds: (first.last.endMs - proxy.startedAtMs) / 1000,
      restoreSeconds: first.calls.reduce((sum, call) => sum + call.endMs - call.startMs, 0) / 1000,
      peakRssBytes: sampleProcess(proxy.pid)?.peakRssBytes,
    };
  } finally {
    await proxy.stop();
    await node.delete();
  }
}
