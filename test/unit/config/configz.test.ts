// /configz shows the effective configuration in KubeProxyConfiguration's terms, and what it shows
// loads back, as a config file, into the very same configuration.

import { describe, expect, it } from 'vitest';
import { kubeProxyConfiguration } from '../../../src/config/configz.js';
import { parseRunArgs } from '../../../src/config/load.js';
import type { AgentConfig } from '../../../src/config/types.js';

function config(argv: readonly string[]): AgentConfig {
  const result = parseRunArgs(['--hostname-override', 'node-1', ...argv], {}, () => '', 'host');
  if (result.kind !== 'ok') throw new Error(JSON.stringify(result));
  return result.config;
}

describe('kubeProxyConfiguration (/configz)', () => {
  it("names kube-proxy's fields with the merged values", () => {
    const shown = kubeProxyConfiguration(
      config(['--cluster-cidr', '10.244.0.0/16', '--masquerade-all', '--sync-period', '1m30s', '--min-sync-period', '250ms', '--metrics-bind-address', '']),
    );
    expect(shown).toMatchObject({
      hostnameOverride: 'node-1',
      bindAddress: '0.0.0.0',
      clusterCIDR: '10.244.0.0/16',
      detectLocalMode: 'ClusterCIDR',
      mode: 'iptables',
      nodePortAddresses: [],
      syncPeriod: '1m30s',
      minSyncPeriod: '250ms',
      iptables: { masqueradeAll: true, masqueradeBit: 14, localhostNodePorts: true },
      metricsBindAddress: '',
      healthzBindAddress: '0.0.0.0:10256',
    });
  });

  it.each([
    ['defaults', []],
    ['NodeCIDR, a node IP, primary NodePorts', ['--detect-local-mode', 'NodeCIDR', '--node-ip', '192.0.2.4', '--nodeport-addresses', 'primary']],
    ['BridgeInterface, masqueradeAll, no localhost NodePorts', [
      '--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0', '--masquerade-all', '--iptables-localhost-nodeports=false',
    ]],
    ['InterfaceNamePrefix, NodePort CIDRs, IPv6 metrics address', [
      '--detect-local-mode', 'InterfaceNamePrefix', '--pod-interface-name-prefix', 'cali', '--nodeport-addresses', '10.0.0.0/8,192.168.0.0/16',
      '--metrics-bind-address', '[::1]:9100', '--iptables-backend', 'legacy', '--log-level', 'debug', '--kubeconfig', '/etc/kp/kubeconfig',
    ]],
  ] as const)('loads back into the same configuration: %s', (_case, argv) => {
    const original = config(argv);
    const file = JSON.stringify(kubeProxyConfiguration(original));
    const loaded = parseRunArgs(['--config', '/configz.json'], {}, (path) => (path === '/configz.json' ? file : ''), 'other-host');
    if (loaded.kind !== 'ok') throw new Error(JSON.stringify(loaded));
    expect(loaded.config).toEqual(original);
    expect(loaded.warnings).toEqual([]);
  });
});
