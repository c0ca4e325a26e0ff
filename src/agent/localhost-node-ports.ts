// NodePorts on 127.0.0.1 (`iptables.localhostNodePorts`, kube-proxy's default): whether this node
// gets them, and the sysctl they need. kube-proxy (pkg/proxy/iptables/proxier.go, NewProxier) turns
// them off when nodePortAddresses leaves out the IPv4 loopback, and otherwise sets
// net.ipv4.conf.all.route_localnet=1, or fails to start when it cannot. kube-proxy-ts runs
// unprivileged, where /proc/sys is read-only: it finds the setting already made (by the DaemonSet's
// privileged init container, `run --init-only`) or makes it when it may, and when neither works it
// keeps running with localhost NodePorts off and says why (log and metric) instead of exiting.

import type { AgentConfig } from '../config/index.js';
import { ensureSysctl, ROUTE_LOCALNET, sysctlName, type SysctlAccess } from '../netfilter/sysctl.js';
import { nodePortAddressesAllowLoopback } from '../render/static.js';

/** Why localhost NodePorts are off: switched off, nodePortAddresses without 127.0.0.1, or the sysctl. */
export type LocalhostNodePortsOff = 'config' | 'nodePortAddresses' | 'route_localnet';

export interface LocalhostNodePorts {
  readonly enabled: boolean;
  /** undefined when enabled. */
  readonly off: LocalhostNodePortsOff | undefined;
  /** What to log, one sentence or two; `level` says how loud. */
  readonly message: string;
  readonly level: 'info' | 'error';
  readonly fields: Readonly<Record<string, unknown>>;
}

const HOW_TO_TURN_OFF = 'iptables.localhostNodePorts: false (--iptables-localhost-nodeports=false)';
const sysctl = sysctlName(ROUTE_LOCALNET);

/** Whether the configuration asks for localhost NodePorts on this node, before any sysctl. */
export function localhostNodePortsWanted(config: Pick<AgentConfig, 'localhostNodePorts' | 'nodePortAddresses'>): LocalhostNodePortsOff | undefined {
  if (!config.localhostNodePorts) return 'config';
  switch (config.nodePortAddresses.kind) {
    case 'all':
      return undefined;
    case 'primary':
      // The node's own IPs (/32 each): never the loopback.
      return 'nodePortAddresses';
    case 'cidrs':
      return nodePortAddressesAllowLoopback(config.nodePortAddresses.cidrs) ? undefined : 'nodePortAddresses';
    default: {
      const unreachable: never = config.nodePortAddresses;
      return unreachable;
    }
  }
}

/**
 * Decides whether localhost NodePorts are on, setting route_localnet=1 when they are wanted and it
 * is not set yet. `sysctl` undefined: sysctls are neither read nor written (the caller vouches for
 * them), and the configuration alone decides.
 */
export async function prepareLocalhostNodePorts(
  config: Pick<AgentConfig, 'localhostNodePorts' | 'nodePortAddresses'>,
  sysctls: SysctlAccess | undefined,
): Promise<LocalhostNodePorts> {
  const off = localhostNodePortsWanted(config);
  if (off === 'config') {
    return {
      enabled: false,
      off,
      level: 'info',
      message: `localhost NodePorts off: iptables.localhostNodePorts is false; NodePorts answer on the node's other addresses, and ${sysctl} is left as it is`,
      fields: {},
    };
  }
  if (off === 'nodePortAddresses') {
    return {
      enabled: false,
      off,
      level: 'info',
      message: `localhost NodePorts off: nodePortAddresses does not include 127.0.0.1, so ${sysctl} is left as it is`,
      fields: {},
    };
  }
  if (sysctls === undefined) {
    return { enabled: true, off: undefined, level: 'info', message: `localhost NodePorts on (${sysctl} not checked)`, fields: {} };
  }
  const result = await ensureSysctl(sysctls, ROUTE_LOCALNET, 1);
  if (result.ok) {
    return {
      enabled: true,
      off: undefined,
      level: 'info',
      message: result.changed
        ? `localhost NodePorts on: set ${sysctl}=1; to change this either disable ${HOW_TO_TURN_OFF} or set nodePortAddresses to leave out 127.0.0.1`
        : `localhost NodePorts on: ${sysctl} is 1`,
      fields: { sysctl, before: result.before ?? null, after: 1 },
    };
  }
  return {
    enabled: false,
    off: 'route_localnet',
    level: 'error',
    message:
      `localhost NodePorts off: ${sysctl} is ${result.before ?? 'unreadable'} and cannot be set to 1 (${result.error}), so NodePorts do not ` +
      `answer on 127.0.0.1 (kube-proxy would exit here). Set it on the node (the DaemonSet's privileged init container runs ` +
      `\`kube-proxy-ts run --init-only\` for that), or turn this off with ${HOW_TO_TURN_OFF}`,
    fields: { sysctl, before: result.before ?? null, error: result.error },
  };
}
