// Memoisation across renders. The model keeps a ServicePort's object identity while it is
// unchanged, so its ServicePortRules can be reused by reference: an unchanged service costs one
// WeakMap lookup, and the differ sees the same object and skips it. Node-wide chains are reused
// while the context is unchanged, for the same reason.

import type { ServicePort } from '../model/types.js';
import { ownedChains } from './chains.js';
import {
  sameResolvedContext,
  sameServicePortContext,
  type ResolvedContext,
  type ServicePortContext,
} from './context.js';
import { dispatchRules } from './dispatch.js';
import { servicePortChainNames } from './names.js';
import { planTraffic } from './policy.js';
import { builtinJumps, sharedChains, staticChains } from './static.js';
import type { BuiltinJump, OrderedChain, ServicePortRules, SharedChain } from './types.js';

export interface NodeWideRules {
  readonly staticChains: readonly OrderedChain[];
  readonly sharedChains: readonly SharedChain[];
  readonly jumps: readonly BuiltinJump[];
}

/** How the last render went: `reused` service ports cost a lookup, `rendered` ones were built. */
export interface RenderStats {
  readonly reused: number;
  readonly rendered: number;
}

/** Everything one service port contributes, from scratch. */
export function renderServicePort(servicePort: ServicePort, context: ServicePortContext): ServicePortRules {
  const names = servicePortChainNames(servicePort.servicePortName, servicePort.protocol);
  const plan = planTraffic(servicePort, names);
  return {
    chains: ownedChains(servicePort, names, plan, context),
    sharedRules: dispatchRules(servicePort, names, plan),
  };
}

export class RenderCache {
  private resolved: ResolvedContext | undefined;
  private nodeWide: NodeWideRules | undefined;
  private servicePortContext: ServicePortContext | undefined;
  // Keyed weakly: a ServicePort the model has replaced or dropped is collected with its rules.
  private byServicePort = new WeakMap<ServicePort, ServicePortRules>();
  private reused = 0;
  private rendered = 0;
  private lastStats: RenderStats = { reused: 0, rendered: 0 };

  get stats(): RenderStats {
    return this.lastStats;
  }

  /** Node-wide chains and jumps for this context, the same objects as last time if it is unchanged. */
  nodeWideRules(resolved: ResolvedContext): NodeWideRules {
    if (this.nodeWide === undefined || this.resolved === undefined || !sameResolvedContext(this.resolved, resolved)) {
      this.resolved = resolved;
      this.nodeWide = { staticChains: staticChains(resolved), sharedChains: sharedChains(resolved), jumps: builtinJumps(resolved) };
    }
    return this.nodeWide;
  }

  /** Starts a render: a different per-service-port context invalidates every cached ServicePortRules. */
  beginServicePorts(context: ServicePortContext): void {
    if (this.servicePortContext === undefined || !sameServicePortContext(this.servicePortContext, context)) {
      this.servicePortContext = context;
      this.byServicePort = new WeakMap();
    }
    this.reused = 0;
    this.rendered = 0;
  }

  /** The rules of one service port under the context given to `beginServicePorts`. */
  servicePortRules(servicePort: ServicePort): ServicePortRules {
    const context = this.servicePortContext;
    if (context === undefined) throw new Error('RenderCache.servicePortRules called before beginServicePorts');
    let rules = this.byServicePort.get(servicePort);
    if (rules === undefined) {
      rules = renderServicePort(servicePort, context);
      this.byServicePort.set(servicePort, rules);
      this.rendered++;
    } else {
      this.reused++;
    }
    return rules;
  }

  endServicePorts(): void {
    this.lastStats = { reused: this.reused, rendered: this.rendered };
  }
}
