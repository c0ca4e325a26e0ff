// The agent's logger: JSON lines on stdout (or an injected stream in tests), one child logger
// per component (`logger.child({ component: 'syncer' })`) so every line says who wrote it.

import { pino, stdTimeFunctions, type DestinationStream, type Logger, type LoggerOptions as PinoOptions } from 'pino';
import type { LogLevel } from './config/types.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where the JSON lines go; stdout (written synchronously, so nothing is lost on exit) when absent. */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const pinoOptions: PinoOptions = {
    level: options.level,
    // Level names rather than numbers, and ISO times: log pipelines and humans read these
    // without knowing pino's numbering.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: stdTimeFunctions.isoTime,
    base: { pid: process.pid },
  };
  return options.destination === undefined ? pino(pinoOptions) : pino(pinoOptions, options.destination);
}
