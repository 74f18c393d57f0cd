// Socket helpers both parts use.
import type net from 'node:net';

/**
 * Starts a server listening and settles once: resolved when it listens,
 * rejected with the first error (EADDRINUSE, EACCES, a port out of range).
 */
export function listen(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    try {
      server.listen(options, () => {
        server.off('error', onError);
        resolve();
      });
    } catch (err) {
      // Node throws synchronously for some bad options, e.g. a port above 65535.
      server.off('error', onError);
      reject(err);
    }
  });
}

/** `host:port`, with IPv6 hosts in brackets. */
export function peerAddress(socket: net.Socket): string {
  const host = socket.remoteAddress ?? 'unknown';
  return host.includes(':') ? `[${host}]:${socket.remotePort}` : `${host}:${socket.remotePort}`;
}
