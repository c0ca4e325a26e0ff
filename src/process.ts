// Runs a program to completion with its output as a value: the one process runner for every edge
// that drives a tool (iptables, conntrack, nfacct, sysctl readers). Never throws.

import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';

export interface ProcessOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Kill the process (SIGKILL) after this long; it then resolves with code TIMED_OUT. */
  readonly timeoutMs?: number;
}

/** The code a run killed by its `timeoutMs` resolves with (as coreutils `timeout`). */
export const TIMED_OUT = 124;

/**
 * Runs a command to completion, `input` (or its pieces, in order) on stdin. Resolves (code 127)
 * when it cannot start, (code TIMED_OUT) when killed after `options.timeoutMs`.
 */
export type ProcessRunner = (command: string, args: readonly string[], input?: string | Iterable<string>, options?: RunOptions) => Promise<ProcessOutput>;

export const runProcess: ProcessRunner = (command, args, input, options) =>
  new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let timedOut = false;
    const timer =
      options?.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs)
        : undefined;
    // Chunks, not string +=: iptables-save of a large node is tens of MB.
    const stdout: string[] = [];
    const stderr: string[] = [];
    let settled = false;
    const finish = (output: ProcessOutput): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      resolve(timedOut ? { code: TIMED_OUT, stdout: output.stdout, stderr: `${output.stderr}killed after ${options?.timeoutMs} ms` } : output);
    };
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => stdout.push(chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
    child.on('error', (error) => finish({ code: 127, stdout: stdout.join(''), stderr: stderr.join('') + error.message }));
    child.on('close', (code) => finish({ code: code ?? 1, stdout: stdout.join(''), stderr: stderr.join('') }));
    if (child.stdin !== null && input !== undefined) {
      // iptables-restore exits early on a bad line; the EPIPE that follows is not our failure.
      child.stdin.on('error', () => undefined);
      writeInSlices(child.stdin, typeof input === 'string' ? [input] : input);
    }
  });

/** Bytes of input encoded at a time: a full payload (~40 MB at 10k Services) is never copied whole. */
const STDIN_SLICE = 1 << 20;

/**
 * Writes the pieces in order, pulling each from the iterable only when the pipe has room (a full
 * payload is generated while iptables-restore reads it), and cutting long pieces into slices of
 * about STDIN_SLICE after a newline: handing a whole payload to write() would encode all of it into
 * one more Buffer the size of the payload.
 */
function writeInSlices(stdin: Writable, pieces: Iterable<string>): void {
  const iterator = pieces[Symbol.iterator]();
  let text = '';
  let offset = 0;
  let ahead: IteratorResult<string> | undefined;
  const pull = (): IteratorResult<string> => {
    const result = ahead ?? iterator.next();
    ahead = undefined;
    return result;
  };
  const next = (): void => {
    for (;;) {
      if (offset >= text.length) {
        const piece = pull();
        if (piece.done === true) break;
        text = piece.value;
        offset = 0;
        continue;
      }
      let end = Math.min(offset + STDIN_SLICE, text.length);
      if (end < text.length) {
        const newline = text.lastIndexOf('\n', end - 1);
        if (newline >= offset) end = newline + 1;
      }
      const slice = offset === 0 && end === text.length ? text : text.slice(offset, end);
      offset = end;
      if (!stdin.write(slice)) {
        // Generate the next piece while the reader works through what is buffered.
        if (offset >= text.length && ahead === undefined) ahead = iterator.next();
        stdin.once('drain', next);
        return;
      }
    }
    stdin.end();
  };
  next();
}
