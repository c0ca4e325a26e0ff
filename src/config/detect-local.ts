// detectLocalMode with the setting each mode needs: BridgeInterface its bridge, InterfaceNamePrefix
// its prefix (kube-proxy's validation refuses either without it). Pure; used by `run` and `render`.

import type { DetectLocal, DetectLocalMode } from './types.js';

export type DetectLocalResult =
  | { readonly ok: true; readonly detectLocal: DetectLocal }
  | { readonly ok: false; readonly missing: 'podBridgeInterface' | 'podInterfaceNamePrefix' };

export function detectLocalFrom(mode: DetectLocalMode, bridgeInterface: string | undefined, interfaceNamePrefix: string | undefined): DetectLocalResult {
  switch (mode) {
    case 'ClusterCIDR':
    case 'NodeCIDR':
      return { ok: true, detectLocal: { mode } };
    case 'BridgeInterface':
      return bridgeInterface === undefined ? { ok: false, missing: 'podBridgeInterface' } : { ok: true, detectLocal: { mode, bridgeInterface } };
    case 'InterfaceNamePrefix':
      return interfaceNamePrefix === undefined
        ? { ok: false, missing: 'podInterfaceNamePrefix' }
        : { ok: true, detectLocal: { mode, interfaceNamePrefix } };
    default: {
      const unreachable: never = mode;
      return unreachable;
    }
  }
}
