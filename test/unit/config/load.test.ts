import { describe, expect, it } from 'vitest';
import { parseRunArgs, runUsage } from '../../../src/config/load.js';
import { kubeProxyConfiguration } from '../../../src/config/configz.js';
import type { AgentConfig, ConfigError, ConfigResult } from '../../../src/config/types.js';

/** A fake file system holding one config file at /etc/kp.yaml. */
function files(content: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = content[path];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
    return text;
  };
}
const noFiles = files({});

function expectConfig(result: ConfigResult): AgentConfig {
  if (result.kind !== 'ok') throw new Error(`expected a config, got ${JSON.stringify(result)}`);
  return result.config;
}

function expectErrors(result: ConfigResult): readonly ConfigError[] {
  if (result.kind !== 'invalid') throw new Error(`expected errors, got ${JSON.stringify(result)}`);
  return result.errors;
}

describe('parseRunArgs defaults', () => {
  it('uses kube-proxy defaults and the hostname as node name', () => {
    const config = expectConfig(parseRunArgs([], {}, noFiles, 'Worker-1'));
    expect(config).toEqual({
      nodeName: 'worker-1',
      kubeconfig: undefined,
      clusterCIDRs: [],
      detectLocal: { mode: 'ClusterCIDR' },
      masqueradeAll: false,
      localhostNodePorts: true,
      nodePortAddresses: { kind: 'all' },
      syncPeriodMs: 30_000,
      minSyncPeriodMs: 1_000,
      metricsBindAddress: { host: '127.0.0.1', port: 10249 },
      healthzBindAddress: { host: '0.0.0.0', port: 10256 },
      mode: 'iptables',
      masqueradeBit: 14,
      logLevel: 'info',
      nodeIPs: [],
      iptablesBackend: 'auto',
      livezSyncFailureTimeoutMs: 300_000,
    } satisfies AgentConfig);
  });

  it('fails naming hostnameOverride when no node name can be found', () => {
    const [error] = expectErrors(parseRunArgs([], {}, noFiles));
    expect(error?.field).toBe('hostnameOverride');
    expect(error?.message).toContain('--hostname-override');
  });

  it('fails when the hostname is not a valid node name', () => {
    const [error] = expectErrors(parseRunArgs([], {}, noFiles, 'bad_host!'));
    expect(error?.field).toBe('hostnameOverride');
    expect(error?.message).toContain('"bad_host!"');
  });

  it('prints help for --help, listing every flag with its env variable', () => {
    const result = parseRunArgs(['--help'], {}, noFiles, 'node');
    expect(result.kind).toBe('help');
    const text = result.kind === 'help' ? result.text : '';
    expect(text).toBe(runUsage());
    for (const flag of ['--config', '--sync-period', '--nodeport-addresses', '--iptables-backend', '--node-ip', '--log-level']) {
      expect(text).toContain(flag);
    }
    expect(text).toContain('$KUBE_PROXY_TS_SYNC_PERIOD');
  });
});

describe('parseRunArgs precedence: file < env < flags', () => {
  const file = files({
    '/etc/kp.yaml': [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      'hostnameOverride: from-file',
      'clusterCIDR: 10.1.0.0/16',
      'syncPeriod: 10s',
      'minSyncPeriod: 2s',
      'logLevel: debug',
      'iptables:',
      '  masqueradeBit: 10',
      'metricsBindAddress: 127.0.0.1:9000',
      '',
    ].join('\n'),
  });

  it('takes every field from the file when nothing overrides it', () => {
    const config = expectConfig(parseRunArgs(['--config', '/etc/kp.yaml'], {}, file, 'host'));
    expect(config).toMatchObject({
      nodeName: 'from-file',
      clusterCIDRs: ['10.1.0.0/16'],
      syncPeriodMs: 10_000,
      minSyncPeriodMs: 2_000,
      logLevel: 'debug',
      masqueradeBit: 10,
      metricsBindAddress: { host: '127.0.0.1', port: 9000 },
    });
  });

  it('lets the environment override the file', () => {
    const env = { KUBE_PROXY_TS_CLUSTER_CIDR: '10.2.0.0/16', KUBE_PROXY_TS_SYNC_PERIOD: '20s', NODE_NAME: 'from-env' };
    const config = expectConfig(parseRunArgs(['--config', '/etc/kp.yaml'], env, file, 'host'));
    expect(config).toMatchObject({ nodeName: 'from-env', clusterCIDRs: ['10.2.0.0/16'], syncPeriodMs: 20_000, logLevel: 'debug' });
  });

  it('lets flags override the environment and the file', () => {
    const env = { KUBE_PROXY_TS_CLUSTER_CIDR: '10.2.0.0/16', NODE_NAME: 'from-env', KUBE_PROXY_TS_LOG_LEVEL: 'warn' };
    const argv = ['--config=/etc/kp.yaml', '--cluster-cidr', '10.3.0.0/16', '--hostname-override=from-flag', '--iptables-masquerade-bit', '5'];
    const config = expectConfig(parseRunArgs(argv, env, file, 'host'));
    expect(config).toMatchObject({ nodeName: 'from-flag', clusterCIDRs: ['10.3.0.0/16'], masqueradeBit: 5, logLevel: 'warn', syncPeriodMs: 10_000 });
  });

  it('reads the config path from KUBE_PROXY_TS_CONFIG, and --config wins over it', () => {
    const other = files({ '/etc/kp.yaml': 'clusterCIDR: 10.1.0.0/16\n', '/etc/other.yaml': 'clusterCIDR: 10.9.0.0/16\n' });
    expect(expectConfig(parseRunArgs([], { KUBE_PROXY_TS_CONFIG: '/etc/kp.yaml' }, other, 'h')).clusterCIDRs).toEqual(['10.1.0.0/16']);
    expect(expectConfig(parseRunArgs(['--config', '/etc/other.yaml'], { KUBE_PROXY_TS_CONFIG: '/etc/kp.yaml' }, other, 'h')).clusterCIDRs).toEqual(
      ['10.9.0.0/16'],
    );
  });

  it('prefers KUBE_PROXY_TS_HOSTNAME_OVERRIDE over NODE_NAME, and NODE_NAME over the hostname', () => {
    expect(expectConfig(parseRunArgs([], { NODE_NAME: 'n1', KUBE_PROXY_TS_HOSTNAME_OVERRIDE: 'n2' }, noFiles, 'h')).nodeName).toBe('n2');
    expect(expectConfig(parseRunArgs([], { NODE_NAME: 'N1' }, noFiles, 'h')).nodeName).toBe('n1');
  });

  it('treats empty environment variables as unset', () => {
    const config = expectConfig(parseRunArgs([], { NODE_NAME: '', KUBE_PROXY_TS_SYNC_PERIOD: ' ' }, noFiles, 'host'));
    expect(config.nodeName).toBe('host');
    expect(config.syncPeriodMs).toBe(30_000);
  });

  it('keeps the last value of a repeated flag', () => {
    expect(expectConfig(parseRunArgs(['--log-level', 'warn', '--log-level=error'], {}, noFiles, 'h')).logLevel).toBe('error');
  });

  it('accepts kube-proxy flag aliases', () => {
    const argv = ['--iptables-sync-period', '45s', '--iptables-min-sync-period', '0s', '--bind-address', '192.168.1.10'];
    expect(expectConfig(parseRunArgs(argv, {}, noFiles, 'h'))).toMatchObject({ syncPeriodMs: 45_000, minSyncPeriodMs: 0, nodeIPs: ['192.168.1.10'] });
  });

  it('disables a server with an empty bind address', () => {
    const config = expectConfig(parseRunArgs(['--healthz-bind-address=', '--metrics-bind-address', ''], {}, noFiles, 'h'));
    expect(config.healthzBindAddress).toBeUndefined();
    expect(config.metricsBindAddress).toBeUndefined();
  });
});

describe('parseRunArgs dual-stack settings', () => {
  it('takes a node IP and a clusterCIDR of each family, in either order, and IPv6 alone', () => {
    const pair = expectConfig(parseRunArgs(['--node-ip', 'fd00::5,10.0.0.5', '--cluster-cidr', 'fd00:10:244::/56,10.244.0.0/16'], {}, noFiles, 'h'));
    expect(pair).toMatchObject({ nodeIPs: ['fd00::5', '10.0.0.5'], clusterCIDRs: ['fd00:10:244::/56', '10.244.0.0/16'] });
    const six = expectConfig(parseRunArgs(['--node-ip', 'fd00::5', '--cluster-cidr', 'fd00:10:244::1/56'], {}, noFiles, 'h'));
    expect(six).toMatchObject({ nodeIPs: ['fd00::5'], clusterCIDRs: ['fd00:10:244::/56'] });
  });

  it('keeps nodePortAddresses of both families (each proxier takes its own)', () => {
    const config = expectConfig(parseRunArgs(['--nodeport-addresses', '10.0.0.0/8,fd00::/64'], {}, noFiles, 'h'));
    expect(config.nodePortAddresses).toEqual({ kind: 'cidrs', cidrs: ['10.0.0.0/8', 'fd00::/64'] });
    expect(expectConfig(parseRunArgs(['--nodeport-addresses', 'fd00::/64'], {}, noFiles, 'h')).nodePortAddresses).toEqual({ kind: 'cidrs', cidrs: ['fd00::/64'] });
  });

  it('shows both in /configz, which loads back into the same configuration', () => {
    const config = expectConfig(parseRunArgs(['--node-ip', '10.0.0.5,fd00::5', '--cluster-cidr', '10.244.0.0/16,fd00:10:244::/56'], {}, noFiles, 'h'));
    const shown = kubeProxyConfiguration(config);
    expect(shown).toMatchObject({ bindAddress: '10.0.0.5,fd00::5', clusterCIDR: '10.244.0.0/16,fd00:10:244::/56' });
    const reloaded = expectConfig(parseRunArgs(['--config', '/c.json'], {}, files({ '/c.json': JSON.stringify(shown) }), 'h'));
    expect(reloaded).toEqual(config);
  });
});

describe('parseRunArgs config file forms', () => {
  it('accepts a bare mapping without apiVersion and kind', () => {
    const file = files({ '/c.yaml': 'nodePortAddresses: [10.0.0.0/8, 192.168.0.0/16]\nnodeIP: 10.0.0.5\niptablesBackend: nft\n' });
    const config = expectConfig(parseRunArgs(['--config', '/c.yaml'], {}, file, 'h'));
    expect(config).toMatchObject({
      nodePortAddresses: { kind: 'cidrs', cidrs: ['10.0.0.0/8', '192.168.0.0/16'] },
      nodeIPs: ['10.0.0.5'],
      iptablesBackend: 'nft',
    });
  });

  it('loads a full kubeadm-style document, ignoring the fields we do not use', () => {
    const text = [
      'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
      'kind: KubeProxyConfiguration',
      'bindAddress: 0.0.0.0',
      'clientConnection:',
      '  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf',
      '  qps: 5',
      'clusterCIDR: 10.244.0.0/16,fd00:10:244::/56',
      'configSyncPeriod: 15m0s',
      'conntrack:',
      '  maxPerCore: 32768',
      'healthzBindAddress: 0.0.0.0:10256',
      'hostnameOverride: ""',
      'iptables:',
      '  masqueradeAll: false',
      '  masqueradeBit: 14',
      '  minSyncPeriod: 1s',
      '  syncPeriod: 30s',
      'ipvs:',
      '  scheduler: ""',
      'metricsBindAddress: 127.0.0.1:10249',
      'mode: ""',
      'nodePortAddresses: null',
      'oomScoreAdj: -999',
      'portRange: ""',
      '',
    ].join('\n');
    const result = parseRunArgs(['--config', '/kp.yaml'], {}, files({ '/kp.yaml': text }), 'node-a');
    expect(result.kind === 'ok' ? result.warnings : result).toEqual([]);
    expect(expectConfig(result)).toMatchObject({
      nodeName: 'node-a',
      kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf',
      clusterCIDRs: ['10.244.0.0/16', 'fd00:10:244::/56'],
      nodePortAddresses: { kind: 'all' },
      syncPeriodMs: 30_000,
      minSyncPeriodMs: 1_000,
      metricsBindAddress: { host: '127.0.0.1', port: 10249 },
      mode: 'iptables',
      nodeIPs: [],
    });
  });

  it('prefers top-level syncPeriod over iptables.syncPeriod', () => {
    const file = files({ '/c.yaml': 'syncPeriod: 40s\niptables:\n  syncPeriod: 50s\n' });
    expect(expectConfig(parseRunArgs(['--config', '/c.yaml'], {}, file, 'h')).syncPeriodMs).toBe(40_000);
  });

  it("accepts nodePortAddresses 'primary' from the file and from a flag", () => {
    const file = files({ '/c.yaml': 'nodePortAddresses: [primary]\n' });
    expect(expectConfig(parseRunArgs(['--config', '/c.yaml'], {}, file, 'h')).nodePortAddresses).toEqual({ kind: 'primary' });
    expect(expectConfig(parseRunArgs(['--nodeport-addresses', 'primary'], {}, noFiles, 'h')).nodePortAddresses).toEqual({ kind: 'primary' });
  });

  it('keeps nodePortAddresses of both families, normalised and deduplicated', () => {
    const config = expectConfig(parseRunArgs(['--nodeport-addresses', '10.0.0.7/8, fd00::1/64,10.1.2.3/8'], {}, noFiles, 'h'));
    expect(config.nodePortAddresses).toEqual({ kind: 'cidrs', cidrs: ['10.0.0.0/8', 'fd00::/64'] });
  });

  it('warns about kube-proxy settings it does not implement', () => {
    const file = files({ '/c.yaml': 'featureGates:\n  SomeGate: true\niptables:\n  masqueradeAll: true\n  localhostNodePorts: false\n' });
    const result = parseRunArgs(['--config', '/c.yaml'], {}, file, 'h');
    expect(result.kind).toBe('ok');
    const warnings = result.kind === 'ok' ? result.warnings.join('\n') : '';
    expect(warnings).toContain('featureGates');
    expect(warnings).not.toContain('masqueradeAll');
    expect(warnings).not.toContain('localhostNodePorts');
  });

  it('reads iptables.localhostNodePorts (default true, as kube-proxy) from the file, the environment and the flag', () => {
    expect(expectConfig(parseRunArgs([], {}, noFiles, 'h')).localhostNodePorts).toBe(true);
    const off = files({ '/c.yaml': 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  localhostNodePorts: false\n' });
    expect(expectConfig(parseRunArgs(['--config', '/c.yaml'], {}, off, 'h')).localhostNodePorts).toBe(false);
    // Flags and the environment win over the file; a bare flag means true, as kube-proxy's bool flag.
    expect(expectConfig(parseRunArgs(['--config', '/c.yaml', '--iptables-localhost-nodeports'], {}, off, 'h')).localhostNodePorts).toBe(true);
    expect(expectConfig(parseRunArgs(['--config', '/c.yaml'], { KUBE_PROXY_TS_LOCALHOST_NODEPORTS: 'true' }, off, 'h')).localhostNodePorts).toBe(true);
    expect(expectConfig(parseRunArgs(['--iptables-localhost-nodeports=false'], {}, noFiles, 'h')).localhostNodePorts).toBe(false);
    expect(expectConfig(parseRunArgs([], { KUBE_PROXY_TS_LOCALHOST_NODEPORTS: 'FALSE' }, noFiles, 'h')).localhostNodePorts).toBe(false);
    const [error] = expectErrors(parseRunArgs(['--iptables-localhost-nodeports=maybe'], {}, noFiles, 'h'));
    expect(error?.message).toBe('iptables.localhostNodePorts "maybe" (from --iptables-localhost-nodeports) must be true or false');
    const wrongType = files({ '/c.yaml': 'iptables:\n  localhostNodePorts: 1\n' });
    expect(expectErrors(parseRunArgs(['--config', '/c.yaml'], {}, wrongType, 'h'))[0]?.field).toBe('iptables.localhostNodePorts');
  });

  it('--init-only (kube-proxy\'s flag) is a switch of the command, not a setting', () => {
    const plain = parseRunArgs([], {}, noFiles, 'h');
    expect(plain.kind === 'ok' && plain.initOnly).toBe(false);
    for (const argv of [['--init-only'], ['--init-only=true'], ['--init-only=false', '--init-only']]) {
      const result = parseRunArgs(argv, {}, noFiles, 'h');
      expect(result.kind === 'ok' && result.initOnly, argv.join(' ')).toBe(true);
    }
    const off = parseRunArgs(['--init-only=false'], {}, noFiles, 'h');
    expect(off.kind === 'ok' && off.initOnly).toBe(false);
    expect(expectErrors(parseRunArgs(['--init-only=yes'], {}, noFiles, 'h'))[0]?.message).toContain('--init-only');
    expect(runUsage()).toContain('--init-only');
  });

  it('reads detectLocalMode with its interface, and masqueradeAll, from a KubeProxyConfiguration', () => {
    const file = files({
      '/bridge.yaml': 'detectLocalMode: BridgeInterface\ndetectLocal:\n  bridgeInterface: cni0\niptables:\n  masqueradeAll: true\n',
      '/prefix.yaml': 'detectLocalMode: InterfaceNamePrefix\ndetectLocal:\n  interfaceNamePrefix: cali\n',
      '/node.yaml': 'detectLocalMode: NodeCIDR\n',
    });
    const bridge = expectConfig(parseRunArgs(['--config', '/bridge.yaml'], {}, file, 'h'));
    expect(bridge.detectLocal).toEqual({ mode: 'BridgeInterface', bridgeInterface: 'cni0' });
    expect(bridge.masqueradeAll).toBe(true);
    expect(expectConfig(parseRunArgs(['--config', '/prefix.yaml'], {}, file, 'h')).detectLocal).toEqual({ mode: 'InterfaceNamePrefix', interfaceNamePrefix: 'cali' });
    expect(expectConfig(parseRunArgs(['--config', '/node.yaml'], {}, file, 'h')).detectLocal).toEqual({ mode: 'NodeCIDR' });
  });

  it('takes --masquerade-all as a switch, and --masquerade-all=false, as kube-proxy does', () => {
    expect(expectConfig(parseRunArgs(['--masquerade-all', '--sync-period', '10s'], {}, noFiles, 'h'))).toMatchObject({ masqueradeAll: true, syncPeriodMs: 10_000 });
    expect(expectConfig(parseRunArgs(['--masquerade-all=false'], {}, noFiles, 'h')).masqueradeAll).toBe(false);
    expect(expectConfig(parseRunArgs([], { KUBE_PROXY_TS_MASQUERADE_ALL: 'true' }, noFiles, 'h')).masqueradeAll).toBe(true);
    expect(expectConfig(parseRunArgs(['--detect-local-mode', 'InterfaceNamePrefix', '--pod-interface-name-prefix', 'veth'], {}, noFiles, 'h')).detectLocal).toEqual({
      mode: 'InterfaceNamePrefix',
      interfaceNamePrefix: 'veth',
    });
  });

  it('refuses an interface-based detectLocalMode without its interface, naming the field and the flag', () => {
    const [error] = expectErrors(parseRunArgs(['--detect-local-mode', 'BridgeInterface'], {}, noFiles, 'h'));
    expect(error?.field).toBe('detectLocal.bridgeInterface');
    expect(error?.message).toContain('--pod-bridge-interface');
    const [prefix] = expectErrors(parseRunArgs([], { KUBE_PROXY_TS_DETECT_LOCAL_MODE: 'InterfaceNamePrefix' }, noFiles, 'h'));
    expect(prefix?.field).toBe('detectLocal.interfaceNamePrefix');
    expect(prefix?.source).toBe('KUBE_PROXY_TS_DETECT_LOCAL_MODE');
  });

  it('treats an empty file as no settings', () => {
    expect(expectConfig(parseRunArgs(['--config', '/c.yaml'], {}, files({ '/c.yaml': '' }), 'h')).syncPeriodMs).toBe(30_000);
  });
});

describe('parseRunArgs invalid input names the field, the value and the source', () => {
  const cases: readonly { readonly name: string; readonly argv: readonly string[]; readonly env?: Record<string, string>; readonly field: string; readonly value: string; readonly source: string }[] = [
    { name: 'syncPeriod', argv: ['--sync-period', 'soon'], field: 'syncPeriod', value: 'soon', source: '--sync-period' },
    { name: 'detectLocalMode', argv: ['--detect-local-mode', 'PodCIDR'], field: 'detectLocalMode', value: 'PodCIDR', source: '--detect-local-mode' },
    { name: 'detectLocal.interfaceNamePrefix', argv: ['--pod-interface-name-prefix', 'has space'], field: 'detectLocal.interfaceNamePrefix', value: 'has space', source: '--pod-interface-name-prefix' },
    { name: 'masqueradeAll', argv: ['--masquerade-all=yes'], field: 'iptables.masqueradeAll', value: 'yes', source: '--masquerade-all' },
    { name: 'syncPeriod zero', argv: ['--sync-period', '0s'], field: 'syncPeriod', value: '0s', source: '--sync-period' },
    { name: 'minSyncPeriod', argv: ['--min-sync-period', '-1s'], field: 'minSyncPeriod', value: '-1s', source: '--min-sync-period' },
    { name: 'clusterCIDR', argv: [], env: { KUBE_PROXY_TS_CLUSTER_CIDR: '10.0.0.0/40' }, field: 'clusterCIDR', value: '10.0.0.0/40', source: 'KUBE_PROXY_TS_CLUSTER_CIDR' },
    { name: 'clusterCIDR two of one family', argv: ['--cluster-cidr', '10.0.0.0/8,10.1.0.0/16'], field: 'clusterCIDR', value: '10.0.0.0/8,10.1.0.0/16', source: '--cluster-cidr' },
    { name: 'nodePortAddresses', argv: ['--nodeport-addresses', '10.0.0.0/8,bogus'], field: 'nodePortAddresses', value: '10.0.0.0/8,bogus', source: '--nodeport-addresses' },
    { name: 'nodePortAddresses primary mixed', argv: ['--nodeport-addresses', 'primary,10.0.0.0/8'], field: 'nodePortAddresses', value: 'primary,10.0.0.0/8', source: '--nodeport-addresses' },
    { name: 'hostnameOverride', argv: ['--hostname-override', 'Not_Valid'], field: 'hostnameOverride', value: 'Not_Valid', source: '--hostname-override' },
    { name: 'metricsBindAddress', argv: ['--metrics-bind-address', '10249'], field: 'metricsBindAddress', value: '10249', source: '--metrics-bind-address' },
    { name: 'healthzBindAddress', argv: ['--healthz-bind-address', 'node:10256'], field: 'healthzBindAddress', value: 'node:10256', source: '--healthz-bind-address' },
    { name: 'mode ipvs', argv: [], env: { KUBE_PROXY_TS_MODE: 'ipvs' }, field: 'mode', value: 'ipvs', source: 'KUBE_PROXY_TS_MODE' },
    { name: 'mode unknown', argv: ['--proxy-mode', 'userspace'], field: 'mode', value: 'userspace', source: '--proxy-mode' },
    { name: 'masqueradeBit range', argv: ['--iptables-masquerade-bit', '32'], field: 'iptables.masqueradeBit', value: '32', source: '--iptables-masquerade-bit' },
    { name: 'masqueradeBit text', argv: ['--iptables-masquerade-bit', 'x'], field: 'iptables.masqueradeBit', value: 'x', source: '--iptables-masquerade-bit' },
    { name: 'logLevel', argv: ['--log-level', 'verbose'], field: 'logLevel', value: 'verbose', source: '--log-level' },
    { name: 'nodeIP', argv: ['--node-ip', '10.0.0.300'], field: 'nodeIP', value: '10.0.0.300', source: '--node-ip' },
    { name: 'nodeIP two of one family', argv: ['--node-ip', 'fd00::1,fd00::2'], field: 'nodeIP', value: 'fd00::1,fd00::2', source: '--node-ip' },
    { name: 'nodeIP three', argv: ['--node-ip', '10.0.0.1,fd00::1,10.0.0.2'], field: 'nodeIP', value: '10.0.0.1,fd00::1,10.0.0.2', source: '--node-ip' },
    { name: 'iptablesBackend', argv: ['--iptables-backend', 'xtables'], field: 'iptablesBackend', value: 'xtables', source: '--iptables-backend' },
  ];

  it.each(cases)('$name', ({ argv, env, field, value, source }) => {
    const errors = expectErrors(parseRunArgs(argv, env ?? {}, noFiles, 'host'));
    expect(errors).toHaveLength(1);
    const [error] = errors;
    expect(error).toMatchObject({ field, value });
    expect(error?.source).toContain(source);
    expect(error?.message.startsWith(`${field} `)).toBe(true);
    expect(error?.message).toContain(JSON.stringify(value));
    expect(error?.message).toContain(source);
  });

  it('takes nftables as upstream spells it (flag and config file) and says ipvs is unsupported rather than merely invalid', () => {
    expect(expectConfig(parseRunArgs(['--proxy-mode', 'nftables'], {}, noFiles, 'h')).mode).toBe('nftables');
    expect(expectConfig(parseRunArgs(['--config', '/m.yaml'], {}, files({ '/m.yaml': 'mode: nftables\n' }), 'h')).mode).toBe('nftables');
    const [error] = expectErrors(parseRunArgs(['--proxy-mode', 'ipvs'], {}, noFiles, 'h'));
    expect(error?.message).toContain('not supported');
  });

  it('names file fields by their path and rejects values of the wrong YAML type', () => {
    const file = files({ '/c.yaml': 'kubeconfig: 42\niptables:\n  masqueradeBit: 40\nnodePortAddresses: 7\nsyncPeriod: 30\n' });
    const errors = expectErrors(parseRunArgs(['--config', '/c.yaml'], {}, file, 'h'));
    expect(errors.map((error) => error.field).sort()).toEqual(['iptables.masqueradeBit', 'kubeconfig', 'nodePortAddresses', 'syncPeriod']);
    const bit = errors.find((error) => error.field === 'iptables.masqueradeBit');
    expect(bit?.message).toBe('iptables.masqueradeBit 40 (from config file /c.yaml field iptables.masqueradeBit) must be an integer within the range [0, 31]');
  });

  it('reports every invalid field at once', () => {
    const errors = expectErrors(parseRunArgs(['--sync-period', 'x', '--log-level', 'y', '--node-ip', 'z'], {}, noFiles, 'h'));
    expect(errors.map((error) => error.field)).toEqual(['syncPeriod', 'logLevel', 'nodeIP']);
  });

  it('rejects minSyncPeriod above syncPeriod, naming syncPeriod', () => {
    const [error] = expectErrors(parseRunArgs(['--sync-period', '5s', '--min-sync-period', '10s'], {}, noFiles, 'h'));
    expect(error?.field).toBe('syncPeriod');
    expect(error?.message).toContain('"5s"');
    expect(error?.message).toContain('minSyncPeriod (10s)');
  });

  it('rejects an unknown flag, a flag without value and a stray argument', () => {
    expect(expectErrors(parseRunArgs(['--sync-perod', '1s'], {}, noFiles, 'h'))[0]?.message).toContain('unknown flag --sync-perod');
    expect(expectErrors(parseRunArgs(['--sync-period'], {}, noFiles, 'h'))[0]?.message).toContain('--sync-period needs a value');
    expect(expectErrors(parseRunArgs(['extra'], {}, noFiles, 'h'))[0]?.message).toContain('"extra"');
  });

  it('rejects unknown config file fields, top-level and nested', () => {
    const file = files({ '/c.yaml': 'syncPeriode: 1s\niptables:\n  masqueradeBits: 3\n' });
    const errors = expectErrors(parseRunArgs(['--config', '/c.yaml'], {}, file, 'h'));
    expect(errors.map((error) => error.field)).toEqual(['syncPeriode', 'iptables.masqueradeBits']);
  });

  it('rejects another apiVersion or kind', () => {
    const file = files({ '/c.yaml': 'apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeletConfiguration\n' });
    const errors = expectErrors(parseRunArgs(['--config', '/c.yaml'], {}, file, 'h'));
    expect(errors.map((error) => [error.field, error.value])).toEqual([
      ['apiVersion', 'kubeproxy.config.k8s.io/v1alpha2'],
      ['kind', 'KubeletConfiguration'],
    ]);
  });

  it('names the config file when it is missing, not YAML, or not a mapping', () => {
    const missing = expectErrors(parseRunArgs(['--config', '/nope.yaml'], {}, noFiles, 'h'));
    expect(missing[0]).toMatchObject({ field: 'config', value: '/nope.yaml', source: '--config' });
    expect(missing[0]?.message).toContain('ENOENT');
    const broken = expectErrors(parseRunArgs([], { KUBE_PROXY_TS_CONFIG: '/b.yaml' }, files({ '/b.yaml': 'a: [1,\n' }), 'h'));
    expect(broken[0]).toMatchObject({ field: 'config', value: '/b.yaml', source: 'KUBE_PROXY_TS_CONFIG' });
    expect(broken[0]?.message).toContain('not valid YAML');
    const list = expectErrors(parseRunArgs(['--config', '/l.yaml'], {}, files({ '/l.yaml': '- a\n- b\n' }), 'h'));
    expect(list[0]?.message).toContain('mapping');
  });
});

describe('parseRunArgs minSyncPeriod against the default syncPeriod', () => {
  it('names minSyncPeriod when only it was set', () => {
    const [error] = expectErrors(parseRunArgs(['--min-sync-period', '1m'], {}, noFiles, 'h'));
    expect(error).toMatchObject({ field: 'minSyncPeriod', value: '1m', source: '--min-sync-period' });
    expect(error?.message).toContain('syncPeriod (30s)');
  });
});
