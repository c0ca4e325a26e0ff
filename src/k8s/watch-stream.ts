// One watch request: a GET with watch=true whose body is a stream of JSON lines, each
// `{"type": ..., "object": ...}`. Each line is handed on as it arrives; the end of the stream, clean
// or not, is reported once.

import { HttpStatusError, startGet, statusMessage, type ApiConnection } from './connection.js';
import { asRecord, asString, messageOf } from '../values.js';

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
export async function openWatchStream(
  connection: ApiConnection,
  pathAndQuery: string,
  onEvent: (type: string, object: unknown) => void,
  onEnd: (error: unknown) => void,
): Promise<WatchStreamHandle> {
  const { url, request } = await startGet(connection, pathAndQuery, 'application/json');
  const name = `watch ${url.pathname}`;
  let answered = false;
  let done = false;
  /** Reports the end once; nothing after the caller aborted. */
  const end = (error: unknown): void => {
    if (done) return;
    done = true;
    onEnd(error);
  };
  const handle: WatchStreamHandle = {
    abort: () => {
      done = true;
      request.destroy();
    },
  };

  /** False when the line was not an event: the stream is closed and reported as failed. */
  const deliver = (line: string): boolean => {
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch (error: unknown) {
      end(new Error(`${name}: not a JSON event: ${messageOf(error)}`));
      request.destroy();
      return false;
    }
    const record = asRecord(event);
    onEvent(asString(record['type']) ?? '', record['object']);
    return true;
  };

  return new Promise<WatchStreamHandle>((resolve, reject) => {
    request.on('response', (response) => {
      answered = true;
      resolve(handle);
      response.setEncoding('utf8');
      response.on('error', end);
      const statusCode = response.statusCode ?? 0;
      if (statusCode !== 200) {
        let body = '';
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => end(new HttpStatusError(statusCode, `${name}: ${statusMessage(statusCode, body)}`)));
        return;
      }
      // The tail of the last chunk that is not a whole line yet.
      let pending = '';
      response.on('data', (chunk: string) => {
        const text = pending + chunk;
        let start = 0;
        for (let newline = text.indexOf('\n'); newline !== -1; newline = text.indexOf('\n', start)) {
          const line = text.slice(start, newline);
          start = newline + 1;
          if (done) return;
          if (line.trim() !== '' && !deliver(line)) return;
        }
        pending = text.slice(start);
      });
      response.on('end', () => {
        if (done || (pending.trim() !== '' && !deliver(pending))) return;
        end(undefined);
      });
    });
    request.on('error', (error) => (answered ? end(error) : reject(error)));
    // A connection dropped without a clean end of the body (a crashed apiserver, a proxy).
    request.on('close', () => {
      if (answered) end(new Error(`${name}: connection closed`));
    });
    request.end();
  });
}
