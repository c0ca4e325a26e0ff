import { describe, expect, it } from 'vitest';
import { formatDuration, parseGoDuration } from '../../../src/config/duration.js';

describe('parseGoDuration', () => {
  it.each([
    ['30s', 30_000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['2h22m', 8_520_000],
    ['500ms', 500],
    ['1.5s', 1_500],
    ['.5s', 500],
    ['1.s', 1_000],
    ['0', 0],
    ['0s', 0],
    ['+5s', 5_000],
    ['-1s', -1_000],
    ['100us', 0.1],
    ['100µs', 0.1],
    ['100μs', 0.1],
    ['1000000ns', 1],
    ['1h0m0s', 3_600_000],
  ])('%s -> %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '30', '1', 's', '.s', '1x', '1 s', '1s ', 'abc', '--1s', '1.2.3s', '5d'])('rejects %j', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [500, '500ms'],
    [1_000, '1s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
    [1_500, '1.5s'],
  ])('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseGoDuration(text)).toBe(ms);
  });
});
