// Memoisation across renders. The model keeps a ServicePort's object identity while it is
// unchanged, so its ServicePortRules can be reused by reference: an unchanged service costs one
// WeakMap lookup, and the differ sees the same object and skips it. Node-wide chains are reused
// while the context is unchanged, for the same reason.

import { PersistentMap } from '../model/persistent-map.js';
import type { ServicePort } from '../model/types.js';
import { ownedChains } from './chains.js';
import { deepEqual } from '../model/equal.js';
import type { ResolvedContext, ServicePortContext } from './context.js';
import { dispatchRules } from './dispatch.js';
import { servicePortChainNames } from './names.js';
import { planTraffic } from './policy.js';
import { builtinJumps, ensuredChains, sharedChains, staticChains } from './static.js';
import type { BuiltinJump, EnsuredChain, OrderedChain, ServicePortRules, SharedChain } from './types.js';

export interface NodeWideRules {
  readonly staticChains: readonly OrderedChain[];
  readonly sharedChains: readonly SharedChain[];
  readonly jumps: readonly BuiltinJump[];
  readonly ensuredChains: readonly EnsuredChain[];
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
    sharedRules: dispatchRules(servicePort, names, plan, context.localhostNodePortsCounter),
  };
}

export class RenderCache {
  private resolved: ResolvedContext | undefined;
  private nodeWide: NodeWideRules | undefined;
  private servicePortContext: ServicePortContext | undefined;
  // Keyed weakly: a ServicePort the model has replaced or dropped is collected with its rules.
  private byServicePort = new WeakMap<ServicePort, ServicePortRules>();
  // The last render's service port map and its rules: the model's PersistentMap replaces only the
  // shards a change touches, so the rules of every other shard are taken over whole, and one
  // changed service costs one shard rather than a lookup per service port.
  private lastInput: PersistentMap<ServicePort> | undefined;
  private lastOutput: PersistentMap<ServicePortRules> | undefined;
  private readonly endpointCounts = new WeakMap<ReadonlyMap<string, ServicePort>, number>();
  private reused = 0;
  private rendered = 0;
  private lastStats: RenderStats = { reused: 0, rendered: 0 };

  get stats(): RenderStats {
    return this.lastStats;
  }

  /** Node-wide chains and jumps for this context, the same objects as last time if it is unchanged. */
  nodeWideRules(resolved: ResolvedContext): NodeWideRules {
    if (this.nodeWide === undefined || this.resolved === undefined || !deepEqual(this.resolved, resolved)) {
      this.resolved = resolved;
      this.nodeWide = {
        staticChains: staticChains(resolved),
        sharedChains: sharedChains(resolved),
        jumps: builtinJumps(resolved),
        ensuredChains: ensuredChains(resolved),
      };
    }
    return this.nodeWide;
  }

  /** Starts a render: a different per-service-port context invalidates every cached ServicePortRules. */
  beginServicePorts(context: ServicePortContext): void {
    if (this.servicePortContext === undefined || !deepEqual(this.servicePortContext, context)) {
      this.servicePortContext = context;
      this.byServicePort = new WeakMap();
      this.lastInput = undefined;
      this.lastOutput = undefined;
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

  /** The rules of every service port, under the context given to `beginServicePorts`. */
  servicePortRulesMap(servicePorts: ReadonlyMap<string, ServicePort>): ReadonlyMap<string, ServicePortRules> {
    if (!(servicePorts instanceof PersistentMap)) {
      const result = new Map<string, ServicePortRules>();
      servicePorts.forEach((servicePort, key) => result.set(key, this.servicePortRules(servicePort)));
      return result;
    }
    const input = servicePorts as PersistentMap<ServicePort>;
    const previous = this.lastInput !== undefined && this.lastOutput !== undefined ? { source: this.lastInput, result: this.lastOutput } : undefined;
    const output = input.mapValues(
      (servicePort) => this.servicePortRules(servicePort),
      previous,
      (shard) => {
        this.reused += shard.size;
      },
    );
    this.lastInput = input;
    this.lastOutput = output;
    return output;
  }

  /** Endpoints of every service port; the model's immutable shards are counted once each. */
  endpointTotal(servicePorts: ReadonlyMap<string, ServicePort>): number {
    if (!(servicePorts instanceof PersistentMap)) return countEndpoints(servicePorts);
    let total = 0;
    for (const shard of (servicePorts as PersistentMap<ServicePort>).shardMaps) {
      let count = this.endpointCounts.get(shard);
      if (count === undefined) {
        count = countEndpoints(shard);
        this.endpointCounts.set(shard, count);
      }
      total += count;
    }
    return total;
  }

  endServicePorts(): void {
    this.lastStats = { reused: this.reused, rendered: this.rendered };
  }
}

function countEndpoints(servicePorts: ReadonlyMap<string, ServicePort>): number {
  let total = 0;
  servicePorts.forEach((servicePort) => {
    total += servicePort.allEndpoints.length;
  });
  return total;
}
