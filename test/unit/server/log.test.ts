// src/log.ts has no directory of its own; its test lives with the other observability tests.
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';

function capture(level: 'info' | 'debug' | 'warn'): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level, destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } });
  return { lines, logger };
}

describe('createLogger', () => {
  it('writes one JSON object per line with a level name, an ISO time and the component of a child logger', () => {
    const { lines, logger } = capture('info');
    logger.child({ component: 'syncer' }).info({ chains: 3 }, 'sync applied');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({ level: 'info', component: 'syncer', chains: 3, msg: 'sync applied', pid: process.pid });
    expect(typeof line?.time).toBe('string');
    expect(Number.isNaN(Date.parse(String(line?.time)))).toBe(false);
  });

  it('drops lines below the configured level', () => {
    const { lines, logger } = capture('warn');
    logger.info('quiet');
    logger.debug('quieter');
    logger.warn('loud');
    expect(lines.map((line) => line.msg)).toEqual(['loud']);
  });
});
