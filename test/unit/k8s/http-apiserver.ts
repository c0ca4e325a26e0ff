// A tiny HTTP stand-in for kube-apiserver on 127.0.0.1: lists from fixed items, holds watch
// streams open for the test to write events into. Proves the agent's real request path (query
// parameters, decoding, stream end) without a control plane.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { ApiConnection } from '../../../src/k8s/connection.js';

export interface RecordedRequest {
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
}

export class OpenWatch {
  constructor(
    readonly request: RecordedRequest,
    private readonly response: ServerResponse,
  ) {}

  get closed(): boolean {
    return this.response.destroyed || this.response.writableEnded;
  }

  send(type: string, object: unknown): void {
    this.response.write(`${JSON.stringify({ type, object })}\n`);
  }

  /** Raw bytes into the stream: partial lines, garbage. */
  write(text: string): void {
    this.response.write(text);
  }

  end(): void {
    this.response.end();
  }

  /** Drops the connection without a clean end, like a crashed apiserver. */
  destroy(): void {
    this.response.socket?.destroy();
  }
}

export class HttpApiserver {
  readonly requests: RecordedRequest[] = [];
  readonly watches: OpenWatch[] = [];
  /** Collection path -> list body (`items` and `metadata.resourceVersion`). */
  readonly lists = new Map<string, { items: unknown[]; resourceVersion: string; continue?: string }>();
  /** Status code to answer the next watch request with, instead of a stream. */
  failNextWatch: number | undefined;
  private server: Server | undefined;

  async start(): Promise<ApiConnection> {
    this.server = createServer((request, response) => this.serve(request, response));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    return { server: `http://127.0.0.1:${port}`, requestOptions: async () => ({}) };
  }

  async stop(): Promise<void> {
    for (const watch of this.watches) if (!watch.closed) watch.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  openWatches(path: string): OpenWatch[] {
    return this.watches.filter((watch) => watch.request.path === path && !watch.closed);
  }

  private serve(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const recorded: RecordedRequest = { path: url.pathname, query: Object.fromEntries(url.searchParams) };
    this.requests.push(recorded);
    if (url.searchParams.get('watch') === 'true') {
      if (this.failNextWatch !== undefined) {
        response.writeHead(this.failNextWatch, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ kind: 'Status', code: this.failNextWatch }));
        this.failNextWatch = undefined;
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.flushHeaders();
      this.watches.push(new OpenWatch(recorded, response));
      return;
    }
    const list = this.lists.get(url.pathname);
    if (list === undefined) {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ kind: 'Status', code: 404 }));
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({
        kind: 'List',
        apiVersion: 'v1',
        metadata: { resourceVersion: list.resourceVersion, ...(list.continue ? { continue: list.continue } : {}) },
        items: list.items,
      }),
    );
  }
}

export async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
