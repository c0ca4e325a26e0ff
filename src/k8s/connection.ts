// How the agent reaches the apiserver: its URL and, per request, the TLS material and credentials
// to use. Built from a kubeconfig or the pod's service account (kubeconfig.ts); the list and watch
// requests (http-get.ts, watch-stream.ts) use nothing else.

import http from 'node:http';
import https from 'node:https';

export interface ApiConnection {
  /** The apiserver's URL as configured, e.g. `https://10.96.0.1:443`; may carry a path prefix. */
  readonly server: string;
  /**
   * Options for one request (CA, client certificate, Authorization header, agent). Asked for every
   * request, because a service account token is a file the kubelet rotates.
   */
  requestOptions(): Promise<https.RequestOptions>;
}

/** The URL of `pathAndQuery` on the connection's server, keeping a server path prefix. */
export function apiUrl(connection: ApiConnection, pathAndQuery: string): URL {
  const base = new URL(connection.server);
  return new URL(`${base.pathname.replace(/\/$/, '')}${pathAndQuery}`, base.origin);
}

/** Starts one GET (not yet ended): the caller listens for its `response` and `error`, then ends it. */
export async function startGet(
  connection: ApiConnection,
  pathAndQuery: string,
  accept: string,
): Promise<{ url: URL; request: http.ClientRequest }> {
  const url = apiUrl(connection, pathAndQuery);
  const options = await connection.requestOptions();
  const requestOptions: https.RequestOptions = { ...options, method: 'GET', headers: { ...options.headers, Accept: accept } };
  const request = (url.protocol === 'http:' ? http : https).request(url, requestOptions);
  return { url, request };
}

/** The message of a failed request: the `Status` object's message when the body is one. */
export function statusMessage(statusCode: number, body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string' && status.message !== '') return `HTTP ${statusCode}: ${status.message}`;
  } catch {
    // not a Status object
  }
  return `HTTP ${statusCode}${body.trim() === '' ? '' : `: ${body.trim().slice(0, 200)}`}`;
}

export class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}
