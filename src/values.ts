// Reading values of unknown shape: parsed JSON or YAML, and whatever a `catch` caught.

/** A plain object (not null, not an array), to read fields from. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The message of a caught error, or the thrown value as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
