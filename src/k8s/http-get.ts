// One GET against the apiserver, answered as parsed JSON: the list side of a ListWatchSource. The
// body is parsed with JSON.parse and nothing else: the model reads objects as plain data, and a
// copy into generated API classes cost ~1 s of CPU and tens of MB at 10,000 Services x 10 endpoints.

import { HttpStatusError, startGet, statusMessage, type ApiConnection } from './connection.js';
import { messageOf } from '../values.js';

export interface GetJsonOptions {
  readonly connection: ApiConnection;
  /** Path with query, e.g. `/api/v1/services?limit=500`. */
  readonly path: string;
  /** Abort a request that has not finished after this long. */
  readonly timeoutMs: number;
}

export async function getJson(options: GetJsonOptions): Promise<unknown> {
  const { url, request } = await startGet(options.connection, options.path, 'application/json');
  return new Promise<unknown>((resolve, reject) => {
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        chunks.length = 0;
        const statusCode = response.statusCode ?? 0;
        if (statusCode < 200 || statusCode > 299) {
          reject(new HttpStatusError(statusCode, `GET ${url.pathname}: ${statusMessage(statusCode, body)}`));
          return;
        }
        try {
          resolve(JSON.parse(body));
        } catch (error: unknown) {
          reject(new Error(`GET ${url.pathname}: response is not JSON: ${messageOf(error)}`));
        }
      });
    });
    request.setTimeout(options.timeoutMs, () => request.destroy(new Error(`GET ${url.pathname}: no answer within ${options.timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}
