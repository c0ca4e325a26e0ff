// One watch request: a GET with watch=true whose body is a stream of JSON lines, each
// `{"type": ..., "object": ...}`. Each line is handed on as it arrives; the end of the stream, clean
// or not, is reported once.

import type http from 'node:http';
import { HttpStatusError, startGet, statusMessage, type ApiConnection } from './connection.js';
import { messageOf } from '../values.js';

export interface WatchStreamHandle {
  /** Closes the stream; `onEnd` is not called for a stream the caller closed. */
  abort(): void;
}

/**
 * Opens the watch; resolves once the apiserver answered, rejects when the request could not be
 * made. After that `onEnd` is called once: `undefined` for a clean end (the server's
 * timeoutSeconds ran out), the error otherwise: HttpStatusError for an answer other than 200 (410
 * for a resourceVersion too old), the connection lost, a line that is not JSON.
 */
export function openWatchStream(
  connection: ApiConnection,
  pathAndQuery: string,
  onEvent: (type: string, object: unknown) => void,
  onEnd: (error: unknown) => void,
): Promise<WatchStreamHandle> {
  return new Promise<WatchStreamHandle>((resolve, reject) => {
    let settled = false;
    let ended = false;
    let aborted = false;
    let request: http.ClientRequest | undefined;
    const path = pathAndQuery.split('?')[0] ?? pathAndQuery;

    const end = (error: unknown): void => {
      if (ended || aborted) return;
      ended = true;
      onEnd(error);
    };
    const fail = (error: unknown): void => {
      if (!settled) {
        settled = true;
        reject(error);
        return;
      }
      end(error);
    };

    const onResponse = (response: http.IncomingMessage): void => {
      const statusCode = response.statusCode ?? 0;
      response.setEncoding('utf8');
      settled = true;
      resolve({
        abort: () => {
          aborted = true;
          request?.destroy();
        },
      });
      if (statusCode !== 200) {
        let body = '';
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => end(new HttpStatusError(statusCode, `watch ${path}: ${statusMessage(statusCode, body)}`)));
        response.on('error', (error) => end(error));
        return;
      }
      let pending = '';
      response.on('data', (chunk: string) => {
        pending += chunk;
        let newline = pending.indexOf('\n');
        while (newline !== -1) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (line.trim() !== '' && !deliver(line)) return;
          newline = pending.indexOf('\n');
        }
      });
      response.on('end', () => {
        if (pending.trim() !== '' && !deliver(pending)) return;
        end(undefined);
      });
      response.on('error', (error) => end(error));
      response.on('aborted', () => end(new Error(`watch ${path}: connection closed by the server`)));
    };

    /** False when the line was not an event: the stream is closed and reported as failed. */
    const deliver = (line: string): boolean => {
      if (ended || aborted) return false;
      let event: unknown;
      try {
        event = JSON.parse(line);
      } catch (error: unknown) {
        end(new Error(`watch ${path}: not a JSON event: ${messageOf(error)}`));
        request?.destroy();
        return false;
      }
      const record = typeof event === 'object' && event !== null ? (event as Record<string, unknown>) : {};
      onEvent(typeof record['type'] === 'string' ? record['type'] : '', record['object']);
      return true;
    };

    startGet(connection, pathAndQuery, 'application/json', onResponse).then(({ request: started }) => {
      request = started;
      started.on('error', fail);
      started.on('close', () => {
        if (settled) end(new Error(`watch ${path}: connection closed`));
      });
      started.end();
    }, fail);
  });
}
