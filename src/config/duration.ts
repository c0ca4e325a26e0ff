// Go duration strings ("30s", "1m30s", "1.5h", "250ms"), as metav1.Duration fields in a
// KubeProxyConfiguration hold them, parsed to milliseconds.

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC Greek mu; Go accepts both
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

// One `<number><unit>` element: Go allows `1.`, `.5` but not a lone `.`.
const ELEMENT = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Milliseconds for a Go duration string, or undefined when Go's time.ParseDuration would reject it.
 * The sign is kept (Go accepts `-1s`); callers decide whether negatives are allowed.
 */
export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    sign = rest.startsWith('-') ? -1 : 1;
    rest = rest.slice(1);
  }
  // Go's one unit-less spelling.
  if (rest === '0') return 0;
  if (rest === '') return undefined;
  let totalMs = 0;
  while (rest !== '') {
    const match = ELEMENT.exec(rest);
    if (match === null) return undefined;
    const [whole, integer = '', fraction, unit = ''] = match;
    if (integer === '' && (fraction === undefined || fraction === '')) return undefined;
    const factor = UNIT_MS[unit];
    if (factor === undefined) return undefined;
    totalMs += Number(`${integer === '' ? '0' : integer}.${fraction ?? ''}0`) * factor;
    rest = rest.slice(whole.length);
  }
  return sign * totalMs;
}

/** Go's spelling of a whole-millisecond duration, for messages: 90000 -> `1m30s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${rest}ms`;
  const hours = Math.floor(rest / 3_600_000);
  rest -= hours * 3_600_000;
  const minutes = Math.floor(rest / 60_000);
  rest -= minutes * 60_000;
  const seconds = rest / 1000;
  const parts = [hours > 0 ? `${hours}h` : '', hours > 0 || minutes > 0 ? `${minutes}m` : '', `${seconds}s`];
  return sign + parts.join('');
}
