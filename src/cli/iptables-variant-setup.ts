// Chooses the iptables binaries for this host: the configured backend, or the detected one.

import type { IptablesBackend as ConfiguredBackend } from '../config/index.js';
import { binariesFor, detectBackend, type BackendDetection } from '../netfilter/backend.js';

export async function resolveBackend(configured: ConfiguredBackend): Promise<BackendDetection> {
  if (configured === 'auto') return detectBackend();
  return { backend: configured, binaries: binariesFor(configured), reason: 'configured' };
}

export function parseBackendFlag(value: string | undefined): ConfiguredBackend | undefined {
  const backend = value ?? 'auto';
  return backend === 'auto' || backend === 'nft' || backend === 'legacy' ? backend : undefined;
}
