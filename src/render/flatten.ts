// V8 builds a template literal as a tree of "cons" strings; kept as is, every one of the ~300k
// rules of a big cluster stays a dozen heap objects that each GC must trace and copy (measured:
// half of a cold render was GC). Reading one character flattens the tree into a single string.

/** Returns `text`, flattened into one sequential string. */
export function flatten(text: string): string {
  text.charCodeAt(0);
  return text;
}
