// `src/` holds product code only: every module under it is reachable from the entry point
// (`src/cli.ts`, static and dynamic imports alike), and none imports from test/. A stand-in or a
// helper only tests use belongs in test/support, where it is never built into dist or the image.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const src = join(root, 'src');

function modules(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return modules(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative specifiers of `import ... from '...'`, `export ... from '...'` and `import('...')`. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) found.push(match[1] ?? '');
  return found.map((specifier) => resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
}

/** A file of re-exports only (an `index.ts` barrel): an API surface, no code of its own. */
function isBarrel(file: string): boolean {
  const text = readFileSync(file, 'utf8')
    .replace(/\/\/.*$/gm, '')
    .replace(/export\s+(?:type\s+)?(?:\*|\{[^}]*\})(?:\s+as\s+\w+)?\s+from\s+'[^']+';/g, '');
  return text.trim() === '';
}

describe('src/ is product code', () => {
  const all = modules(src);

  it('every module under src/ is reachable from src/cli.ts', () => {
    const reached = new Set<string>();
    const pending = [join(src, 'cli.ts')];
    while (pending.length > 0) {
      const file = pending.pop() ?? '';
      if (reached.has(file)) continue;
      reached.add(file);
      pending.push(...imports(file).filter((target) => target.startsWith(src)));
    }
    expect(all.filter((file) => !reached.has(file) && !isBarrel(file)).map((file) => relative(root, file))).toEqual([]);
  });

  it('no module under src/ imports from test/', () => {
    const offenders = all.filter((file) => imports(file).some((target) => target.startsWith(join(root, 'test'))));
    expect(offenders.map((file) => relative(root, file))).toEqual([]);
  });
});
