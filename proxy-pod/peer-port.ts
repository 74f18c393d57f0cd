// The peer port, inbound: other proxy pods of the release offer devices that
// registered with them for a session this pod holds, and announce sessions
// they created (see peer-protocol.ts). A connection whose first line is not
// a well-formed request with the admin token is closed and counted; it never
// reaches a session.
import net from 'node:net';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { listen, peerAddress, setProxiedPeer } from '../common/sockets.ts';
import type { RegisteredDevice } from './device-registry.ts';
import type { PeerMetrics } from './peer-metrics.ts';
import { ACCEPTED, DECLINED, type DeviceOffer, LineReader, type PeerRefusal, parseRequest, tokenDigest } from './peer-protocol.ts';
import { adoptReads } from './read-buffers.ts';
import { isValidSerial } from './registration.ts';

/** Time from connect to the end of the request line. */
const REQUEST_TIMEOUT_MS = 5_000;
/**
 * Connections that have not sent their request yet. Each pod offers at most
 * MAX_OFFERS_IN_FLIGHT at once, so peers stay far below this; a flood from
 * elsewhere is refused here instead of exhausting descriptors.
 */
const MAX_WAITING_REQUESTS = 1_024;
/** A declined or finished connection that the sender leaves open is closed after this. */
const CLOSE_GRACE_MS = 5_000;
/** A wanted-notice connection with no line for this long is closed. */
const NOTICE_IDLE_MS = 10_000;

export interface PeerPortHooks {
  hasLiveSession(serial: string): boolean;
  /** Attaches the device to this pod's live session of its serial. */
  attachLocal(device: RegisteredDevice): boolean;
  /** The pod `from` created a session for `serial` and had no device for it. */
  wanted(serial: string, from: number): void;
  /** An authenticated request came from the pod of this ordinal. */
  heardFrom(ordinal: number): void;
}

export interface PeerPortOptions {
  port: number;
  bindHost?: string;
  token: string;
  metrics: PeerMetrics;
  logger: Logger;
  summary: LogSummary;
}

export class PeerPort {
  private readonly server: net.Server;
  private readonly expectedToken: Buffer;
  private readonly waiting = new Set<net.Socket>();
  private readonly notices = new Set<net.Socket>();

  constructor(
    private readonly opts: PeerPortOptions,
    private readonly hooks: PeerPortHooks,
  ) {
    this.expectedToken = tokenDigest(opts.token);
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(adoptReads(socket)));
    this.server.on('error', (err) => opts.logger.error({ err }, 'peer port error'));
  }

  async listen(): Promise<number> {
    await listen(this.server, { port: this.opts.port, host: this.opts.bindHost });
    return (this.server.address() as net.AddressInfo).port;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of [...this.waiting, ...this.notices]) socket.destroy();
    await closed;
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => {});
    if (this.waiting.size >= MAX_WAITING_REQUESTS) {
      this.refuse(socket, 'overload');
      return;
    }
    this.waiting.add(socket);
    const reader = new LineReader();
    const done = () => {
      clearTimeout(deadline);
      // Paused before the handler goes: a flowing socket without one loses bytes.
      socket.pause();
      socket.off('data', onData).off('end', onGone).off('close', onGone);
      this.waiting.delete(socket);
    };
    const deadline = setTimeout(() => {
      done();
      this.refuse(socket, 'timeout');
    }, REQUEST_TIMEOUT_MS);
    const onGone = () => {
      done();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      const step = reader.push(chunk);
      if (step.kind === 'incomplete') return;
      done();
      if (step.kind === 'too-long') return this.refuse(socket, 'too-long');
      const parsed = parseRequest(step.line, this.expectedToken);
      if (!parsed.ok) return this.refuse(socket, parsed.reason);
      this.hooks.heardFrom(parsed.request.from);
      if (parsed.request.kind === 'offer') this.onOffer(socket, parsed.request, step.rest);
      else this.onNotice(socket, parsed.request.from, step.rest);
    };
    socket.on('data', onData).on('end', onGone).on('close', onGone);
  }

  /**
   * Answers before attaching, in the same turn: nothing the session sends can
   * precede "accepted", since it writes to a device only when a client's
   * bytes arrive, in a later turn.
   */
  private onOffer(socket: net.Socket, offer: DeviceOffer, rest: Buffer): void {
    if (!this.hooks.hasLiveSession(offer.serial)) {
      this.opts.metrics.offersReceived.inc({ result: 'declined' });
      this.closeGracefully(socket, `${DECLINED}\n`);
      return;
    }
    socket.write(`${ACCEPTED}\n`);
    setProxiedPeer(socket, { address: offer.deviceHost, port: offer.devicePort });
    this.opts.metrics.offersReceived.inc({ result: 'accepted' });
    this.opts.summary.info({ serial: offer.serial, device: peerAddress(socket) }, 'device joined from a peer');
    this.hooks.attachLocal({ serial: offer.serial, socket, payload: rest, endedWithCr: offer.awaitingLf });
  }

  private onNotice(socket: net.Socket, from: number, rest: Buffer): void {
    this.notices.add(socket);
    const reader = new LineReader();
    const take = (chunk: Buffer): boolean => {
      let step = reader.push(chunk);
      while (step.kind === 'line') {
        if (!isValidSerial(step.line)) return false;
        this.hooks.wanted(step.line, from);
        step = reader.push(step.rest);
      }
      return step.kind === 'incomplete';
    };
    const forget = () => this.notices.delete(socket);
    socket.setTimeout(NOTICE_IDLE_MS, () => socket.destroy());
    socket.on('close', forget);
    socket.on('end', () => socket.end());
    socket.on('data', (chunk: Buffer) => {
      if (!take(chunk)) this.refuse(socket, 'malformed');
    });
    if (take(rest)) socket.resume();
    else this.refuse(socket, 'malformed');
  }

  /** Sends the last line, reads (and drops) what still comes, and closes once the sender has. */
  private closeGracefully(socket: net.Socket, last: string): void {
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.once('close', () => clearTimeout(timer));
    socket.on('data', () => {});
    socket.on('end', () => socket.destroy());
    socket.resume();
    socket.end(last);
  }

  private refuse(socket: net.Socket, reason: PeerRefusal): void {
    this.opts.metrics.refused.inc({ reason });
    this.opts.summary.warn({ peer: peerAddress(socket), reason }, 'peer-port connection refused');
    socket.destroy();
  }
}
