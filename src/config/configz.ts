// The effective configuration as kube-proxy's `/configz` shows it: `{"kubeproxy.config.k8s.io":
// {...}}` with KubeProxyConfiguration's field names, after flags, environment and file were merged
// and defaults applied. Written so that the inner object, saved as a file, loads back into the same
// configuration (`--config`). Pure.

import { formatBindAddress } from './address.js';
import { formatDuration } from './duration.js';
import type { AgentConfig, NodePortAddresses } from './types.js';

export const CONFIGZ_GROUP = 'kubeproxy.config.k8s.io';

export function kubeProxyConfiguration(config: AgentConfig): Record<string, unknown> {
  const { detectLocal } = config;
  return {
    hostnameOverride: config.nodeName,
    bindAddress: config.nodeIPs.length > 0 ? config.nodeIPs.join(',') : '0.0.0.0',
    clientConnection: { kubeconfig: config.kubeconfig ?? '' },
    clusterCIDR: config.clusterCIDRs.join(','),
    detectLocalMode: detectLocal.mode,
    detectLocal: {
      bridgeInterface: detectLocal.mode === 'BridgeInterface' ? detectLocal.bridgeInterface : '',
      interfaceNamePrefix: detectLocal.mode === 'InterfaceNamePrefix' ? detectLocal.interfaceNamePrefix : '',
    },
    mode: config.mode,
    nodePortAddresses: nodePortAddressList(config.nodePortAddresses),
    syncPeriod: formatDuration(config.syncPeriodMs),
    minSyncPeriod: formatDuration(config.minSyncPeriodMs),
    iptables: { masqueradeAll: config.masqueradeAll, masqueradeBit: config.masqueradeBit, localhostNodePorts: config.localhostNodePorts },
    metricsBindAddress: config.metricsBindAddress === undefined ? '' : formatBindAddress(config.metricsBindAddress),
    healthzBindAddress: config.healthzBindAddress === undefined ? '' : formatBindAddress(config.healthzBindAddress),
    // kube-proxy-ts's own fields (not in KubeProxyConfiguration; its config file accepts them too).
    logLevel: config.logLevel,
    iptablesBackend: config.iptablesBackend,
    livezSyncFailureTimeout: formatDuration(config.livezSyncFailureTimeoutMs),
  };
}

function nodePortAddressList(addresses: NodePortAddresses): string[] {
  switch (addresses.kind) {
    case 'all':
      return [];
    case 'primary':
      return ['primary'];
    case 'cidrs':
      return [...addresses.cidrs];
    default: {
      const unreachable: never = addresses;
      return unreachable;
    }
  }
}
