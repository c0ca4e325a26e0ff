// Exponential backoff with jitter for watch restarts: many nodes losing the same apiserver must
// not come back in lockstep, and a broken apiserver must not be hammered every 200 ms.

export interface BackoffOptions {
  /** Delay before the first retry (before jitter). */
  readonly initialMs: number;
  /** Upper bound on any delay. */
  readonly maxMs: number;
}

export const defaultBackoff: BackoffOptions = { initialMs: 200, maxMs: 30_000 };

/**
 * Delay before retry number `attempt` (0-based): `initial * 2^attempt`, capped at `max`, then
 * "equal jitter" — a uniform pick in [d/2, d] — so the delay keeps a floor and still spreads out.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** exponent);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
