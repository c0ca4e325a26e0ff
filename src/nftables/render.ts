// DesiredState -> NftRuleset. A service port's part is memoised per ServicePort object (the model
// keeps the identity of unchanged ones), so an unchanged service costs nothing and the differ can
// skip it by identity. Pure.

import type { DesiredState, ServicePort } from '../model/types.js';
import { renderServicePort } from './render-service.js';
import { renderStatic } from './render-static.js';
import type { NftContext, NftRuleset, NftServicePortPart } from './types.js';
import { nftFamily } from './vocabulary.js';

/** Valid for one context: make a new one when the context changes. */
export class NftRenderCache {
  private readonly parts = new WeakMap<ServicePort, NftServicePortPart>();

  part(servicePort: ServicePort, compute: () => NftServicePortPart): NftServicePortPart {
    let part = this.parts.get(servicePort);
    if (part === undefined) {
      part = compute();
      this.parts.set(servicePort, part);
    }
    return part;
  }
}

export function renderNftRuleset(state: DesiredState, context: NftContext, cache: NftRenderCache = new NftRenderCache()): NftRuleset {
  const family = nftFamily(state.family);
  const staticPart = renderStatic(family, context);
  const servicePorts = new Map<string, NftServicePortPart>();
  for (const [key, servicePort] of state.servicePorts) {
    if (servicePort.clusterIPs.length === 0) continue;
    servicePorts.set(key, cache.part(servicePort, () => renderServicePort(servicePort, family, context)));
  }
  return { family, staticChains: staticPart.chains, containers: staticPart.containers, staticElements: staticPart.elements, servicePorts };
}
