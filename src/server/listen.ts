// Starting and stopping one node:http server on a bind address, as a value the caller can close.

import type { Server } from 'node:http';
import { parseBindAddress } from '../config/address.js';
import type { BindAddress } from '../config/types.js';

export interface RunningServer {
  readonly host: string;
  /** The port actually bound (the kernel's choice when 0 was asked for). */
  readonly port: number;
  /** Stops listening and drops open (keep-alive) connections, which would otherwise hold it open. */
  close(): Promise<void>;
}

/** A `host:port` string or a parsed address; a malformed string is a programmer error. */
export function toBindAddress(address: string | BindAddress): BindAddress {
  if (typeof address !== 'string') return address;
  const parsed = parseBindAddress(address);
  if ('reason' in parsed) throw new Error(`invalid bind address ${JSON.stringify(address)}: ${parsed.reason}`);
  return parsed;
}

export interface ListenOptions {
  /** For an IPv6 host, take IPv6 only (`::` then leaves IPv4 to a server on `0.0.0.0`); by default
   * `::` takes both families (Linux's default, as Go listens). */
  readonly ipv6Only?: boolean;
}

/** Resolves once listening; rejects with the listen error (e.g. code EADDRINUSE) otherwise. */
export function listen(server: Server, address: BindAddress, options: ListenOptions = {}): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      const bound = server.address();
      const port = bound !== null && typeof bound === 'object' ? bound.port : address.port;
      resolve({ host: address.host, port, close: () => closeServer(server) });
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: address.host, port: address.port, ...(options.ipv6Only === true ? { ipv6Only: true } : {}) });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
