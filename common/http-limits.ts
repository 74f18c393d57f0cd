// Connection limits for the HTTP servers (Control API, admin API, health):
// a cap on open connections, a deadline for each request head, and a
// keep-alive idle timeout. Node's own headersTimeout only starts once a
// connection's first byte has arrived and is checked every 30 s, so a
// connection that never sends anything would be held for ever.
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import type net from 'node:net';
import ipaddr from 'ipaddr.js';
import { envInteger } from './env.ts';

export interface HttpLimits {
  /** Open connections at most; past it an idle one is closed for the newcomer, or the newcomer is. */
  maxConnections: number;
  /** Time from connect (or from the previous answer) until a request head is complete. */
  headerTimeoutMs: number;
  /** How long a kept-alive connection may wait for its next request. */
  idleTimeoutMs: number;
}

/** Connection-cap default: at most 4,096, and at most a quarter of the process's descriptor limit. */
export function defaultMaxConnections(openFileLimit = softOpenFileLimit()): number {
  return Math.max(16, Math.min(4096, Math.floor(openFileLimit / 4)));
}

/** The soft RLIMIT_NOFILE from /proc (Linux); Infinity where it cannot be read. */
export function softOpenFileLimit(): number {
  try {
    const line = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const value = Number(line?.[1]);
    return Number.isFinite(value) && value > 0 ? value : Infinity;
  } catch {
    return Infinity;
  }
}

export function httpLimitsFromEnv(env: NodeJS.ProcessEnv): HttpLimits {
  return {
    maxConnections: envInteger(env, 'CCCP_HTTP_MAX_CONNECTIONS', defaultMaxConnections(), 1, 1_000_000),
    headerTimeoutMs: envInteger(env, 'CCCP_HTTP_HEADER_TIMEOUT_S', 10, 1, 300) * 1000,
    idleTimeoutMs: envInteger(env, 'CCCP_HTTP_IDLE_TIMEOUT_S', 5, 1, 3600) * 1000,
  };
}

export interface ConnectionCounts {
  open: number;
  /** New connections closed at once because every slot held a request in progress. */
  refused: number;
  /** Idle connections closed to make room for a new one. */
  evicted: number;
  /** Connections closed because their request head was not complete in time, or they idled too long. */
  timedOut: number;
}

interface Connection {
  /** Where it comes from (see `sourceOf`). */
  source: string;
  /** Requests received and not yet answered. */
  inFlight: number;
  /** Requests answered on this connection. */
  answered: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The source a connection is counted under: its IPv4 address, or the /64 of
 * an IPv6 one (a single host usually holds a whole /64).
 */
export function sourceOf(address: string | undefined): string {
  if (!address) return '';
  if (!address.includes(':')) return address;
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  try {
    return `${ipaddr.IPv6.parse(address)
      .parts.slice(0, 4)
      .map((part) => part.toString(16))
      .join(':')}::/64`;
  } catch {
    return address;
  }
}

/** Idle connections, oldest first (a Set keeps insertion order): those that never sent a request, then those kept alive after an answer. */
class IdleSets {
  readonly fresh = new Set<net.Socket>();
  readonly kept = new Set<net.Socket>();

  get size(): number {
    return this.fresh.size + this.kept.size;
  }

  oldestFresh(): net.Socket | undefined {
    return this.fresh.values().next().value;
  }

  oldestKept(): net.Socket | undefined {
    return this.kept.values().next().value;
  }
}

/**
 * Applies `limits` to `server`. A connection without a request in progress
 * is *idle*. When the cap is reached, a newcomer makes room by closing a
 * connection that never sent a request: the oldest of its own source (its
 * address, or its /64 in IPv6) if that source holds one, else the oldest of
 * any source. Only when there is none does a kept-alive connection go, in
 * the same order. So a flood from one source, even one that reconnects as
 * fast as it is closed, only ever closes its own silent connections and
 * cannot lock out clients elsewhere, and a client's kept-alive connections
 * outlast silent ones wherever they come from. When every slot holds a
 * request in progress, the newcomer is closed. The count is kept here, not
 * by Node's maxConnections, whose count lags behind closes and would turn a
 * legitimate client away during a churn.
 */
export function limitConnections(
  server: http.Server,
  limits: HttpLimits,
  onPressure?: (event: 'refused' | 'evicted' | 'timed-out') => void,
): ConnectionCounts {
  const counts: ConnectionCounts = { open: 0, refused: 0, evicted: 0, timedOut: 0 };
  const connections = new Map<net.Socket, Connection>();
  const idle = new IdleSets();
  const idleBySource = new Map<string, IdleSets>();

  server.headersTimeout = limits.headerTimeoutMs;
  server.requestTimeout = Math.max(limits.headerTimeoutMs, 30_000);
  server.keepAliveTimeout = limits.idleTimeoutMs;

  const close = (socket: net.Socket, why: 'refused' | 'evicted' | 'timed-out') => {
    if (why === 'refused') counts.refused++;
    else if (why === 'evicted') counts.evicted++;
    else counts.timedOut++;
    onPressure?.(why);
    socket.destroy();
  };

  const makeIdle = (socket: net.Socket, connection: Connection, timeoutMs: number) => {
    clearTimeout(connection.timer);
    let own = idleBySource.get(connection.source);
    if (!own) {
      own = new IdleSets();
      idleBySource.set(connection.source, own);
    }
    for (const sets of [idle, own]) (connection.answered === 0 ? sets.fresh : sets.kept).add(socket);
    connection.timer = setTimeout(() => close(socket, 'timed-out'), timeoutMs);
    connection.timer.unref();
  };

  const notIdle = (socket: net.Socket, connection: Connection) => {
    idle.fresh.delete(socket);
    idle.kept.delete(socket);
    const own = idleBySource.get(connection.source);
    if (!own) return;
    own.fresh.delete(socket);
    own.kept.delete(socket);
    if (own.size === 0) idleBySource.delete(connection.source);
  };

  server.on('connection', (socket: net.Socket) => {
    const source = sourceOf(socket.remoteAddress);
    if (connections.size >= limits.maxConnections) {
      // In a burst beyond the cap the oldest may have its request already
      // waiting in the kernel (Node accepts before it reads); taking from the
      // newcomer's own source first keeps a churning flood from closing
      // another source's connection before its request is read.
      const own = idleBySource.get(source);
      const evicted = own?.oldestFresh() ?? idle.oldestFresh() ?? own?.oldestKept() ?? idle.oldestKept();
      if (!evicted) return close(socket, 'refused');
      forget(evicted);
      close(evicted, 'evicted');
    }
    const connection: Connection = { source, inFlight: 0, answered: 0, timer: undefined };
    connections.set(socket, connection);
    counts.open = connections.size;
    makeIdle(socket, connection, limits.headerTimeoutMs);
    socket.once('close', () => forget(socket));
  });

  const forget = (socket: net.Socket) => {
    const connection = connections.get(socket);
    if (!connection) return;
    clearTimeout(connection.timer);
    connections.delete(socket);
    notIdle(socket, connection);
    counts.open = connections.size;
  };

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    const connection = connections.get(socket);
    if (!connection) return;
    connection.inFlight++;
    clearTimeout(connection.timer);
    connection.timer = undefined;
    notIdle(socket, connection);
    let done = false;
    const answered = () => {
      if (done) return;
      done = true;
      connection.inFlight--;
      connection.answered++;
      // The next head must be complete within the idle time plus the head
      // deadline; Node's keepAliveTimeout closes a silent one sooner.
      if (connection.inFlight === 0 && connections.has(socket) && !socket.destroyed) {
        makeIdle(socket, connection, limits.idleTimeoutMs + limits.headerTimeoutMs);
      }
    };
    res.once('finish', answered);
    res.once('close', answered);
  });

  return counts;
}
