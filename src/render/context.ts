// RenderContext with its defaults applied, plus the narrower slice of it that per-service-port
// rules depend on (so that e.g. a nodePortAddresses change does not re-render every service).

import type { IPFamily } from '../ip.js';
import type { DesiredState } from '../model/types.js';
import { localhostNodePortsEnabled } from './static.js';
import type { LocalTraffic, RenderContext } from './types.js';

export interface ResolvedContext {
  /** The family of every address below and of the rules (the model's: one renderer run per family). */
  readonly family: IPFamily;
  readonly localTraffic: LocalTraffic | undefined;
  readonly nodePortAddresses: readonly string[];
  readonly nodeIPs: readonly string[];
  /** kube-proxy formats it with Go's `%#08x`: bit 14 -> `0x00004000`. */
  readonly masqueradeMark: string;
  readonly randomFully: boolean;
  readonly masqueradeAll: boolean;
  readonly localhostNodePorts: boolean;
  readonly localhostNodePortsCounter: string | undefined;
  readonly conntrackTCPBeLiberal: boolean;
  readonly invalidDropCounter: string | undefined;
  readonly largeClusterEndpointsThreshold: number;
}

/** Everything a service port's rules depend on besides the ServicePort itself. */
export interface ServicePortContext {
  readonly localTraffic: LocalTraffic | undefined;
  readonly masqueradeAll: boolean;
  /** kube-proxy's `nodeIP` (the primary one): a source range containing it lets the node reach its LB IPs. */
  readonly primaryNodeIP: string | undefined;
  /** false in large-cluster mode: per-endpoint comments are dropped. */
  readonly endpointComments: boolean;
  /** The nfacct counter of the extra 127.0.0.0/8 NodePort rules; undefined when localhost NodePorts
   * are off or there is no counter. */
  readonly localhostNodePortsCounter: string | undefined;
}

export function resolveContext(ctx: RenderContext, state: DesiredState): ResolvedContext {
  if (!Number.isInteger(ctx.masqueradeBit) || ctx.masqueradeBit < 0 || ctx.masqueradeBit > 31) {
    throw new RangeError(`masqueradeBit must be an integer in [0, 31], got ${ctx.masqueradeBit}`);
  }
  return {
    family: state.family,
    localTraffic: ctx.localTraffic,
    nodePortAddresses: ctx.nodePortAddresses,
    // The model knows the node's addresses too; the context wins when it names any.
    nodeIPs: ctx.nodeIPs.length > 0 ? ctx.nodeIPs : state.node.ips,
    masqueradeMark: `0x${(2 ** ctx.masqueradeBit).toString(16).padStart(8, '0')}`,
    randomFully: ctx.randomFully,
    masqueradeAll: ctx.masqueradeAll ?? false,
    localhostNodePorts: ctx.localhostNodePorts ?? true,
    localhostNodePortsCounter: ctx.localhostNodePortsCounter,
    conntrackTCPBeLiberal: ctx.conntrackTCPBeLiberal ?? false,
    invalidDropCounter: ctx.invalidDropCounter,
    largeClusterEndpointsThreshold: ctx.largeClusterEndpointsThreshold ?? 1000,
  };
}

export function servicePortContext(resolved: ResolvedContext, largeClusterMode: boolean): ServicePortContext {
  const primary = resolved.nodeIPs[0];
  return {
    localTraffic: resolved.localTraffic,
    masqueradeAll: resolved.masqueradeAll,
    primaryNodeIP: primary,
    endpointComments: !largeClusterMode,
    localhostNodePortsCounter: localhostNodePortsEnabled(resolved) ? resolved.localhostNodePortsCounter : undefined,
  };
}
