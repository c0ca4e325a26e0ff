// The human-readable form of a trace report: what happens first (Service, outcomes with their
// probabilities, masquerade, why rejected), then the rules followed. Steps shared by every outcome
// are printed once.

import type { ReportOutcome, ReportStep, TraceReport } from './explain.js';

const originText: Readonly<Record<TraceReport['packet']['origin'], string>> = {
  pod: 'from a pod on this node (forwarded)',
  node: 'from this node itself (locally generated)',
  outside: 'from outside the node',
};

export function formatReport(report: TraceReport, sourceLabel: string): string {
  const lines: string[] = [];
  const { packet, service } = report;
  lines.push(`Packet:   ${packet.protocol} ${packet.source} -> ${packet.destination}, ${originText[packet.origin]}`);
  lines.push(`Rules:    ${sourceLabel}`);
  if (service) {
    const policy = service.trafficPolicy ? `; traffic policy internal ${service.trafficPolicy.internal}, external ${service.trafficPolicy.external}` : '';
    lines.push(`Service:  ${service.servicePortName} (${service.protocol}), matched by its ${service.matchedBy}${policy}`);
    lines.push(
      service.sessionAffinity
        ? `Affinity: ClientIP, ${service.sessionAffinity.timeoutSeconds} s: a client seen within that time goes back to its previous endpoint; the probabilities are for a new client`
        : 'Affinity: none',
    );
  } else {
    lines.push('Service:  none matched (no kube-proxy Service rule applies to this packet)');
  }
  // Probabilities are over the random choices, given the assumptions: one block per set of them.
  const scenarios = new Map<string, ReportOutcome[]>();
  for (const outcome of report.outcomes) {
    const key = outcome.assumptions.join('\n');
    scenarios.set(key, [...(scenarios.get(key) ?? []), outcome]);
  }
  lines.push('');
  for (const [key, outcomes] of scenarios) {
    lines.push(key === '' ? 'Outcomes:' : `Outcomes if ${key.split('\n').join(',\n         and ')}:`);
    for (const outcome of outcomes) {
      lines.push(`  ${percent(outcome.probability).padStart(6)}  ${headline(outcome)}`);
      if (outcome.masqueradeBy) lines.push(`          masqueraded: ${describeStep(outcome.masqueradeBy)}`);
      if (outcome.reason !== undefined) lines.push(`          why: ${outcome.reason}`);
    }
  }
  if (report.excluded !== undefined) {
    lines.push('', report.excluded.length === 0 ? 'Endpoints excluded: none' : 'Endpoints excluded:');
    for (const excluded of report.excluded) {
      lines.push(`  ${excluded.endpoint}${excluded.node === undefined ? '' : ` (${excluded.node})`}: ${excluded.reason}`);
    }
  }
  lines.push('', ...formatPaths(report.outcomes));
  if (report.notes.length > 0) lines.push('', ...report.notes.map((note) => `Note: ${note}`));
  return `${lines.join('\n')}\n`;
}

function percent(probability: number): string {
  return `${(probability * 100).toFixed(1)}%`;
}

function headline(outcome: ReportOutcome): string {
  const parts: string[] = [outcome.verdict];
  if (outcome.endpoint !== undefined) parts.push(`-> ${outcome.endpoint}${outcome.endpointNode === undefined ? '' : ` (${outcome.endpointNode})`}`);
  if (outcome.verdict === 'ACCEPT') parts.push(outcome.masquerade ? 'masqueraded' : 'source kept');
  else if (outcome.masquerade) parts.push('(masquerade requested)');
  return parts.join(' ');
}

function describeStep(step: ReportStep): string {
  const where = step.rule === undefined ? `${step.table} ${step.chain} policy` : `${step.table} ${step.chain} #${step.rule}`;
  return step.comment === undefined ? `${where}: ${step.text}` : `${where} "${step.comment}"`;
}

function stepLine(step: ReportStep): string {
  return `  ${describeStep(step)} -> ${step.target || '(no target)'}`;
}

function sameStep(a: ReportStep | undefined, b: ReportStep | undefined): boolean {
  return a !== undefined && b !== undefined && a.table === b.table && a.chain === b.chain && a.rule === b.rule && a.target === b.target;
}

function formatPaths(outcomes: readonly ReportOutcome[]): string[] {
  const [first] = outcomes;
  if (!first) return ['Rules followed: none (nothing matched)'];
  let shared = first.steps.length;
  for (const outcome of outcomes) {
    let index = 0;
    while (index < shared && sameStep(outcome.steps[index], first.steps[index])) index++;
    shared = index;
  }
  if (outcomes.length === 1) return ['Rules followed:', ...first.steps.map(stepLine)];
  const lines = ['Rules followed by every outcome:', ...first.steps.slice(0, shared).map(stepLine)];
  for (const outcome of outcomes) {
    lines.push(`then, for ${headline(outcome)}:`, ...outcome.steps.slice(shared).map(stepLine));
  }
  return lines;
}
