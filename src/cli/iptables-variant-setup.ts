// Chooses the iptables binaries for this host: the configured variant, or the detected one.

import type { IptablesBackendSetting } from '../config/index.js';
import { binariesFor, detectIptablesVariant, type IptablesVariantDetection } from '../netfilter/iptables-variant.js';

export async function resolveIptablesVariant(configured: IptablesBackendSetting): Promise<IptablesVariantDetection> {
  if (configured === 'auto') return detectIptablesVariant();
  return { backend: configured, binaries: binariesFor(configured), reason: 'configured' };
}
