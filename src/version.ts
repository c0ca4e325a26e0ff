// The agent's version, read from package.json at run time so there is one source of truth.

import { readFileSync } from 'node:fs';

function readVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (parsed.name === 'kube-proxy-ts' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // try the next location: src/ in development, dist/src/ when built
    }
  }
  return '0.0.0-unknown';
}

export const version: string = readVersion();
