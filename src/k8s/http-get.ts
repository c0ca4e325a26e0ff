// One GET against the apiserver, answered as parsed JSON: the list side of a ListWatchSource.
// client-node supplies the connection (TLS, credentials, proxies) through its KubeConfig; the
// body is parsed with JSON.parse and nothing else. Its generated API classes would copy every
// object once more into model instances (Dates, classes): at 10,000 Services x 10 endpoints that
// copy cost ~1 s of CPU at startup and tens of MB of heap for objects the model reads as plain data.

import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface GetJsonOptions {
  readonly kubeConfig: KubeConfig;
  /** Path with query, e.g. `/api/v1/services?limit=500`. */
  readonly path: string;
  /** Abort a request that has not finished after this long. */
  readonly timeoutMs: number;
}

function statusMessage(statusCode: number, body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string' && status.message !== '') return `HTTP ${statusCode}: ${status.message}`;
  } catch {
    // not a Status object
  }
  return `HTTP ${statusCode}${body.trim() === '' ? '' : `: ${body.trim().slice(0, 200)}`}`;
}

export async function getJson(options: GetJsonOptions): Promise<unknown> {
  const server = options.kubeConfig.getCurrentCluster()?.server;
  if (server === undefined || server === '') throw new Error('the kubeconfig names no server');
  const base = new URL(server);
  // A server URL with a path prefix (an apiserver behind a proxy) keeps it.
  const url = new URL(`${base.pathname.replace(/\/$/, '')}${options.path}`, base.origin);
  const requestOptions: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await options.kubeConfig.applyToHTTPSOptions(requestOptions);
  const transport = url.protocol === 'http:' ? http : https;
  return new Promise<unknown>((resolve, reject) => {
    const request = transport.request(url, requestOptions, (response) => {
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
          reject(new Error(`GET ${url.pathname}: response is not JSON: ${error instanceof Error ? error.message : String(error)}`));
        }
      });
    });
    request.setTimeout(options.timeoutMs, () => request.destroy(new Error(`GET ${url.pathname}: no answer within ${options.timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}
