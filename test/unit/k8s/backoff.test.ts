import { describe, expect, it } from 'vitest';

import { backoffDelay, defaultBackoff } from '../../../src/k8s/backoff.js';

describe('backoffDelay', () => {
  it('doubles from 200 ms and stays within [ceiling/2, ceiling]', () => {
    const low = [0, 1, 2, 3].map((attempt) => backoffDelay(attempt, defaultBackoff, () => 0));
    const high = [0, 1, 2, 3].map((attempt) => backoffDelay(attempt, defaultBackoff, () => 0.999999));
    expect(low).toEqual([100, 200, 400, 800]);
    expect(high).toEqual([200, 400, 800, 1600]);
  });

  it('is capped at 30 s however many attempts failed', () => {
    expect(backoffDelay(8, defaultBackoff, () => 0.999999)).toBe(30_000);
    expect(backoffDelay(1_000, defaultBackoff, () => 0)).toBe(15_000);
  });
});
