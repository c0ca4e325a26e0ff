// Reads the JUnit XML that upstream's e2e binary writes (--report-dir/junit_01.xml) into one
// outcome per spec. Pure: no IO, so it is unit-tested on captured reports.

export type SpecOutcome = 'passed' | 'failed' | 'skipped';

export interface SpecResult {
  /** The spec's full text without Ginkgo's leaf-node prefix, e.g. `[sig-network] Services should ...`. */
  readonly name: string;
  readonly status: SpecOutcome;
  /** Seconds the spec ran. */
  readonly seconds: number;
  /** Why it failed or skipped itself (first line), when the report says. */
  readonly reason?: string;
}

export interface SuiteSummary {
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly specs: readonly SpecResult[];
  /** Suite-level nodes (BeforeSuite, AfterSuite, ...) that failed: the run as a whole is broken. */
  readonly suiteFailures: readonly string[];
  /** Specs the focus/skip regexes left out (Ginkgo reports them as skipped with no reason). */
  readonly notSelected: number;
}

const entities: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function decodeXmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(Number.parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number.parseInt(entity.slice(1), 10));
    return entities[entity] ?? whole;
  });
}

function attributes(tag: string): ReadonlyMap<string, string> {
  const values = new Map<string, string>();
  for (const match of tag.matchAll(/([A-Za-z_:][\w:.-]*)="([^"]*)"/g)) {
    if (match[1] !== undefined && match[2] !== undefined) values.set(match[1], decodeXmlText(match[2]));
  }
  return values;
}

function firstLine(text: string | undefined): string | undefined {
  const line = text?.split('\n').map((l) => l.trim()).find((l) => l !== '');
  return line === undefined ? undefined : line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/** Ginkgo names a spec `[It] <text>`; suite nodes are `[BeforeSuite]`, `[SynchronizedAfterSuite]`, ... */
const leafPrefix = /^\[It\]\s+/;

export function parseJUnit(xml: string): SuiteSummary {
  const specs: SpecResult[] = [];
  const suiteFailures: string[] = [];
  let notSelected = 0;
  for (const match of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = attributes(match[1] ?? '');
    const body = match[3] ?? '';
    const rawName = attrs.get('name') ?? '';
    const failure = /<(failure|error)\b([^>]*)>?/.exec(body);
    const skipped = /<skipped\b([^>]*)\/?>/.exec(body);
    const declared = attrs.get('status');
    let status: SpecOutcome;
    if (failure || declared === 'failed' || declared === 'panicked' || declared === 'timedout' || declared === 'aborted') status = 'failed';
    else if (skipped || declared === 'skipped' || declared === 'pending') status = 'skipped';
    else status = 'passed';
    if (!leafPrefix.test(rawName)) {
      if (status === 'failed') suiteFailures.push(rawName);
      continue;
    }
    const reasonSource = failure ? attributes(failure[2] ?? '').get('message') ?? attributes(failure[2] ?? '').get('type') : skipped ? attributes(skipped[1] ?? '').get('message') : undefined;
    // A spec that ran and skipped itself says why ("skipped - Requires at least 2 nodes"); one
    // that the focus or skip regex left out is only "skipped".
    if (status === 'skipped' && skipped && (reasonSource === undefined || reasonSource.trim() === 'skipped')) {
      notSelected++;
      continue;
    }
    const reason = firstLine(reasonSource);
    specs.push({
      name: rawName.replace(leafPrefix, '').replace(/\s+/g, ' ').trim(),
      status,
      seconds: Number(attrs.get('time') ?? '0') || 0,
      ...(reason !== undefined && status !== 'passed' ? { reason } : {}),
    });
  }
  specs.sort((a, b) => a.name.localeCompare(b.name));
  const count = (status: SpecOutcome): number => specs.filter((s) => s.status === status).length;
  return { passed: count('passed'), failed: count('failed'), skipped: count('skipped'), specs, suiteFailures, notSelected };
}
