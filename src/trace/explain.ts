// Turns a trace into an explanation a person (or a script) can act on: the Service port the packet
// matched, where it may end up and with what probability, whether its source is masqueraded,
// why it is rejected or dropped, and — when the desired state is known — why the Service's other
// endpoints are not candidates. Pure: tables, packet and model in, a report value out.

import { servicePortPolicyClusterChainPrefix, servicePortPolicyLocalChainPrefix } from '../netfilter/vocabulary.js';
import type { DesiredState, Endpoint, ServicePort } from '../model/types.js';
import { useZoneHints } from '../model/endpoints.js';
import type { SavedTables } from './tables.js';
import { savedChain } from './tables.js';
import { trace, type Origin, type Step, type TraceOutcome, type TracePacket, type Verdict } from './tracer.js';
import { joinHostPort } from '../ip.js';

export interface ReportStep {
  readonly table: string;
  readonly chain: string;
  /** Undefined for a chain policy. */
  readonly rule: number | undefined;
  readonly comment: string | undefined;
  readonly text: string;
  readonly target: string;
}

export interface ReportOutcome {
  readonly verdict: Verdict;
  /** `ip:port` the connection is DNATed to. */
  readonly endpoint: string | undefined;
  /** The endpoint's node, when the model knows it. */
  readonly endpointNode: string | undefined;
  readonly masquerade: boolean;
  /** The rule that asked for masquerading (or did it), when masqueraded. */
  readonly masqueradeBy: ReportStep | undefined;
  /** The rule (or policy) that rejected or dropped, or why the trace could not go on. */
  readonly reason: string | undefined;
  /** Over the random choices, for a client without session-affinity history, given the assumptions. */
  readonly probability: number;
  /** Conditions the tracer could not decide (other software's matches, unknown interfaces). */
  readonly assumptions: readonly string[];
  readonly steps: readonly ReportStep[];
}

export interface ReportService {
  /** `namespace/name:port` (or `namespace/name` for an unnamed port). */
  readonly servicePortName: string;
  readonly namespace: string;
  readonly name: string;
  readonly port: string;
  readonly protocol: string;
  /** What the packet hit: `cluster IP`, `external IP`, `loadbalancer IP`, `node port`... */
  readonly matchedBy: string;
  readonly sessionAffinity: { readonly timeoutSeconds: number } | undefined;
  /** From the model: the Service port's traffic policies. */
  readonly trafficPolicy?: { readonly internal: string; readonly external: string };
}

export interface ReportEndpoint {
  readonly endpoint: string;
  readonly node: string | undefined;
}

export interface TraceReport {
  readonly packet: {
    readonly protocol: string;
    readonly source: string;
    readonly destination: string;
    readonly origin: Origin;
  };
  readonly service: ReportService | undefined;
  readonly outcomes: readonly ReportOutcome[];
  /** Only with a model: endpoints of the matched Service port that this packet cannot reach, and why. */
  readonly excluded: readonly (ReportEndpoint & { readonly reason: string })[] | undefined;
  readonly notes: readonly string[];
}

export interface ExplainInput {
  readonly saved: SavedTables;
  readonly packet: TracePacket;
  /** The desired state the rules were rendered from, when known (objects, or the apiserver). */
  readonly model?: DesiredState;
}

export function explainTrace(input: ExplainInput): TraceReport {
  const { saved, packet, model } = input;
  // A new client: `-m recent` lists are empty, so the probabilities are those of a first connection.
  const outcomes = trace(saved, packet, { recentState: false }).outcomes;
  const notes: string[] = [];
  const service = findService(outcomes, saved, model, packet.protocol, packet.destination);
  const servicePort = service && model ? findServicePort(model, service.servicePortName, packet.protocol) : undefined;
  if (service && model && !servicePort) notes.push(`the rules name ${service.servicePortName}, which the objects do not hold: the rules may be stale`);
  const endpointNode = (endpoint: string | undefined): string | undefined =>
    endpoint === undefined ? undefined : servicePort?.allEndpoints.find((candidate) => endpointKey(candidate) === endpoint)?.nodeName;

  const reported = groupOutcomes(outcomes).map((outcome): ReportOutcome => {
    const endpoint = outcome.dnat ? joinHostPort(outcome.dnat.ip, outcome.dnat.port) : undefined;
    return {
      verdict: outcome.verdict,
      endpoint,
      endpointNode: endpointNode(endpoint),
      masquerade: outcome.masquerade,
      masqueradeBy: outcome.masquerade ? masqueradeStep(outcome.steps) : undefined,
      reason: verdictReason(outcome),
      probability: outcome.probability,
      assumptions: outcome.assumptions,
      steps: outcome.steps.map(reportStep),
    };
  });
  if (reported.some((outcome) => outcome.assumptions.length > 0)) {
    notes.push('some rules could not be decided for this packet (see the assumptions): each was explored both ways');
  }
  const excluded = servicePort ? excludedEndpoints(servicePort, service?.matchedBy ?? '', outcomes, model?.node.zone) : undefined;
  return {
    packet: { protocol: packet.protocol, source: packet.source, destination: joinHostPort(packet.destination, packet.destinationPort), origin: packet.origin },
    service: service && servicePort ? { ...service, trafficPolicy: { internal: servicePort.internalTrafficPolicy, external: servicePort.externalTrafficPolicy } } : service,
    outcomes: reported,
    excluded,
    notes,
  };
}

function endpointKey(endpoint: Endpoint): string {
  return joinHostPort(endpoint.ip, endpoint.port);
}

function reportStep(step: Step): ReportStep {
  return { table: step.table, chain: step.chain, rule: step.number, comment: step.comment, text: step.text, target: step.target };
}

/** Same verdict, endpoint, masquerade and assumptions: one outcome, probabilities added. Sorted by
 * assumptions (so outcomes of one scenario stay together), then by probability. */
function groupOutcomes(outcomes: readonly TraceOutcome[]): TraceOutcome[] {
  const groups = new Map<string, TraceOutcome>();
  for (const outcome of outcomes) {
    const key = JSON.stringify([outcome.verdict, outcome.dnat, outcome.masquerade, outcome.assumptions, outcome.unknown]);
    const existing = groups.get(key);
    groups.set(key, existing ? { ...existing, probability: existing.probability + outcome.probability } : outcome);
  }
  const scenario = (outcome: TraceOutcome): string => outcome.assumptions.join('\n');
  return [...groups.values()].sort((a, b) => scenario(a).localeCompare(scenario(b)) || b.probability - a.probability);
}

function masqueradeStep(steps: readonly Step[]): ReportStep | undefined {
  const marked = steps.find((step) => step.target === 'KUBE-MARK-MASQ');
  const done = steps.find((step) => step.target === 'MASQUERADE' || step.target === 'SNAT');
  const step = marked ?? done;
  return step ? reportStep(step) : undefined;
}

function verdictReason(outcome: TraceOutcome): string | undefined {
  if (outcome.verdict === 'UNKNOWN') return outcome.unknown;
  if (outcome.verdict === 'ACCEPT') return undefined;
  const last = outcome.steps[outcome.steps.length - 1];
  if (!last) return undefined;
  const where = last.number === undefined ? `${last.table} ${last.chain} policy` : `${last.table} ${last.chain} #${last.number}`;
  return last.comment === undefined ? `${where}: ${last.text}` : `${where}: ${last.comment}`;
}

/** `ns/name:port` or `ns/name` in a kube-proxy comment, and what follows it. */
const servicePortNamePattern = /(?:^|\s)([a-z0-9][-a-z0-9.]*\/[a-z0-9][-a-z0-9.]*(?::[-a-z0-9]+)?)(?:\s+(.*))?$/;

type FoundService = ReportService;

/** The Service port named by the first kube-proxy rule with a Service comment that matched. */
function findService(
  outcomes: readonly TraceOutcome[],
  saved: SavedTables,
  model: DesiredState | undefined,
  protocol: string,
  destination: string,
): FoundService | undefined {
  for (const outcome of outcomes) {
    for (const step of outcome.steps) {
      if (!step.chain.startsWith('KUBE-') || step.comment === undefined) continue;
      const match = servicePortNamePattern.exec(step.comment);
      const servicePortName = match?.[1];
      if (servicePortName === undefined) continue;
      const [namespace = '', rest = ''] = servicePortName.split('/');
      const [name = '', port = ''] = rest.split(':');
      const fromModel = model ? findServicePort(model, servicePortName, protocol) : undefined;
      const matchedBy = destinationKind(step, match?.[2], fromModel, destination);
      const timeoutSeconds =
        fromModel !== undefined
          ? fromModel.sessionAffinity.kind === 'ClientIP'
            ? fromModel.sessionAffinity.timeoutSeconds
            : undefined
          : affinityFromRules(outcomes, saved);
      return { servicePortName, namespace, name, port, protocol, matchedBy, sessionAffinity: timeoutSeconds === undefined ? undefined : { timeoutSeconds } };
    }
  }
  return undefined;
}

const destinationKinds = new Set(['cluster IP', 'external IP', 'loadbalancer IP']);

/** Which of the Service's addresses the packet was sent to. */
function destinationKind(step: Step, commentRest: string | undefined, servicePort: ServicePort | undefined, destination: string): string {
  if (commentRest !== undefined && destinationKinds.has(commentRest)) return commentRest;
  if (step.chain === 'KUBE-NODEPORTS' || step.text.includes('--dst-type LOCAL')) return 'node port';
  if (servicePort?.clusterIPs.includes(destination)) return 'cluster IP';
  if (servicePort?.externalIPs.includes(destination)) return 'external IP';
  if (servicePort?.loadBalancerIPs.includes(destination)) return 'loadbalancer IP';
  return `rule ${step.table} ${step.chain} #${step.number ?? ''}`;
}

/** `--rcheck --seconds N` in a KUBE-SVC-/KUBE-SVL- chain the packet went through. */
function affinityFromRules(outcomes: readonly TraceOutcome[], saved: SavedTables): number | undefined {
  for (const outcome of outcomes) {
    for (const entered of outcome.path) {
      const [table = '', chain = ''] = entered.split('/');
      if (!chain.startsWith('KUBE-SVC-') && !chain.startsWith('KUBE-SVL-')) continue;
      for (const rule of savedChain(saved, table, chain)?.rules ?? []) {
        const at = rule.args.indexOf('--rcheck');
        const seconds = rule.args.indexOf('--seconds');
        if (at >= 0 && seconds >= 0) return Number(rule.args[seconds + 1]);
      }
    }
  }
  return undefined;
}

function findServicePort(model: DesiredState, servicePortName: string, protocol: string): ServicePort | undefined {
  for (const servicePort of model.servicePorts.values()) {
    if (servicePort.servicePortName === servicePortName && servicePort.protocol === protocol) return servicePort;
  }
  return undefined;
}

/** Why each endpoint of the Service port that no outcome reaches is not a candidate. */
function excludedEndpoints(
  servicePort: ServicePort,
  matchedBy: string,
  outcomes: readonly TraceOutcome[],
  zone: string | undefined,
): (ReportEndpoint & { reason: string })[] {
  const reached = new Set(outcomes.flatMap((outcome) => (outcome.dnat ? [joinHostPort(outcome.dnat.ip, outcome.dnat.port)] : [])));
  const entered = (prefix: string): boolean => outcomes.some((outcome) => outcome.path.some((chain) => chain.startsWith(`nat/${prefix}`)));
  // The policy chain the packet went through says which list applies; without one (nothing to
  // reach), the policy for this kind of destination does.
  const policy = matchedBy === 'cluster IP' ? servicePort.internalTrafficPolicy : servicePort.externalTrafficPolicy;
  const localPolicy = entered(servicePortPolicyLocalChainPrefix) || (!entered(servicePortPolicyClusterChainPrefix) && policy === 'Local');
  const anyReady = servicePort.allEndpoints.some((endpoint) => endpoint.ready);
  const zoneHints = useZoneHints(servicePort.allEndpoints, zone);
  const excluded: (ReportEndpoint & { reason: string })[] = [];
  for (const endpoint of servicePort.allEndpoints) {
    const key = endpointKey(endpoint);
    if (reached.has(key)) continue;
    excluded.push({ endpoint: key, node: endpoint.nodeName, reason: exclusionReason(endpoint, { localPolicy, anyReady, zoneHints, zone, matchedBy }) });
  }
  return excluded;
}

function exclusionReason(
  endpoint: Endpoint,
  facts: { localPolicy: boolean; anyReady: boolean; zoneHints: boolean; zone: string | undefined; matchedBy: string },
): string {
  if (!endpoint.ready && !endpoint.serving) return endpoint.terminating ? 'terminating and no longer serving' : 'not ready';
  if (!endpoint.ready && facts.anyReady) return 'terminating (serving, but ready endpoints exist, so terminating ones are not used)';
  if (facts.localPolicy && !endpoint.isLocal) {
    const policy = facts.matchedBy === 'cluster IP' ? 'internalTrafficPolicy' : 'externalTrafficPolicy';
    return `on node ${endpoint.nodeName ?? '(none)'}: ${policy} Local sends this traffic only to this node's endpoints`;
  }
  if (facts.zoneHints && !(endpoint.zoneHints ?? []).includes(facts.zone ?? '')) {
    return `topology: hinted for zone(s) ${(endpoint.zoneHints ?? []).join(',') || '(none)'}, this node is in zone ${facts.zone ?? ''}`;
  }
  return 'selected by the objects, but no rule on this node leads to it (the rules may be stale)';
}
