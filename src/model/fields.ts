// Defensive readers for untrusted API objects: the client's types describe what the apiserver
// should send, not what a test, a proxy or a bug may hand us, so every field is checked at runtime.
import type { Protocol, SkipReason, Skipped } from './types.js';
import { asRecord } from '../values.js';

export { asArray, asRecord, asString } from '../values.js';

/** A string-valued map such as metadata.labels; non-string values are dropped. */
export function asStringMap(value: unknown): Readonly<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const [key, entry] of Object.entries(asRecord(value))) {
    if (typeof entry === 'string') result[key] = entry;
  }
  return result;
}

export function hasKey(map: Readonly<Record<string, string>>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(map, key);
}

export function isPortNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535;
}

/** TCP when absent (the apiserver defaults it), `null` when the value is not a known protocol. */
export function parseProtocol(value: unknown): Protocol | null {
  if (value === undefined || value === null) return 'TCP';
  if (value === 'TCP' || value === 'UDP' || value === 'SCTP') return value;
  return null;
}

// DNS-1123 subdomain: what Kubernetes accepts for object names. Keys are built from names with
// '/' and ':' separators, so anything looser could make two objects collide.
const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isObjectName(value: string | undefined): value is string {
  return value !== undefined && value.length <= 253 && subdomain.test(value);
}

// Namespaces are DNS-1123 labels and Service names DNS-1035 labels (a letter first), at most 63
// characters, as the apiserver validates them. Objects from elsewhere (render's files) are held to
// the same: the names go into rule comments, and iptables cuts a comment past 255 characters
// without a word; with these bounds the longest comment rendered is under 255.
const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const label1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function isNamespaceName(value: string | undefined): value is string {
  return value !== undefined && value.length <= 63 && label.test(value);
}

export function isServiceName(value: string | undefined): value is string {
  return value !== undefined && value.length <= 63 && label1035.test(value);
}

// Port names: DNS labels or IANA service names (letters, digits, hyphens). Empty = unnamed.
const portName = /^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)?$/;

export function isPortName(value: string): boolean {
  return value.length <= 63 && portName.test(value);
}

/** Milliseconds since the epoch for a Date or RFC 3339 string; undefined when absent or unreadable. */
export function asTime(value: unknown): number | undefined {
  if (value instanceof Date) {
    const time = value.getTime();
    return Number.isNaN(time) ? undefined : time;
  }
  if (typeof value === 'string' && value !== '') {
    const time = Date.parse(value);
    return Number.isNaN(time) ? undefined : time;
  }
  return undefined;
}

/** Quotes a value for a Skipped detail, whatever its type. */
export function quote(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Collects Skipped entries for one object. */
export class SkipCollector {
  readonly entries: Skipped[] = [];

  constructor(
    private readonly kind: Skipped['kind'],
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  add(reason: SkipReason, detail: string): void {
    this.entries.push({ kind: this.kind, namespace: this.namespace, name: this.name, reason, detail });
  }
}
