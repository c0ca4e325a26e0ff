// An in-memory CommandIO for command tests: files from a record, stdout and stderr collected.

import type { CommandIO } from '../../src/cli/render-command.js';

export interface MemoryIO {
  readonly io: CommandIO;
  stdout(): string;
  stderr(): string;
}

export function memoryIO(files: Readonly<Record<string, string>>): MemoryIO {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      stdout: (text) => {
        stdout += text;
      },
      stderr: (text) => {
        stderr += text;
      },
      readTextFile: (path) => {
        const text = files[path];
        if (text === undefined) return Promise.reject(new Error(`ENOENT: no such file or directory, open '${path}'`));
        return Promise.resolve(text);
      },
    },
    stdout: () => stdout,
    stderr: () => stderr,
  };
}
