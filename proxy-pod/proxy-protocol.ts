// PROXY protocol on the device port and the session ports: a load balancer
// that rewrites source addresses (externalTrafficPolicy Cluster) puts the
// client's real address in a header before the connection's first byte. The
// gate reads that header from each accepted connection under a deadline,
// records the address it names (common/sockets.ts peerHost/peerAddress, which
// the whitelist, the allowlist, status and logs use), and only then hands the
// connection on, with any bytes that followed the header. A connection
// without a valid header is closed before a byte of it reaches anyone.
import type net from 'node:net';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { peerAddress, setProxiedPeer } from '../common/sockets.ts';
import { AddressMatcher } from './address-matcher.ts';
import type { ProxyMetrics } from './metrics.ts';
import { type HeaderRejection, ProxyHeaderParser, type ProxyProtocolMode } from './proxy-header.ts';

export interface ProxyProtocolSettings {
  /** The header expected on the device port. */
  device: ProxyProtocolMode;
  /** The header expected on every session port. */
  sessions: ProxyProtocolMode;
  /** Sources (the load balancers) allowed to connect where a header is expected; empty trusts every source. */
  trustedSources: string[];
  /** Time from connect until the header is complete. */
  headerTimeoutMs: number;
}

export const PROXY_PROTOCOL_OFF: ProxyProtocolSettings = { device: 'off', sessions: 'off', trustedSources: [], headerTimeoutMs: 5000 };

/** For the start-up log line: what is expected where, and from whom. */
export function describeProxyProtocol(settings: ProxyProtocolSettings): Record<string, unknown> {
  if (settings.device === 'off' && settings.sessions === 'off') return { device: 'off', sessions: 'off' };
  return {
    device: settings.device,
    sessions: settings.sessions,
    trustedSources: settings.trustedSources.length > 0 ? settings.trustedSources : 'any',
    headerTimeoutS: settings.headerTimeoutMs / 1000,
  };
}

export type HeaderListener = 'device' | 'session';

export type HeaderRefusal = HeaderRejection | 'untrusted-source' | 'timeout' | 'closed-early' | 'overload';

export interface ProxyProtocolGateOptions {
  settings: ProxyProtocolSettings;
  /** Connections waiting for their header, over all listeners, beyond which new ones are closed. */
  maxWaiting: number;
  metrics: ProxyMetrics;
  logger: Logger;
  summary: LogSummary;
  clock: Clock;
}

export class ProxyProtocolGate {
  private readonly trusted: AddressMatcher;
  /** Connections still waiting for their header, with what stops the wait. */
  private readonly waiting = new Map<net.Socket, () => void>();

  constructor(private readonly opts: ProxyProtocolGateOptions) {
    this.trusted = new AddressMatcher(opts.settings.trustedSources);
  }

  /**
   * The connection listener for a server of `listener`'s kind: `next` as it
   * is when no header is expected there, else a listener that reads the
   * header first and then calls `next` with the socket.
   */
  accepting(listener: HeaderListener, next: (socket: net.Socket) => void): (socket: net.Socket) => void {
    const mode = listener === 'device' ? this.opts.settings.device : this.opts.settings.sessions;
    if (mode === 'off') return next;
    return (socket) => this.readHeader(socket, listener, mode, next);
  }

  /** Closes the connections still waiting for their header. */
  close(): void {
    for (const [socket, stopWaiting] of [...this.waiting]) {
      stopWaiting();
      socket.destroy();
    }
  }

  private readHeader(
    socket: net.Socket,
    listener: HeaderListener,
    mode: Exclude<ProxyProtocolMode, 'off'>,
    next: (socket: net.Socket) => void,
  ): void {
    const ignoreError = () => {};
    socket.on('error', ignoreError);
    // The spec: only trusted senders may speak for a client's address.
    if (!this.trusted.admits(socket.remoteAddress)) {
      this.refuse(socket, listener, 'untrusted-source');
      return;
    }
    if (this.waiting.size >= this.opts.maxWaiting) {
      this.refuse(socket, listener, 'overload');
      return;
    }
    const parser = new ProxyHeaderParser(mode);
    const done = () => {
      this.opts.clock.clearTimeout(deadline);
      socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', ignoreError);
      this.waiting.delete(socket);
    };
    const deadline = this.opts.clock.setTimeout(
      () => {
        done();
        this.refuse(socket, listener, 'timeout');
      },
      this.opts.settings.headerTimeoutMs,
      { keepAlive: true },
    );
    const onEnd = () => {
      done();
      this.refuse(socket, listener, 'closed-early');
    };
    const onData = (chunk: Buffer) => {
      const step = parser.push(chunk);
      if (step.kind === 'incomplete') return;
      done();
      if (step.kind === 'rejected') {
        this.refuse(socket, listener, step.reason);
        return;
      }
      if (step.source) setProxiedPeer(socket, step.source);
      next(socket);
      // The bytes after the header go back to the stream, in front of what is
      // still to come, for whoever `next` made the reader (a device's serial
      // line often shares the header's segment).
      if (step.rest.length > 0 && !socket.destroyed && !socket.readableEnded) socket.unshift(step.rest);
    };
    this.waiting.set(socket, done);
    socket.on('data', onData).on('end', onEnd).on('close', onEnd);
  }

  private refuse(socket: net.Socket, listener: HeaderListener, reason: HeaderRefusal): void {
    const peer = peerAddress(socket);
    socket.destroy();
    this.opts.metrics.proxyHeadersRefused.inc({ listener, reason });
    // Rate-limited: anyone who reaches the port can cause it, and it is what a
    // load balancer that does not send the header looks like.
    this.opts.summary.warn({ listener, peer, reason }, 'connection closed: no valid PROXY protocol header');
  }
}
