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

/** Client endpoints that a PROXY protocol header named, by connection. */
const proxiedPeers = new WeakMap<net.Socket, { address: string; port: number }>();

/** Records the client endpoint a PROXY protocol header gave for this connection. */
export function setProxiedPeer(socket: net.Socket, peer: { address: string; port: number }): void {
  proxiedPeers.set(socket, peer);
}

/** The client's IP: the one a PROXY protocol header named, else the socket's own peer. */
export function peerHost(socket: net.Socket): string | undefined {
  return proxiedPeers.get(socket)?.address ?? socket.remoteAddress;
}

/** `host:port` of the client (see peerHost), with IPv6 hosts in brackets. */
export function peerAddress(socket: net.Socket): string {
  const proxied = proxiedPeers.get(socket);
  const host = proxied?.address ?? socket.remoteAddress ?? 'unknown';
  const port = proxied ? proxied.port : socket.remotePort;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
