// One session: its listener for clients, the device and client slots, and
// the join between them.
//
// Forwarding is explicit rather than `pipe()`: a party can be replaced or be
// absent at any moment, bytes for an absent party are dropped and counted, and
// a write that the receiver cannot take yet pauses the sender until 'drain'
// (so memory per direction stays near one socket buffer).
import net from 'node:net';
import type { EndedReason, SessionSpec, SessionState, SideState } from '../common/admin-protocol.ts';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { listen, peerAddress, peerHost } from '../common/sockets.ts';
import { AddressMatcher } from './address-matcher.ts';
import { COARSE_TICK_MS, coarseNowMs, refreshCoarseClock, startCoarseClock } from './coarse-clock.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ProxyProtocolGate } from './proxy-protocol.ts';

export type Side = 'device' | 'client';

export interface SessionEvent {
  type: 'device-connected' | 'device-disconnected' | 'client-connected' | 'client-disconnected' | 'client-refused' | 'session-ended';
  serial: string;
  id: string;
  address?: string;
  reason?: string;
}

export interface SessionContext {
  bindHost?: string;
  metrics: ProxyMetrics;
  logger: Logger;
  /** For the lines a peer can cause at will (connects, refusals): rate-limited. */
  summary: LogSummary;
  /** How long an ending session waits for a party to take its last bytes. */
  lingerMs: number;
  /** TCP keepalive idle time of device and client sockets. */
  keepaliveIdleMs: number;
  /** A party that takes none of the bytes waiting for it for this long is disconnected; 0 turns it off. */
  sendTimeoutMs: number;
  emit(event: SessionEvent): void;
  clock: Clock;
  /** Reads a PROXY protocol header before the whitelist, when session ports expect one. */
  proxyProtocol?: ProxyProtocolGate;
}

export class PortUnavailableError extends Error {
  constructor(
    readonly port: number,
    cause: unknown,
  ) {
    super(`port ${port} cannot be bound: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'PortUnavailableError';
  }
}

const LF = 0x0a;

interface PartyHandlers {
  data(chunk: Buffer): void;
  end(): void;
  close(): void;
  error(err: Error): void;
}

/** A connected device or client, and the bookkeeping of its stream. */
class Party {
  /** The sender paused because this party's socket buffer is full. */
  blockedSender: Party | undefined;
  /**
   * The device's line ending was a CR at the end of a read: an LF arriving
   * as the very next byte completes a CRLF and is not payload. Cleared by the
   * first byte in either direction, since after the client has spoken a
   * leading LF may be a real answer.
   */
  awaitingLf = false;
  /** Runs while bytes wait for this party and it takes none: Node cannot set TCP_USER_TIMEOUT. */
  sendTimer: NodeJS.Timeout | undefined;

  private handlers: PartyHandlers | undefined;

  constructor(
    readonly side: Side,
    readonly socket: net.Socket,
    readonly address: string,
  ) {}

  /** Registers the session's handlers; `unlisten` removes exactly these (net.Socket has its own). */
  listen(handlers: PartyHandlers): void {
    this.handlers = handlers;
    this.socket.on('data', handlers.data).on('end', handlers.end).on('close', handlers.close).on('error', handlers.error);
  }

  unlisten(): void {
    const h = this.handlers;
    if (h) this.socket.off('data', h.data).off('end', h.end).off('close', h.close).off('error', h.error);
    this.handlers = undefined;
    // A late error on a socket we let go must not become an uncaught exception.
    this.socket.on('error', () => {});
  }
}

/** What one side has done over the session's life, across its reconnects. */
class SideRecord {
  forwarded = 0;
  dropped = 0;
  /** ISO time of the current connection, taken on connect. */
  connectedSince: string | undefined;
  /** coarseNowMs of the last byte received from this side; 0 if none yet. */
  lastActivityMs = 0;
  // state() runs for every session on every status poll: format a time only when it moved.
  private formattedMs = 0;
  private formatted = '';

  state(): SideState {
    const state: SideState = { forwardedBytes: this.forwarded, droppedBytes: this.dropped };
    if (this.connectedSince) state.connectedSince = this.connectedSince;
    if (this.lastActivityMs > 0) {
      if (this.formattedMs !== this.lastActivityMs) {
        this.formattedMs = this.lastActivityMs;
        this.formatted = new Date(this.lastActivityMs).toISOString();
      }
      state.lastActivity = this.formatted;
    }
    return state;
  }
}

export class Session {
  private spec: SessionSpec;
  private whitelist: AddressMatcher;
  private readonly server: net.Server;
  private readonly parties: Record<Side, Party | undefined> = { device: undefined, client: undefined };
  private clientEverConnected = false;
  private timeoutTimer: unknown;
  private readonly sides: Record<Side, SideRecord> = { device: new SideRecord(), client: new SideRecord() };
  private clientsRefused = 0;
  /** coarseNowMs of the last forwarded byte or connect: what the idle timeout measures from. */
  private lastUseMs = coarseNowMs;
  private idleTimer: unknown;
  private lifetimeTimer: unknown;
  private listeningSince = new Date();
  private endedAt: Date | undefined;
  private endedReason: EndedReason | undefined;

  constructor(
    readonly serial: string,
    spec: SessionSpec,
    private readonly ctx: SessionContext,
  ) {
    this.spec = { ...spec, ipWhitelist: [...spec.ipWhitelist] };
    this.whitelist = new AddressMatcher(spec.ipWhitelist);
    startCoarseClock();
    // keepAlive is set per socket with its idle time (without one the kernel's 2 h default stays).
    const onClient = (socket: net.Socket) => this.onClient(socket);
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, ctx.proxyProtocol?.accepting('session', onClient) ?? onClient);
    this.server.on('error', (err) => this.ctx.logger.error({ serial, err }, 'session listener error'));
  }

  get id(): string {
    return this.spec.id;
  }

  get port(): number {
    return this.spec.port;
  }

  get live(): boolean {
    return this.endedReason === undefined;
  }

  /** Binds the session's port; rejects with PortUnavailableError. */
  async listen(): Promise<void> {
    await listen(this.server, { port: this.spec.port, host: this.ctx.bindHost, exclusive: true }).catch((err: unknown) => {
      throw new PortUnavailableError(this.spec.port, err);
    });
    this.listeningSince = new Date(this.ctx.clock.now());
    this.lastUseMs = refreshCoarseClock();
    this.armTimeout();
    this.armLimits();
  }

  /** Applies new parameters to the live session; the port never changes here. */
  update(spec: SessionSpec): void {
    const timeoutChanged = spec.timeoutSeconds !== this.spec.timeoutSeconds;
    const limitsChanged = spec.notAfter !== this.spec.notAfter || spec.idleTimeoutSeconds !== this.spec.idleTimeoutSeconds;
    this.spec = { ...spec, ipWhitelist: [...spec.ipWhitelist] };
    this.whitelist = new AddressMatcher(spec.ipWhitelist);
    const client = this.parties.client;
    if (client && !this.whitelist.admits(peerHost(client.socket))) {
      this.ctx.logger.info({ serial: this.serial, client: client.address }, 'client no longer whitelisted');
      this.detach(client, 'no longer whitelisted');
      client.socket.destroy();
    }
    // A changed timeout counts from when it was set; an unchanged one (a
    // retried /on) leaves the running timer alone.
    if (timeoutChanged) this.armTimeout();
    if (limitsChanged) this.armLimits();
  }

  attachDevice(socket: net.Socket, payload: Buffer, endedWithCr: boolean): void {
    const device = this.attach('device', socket);
    device.awaitingLf = endedWithCr;
    if (payload.length > 0) this.forward(device, payload);
  }

  /** Ends the session: stops listening, flushes what each party was sent, then closes it. */
  end(reason: EndedReason): void {
    if (!this.live) return;
    this.endedReason = reason;
    this.endedAt = new Date(this.ctx.clock.now());
    this.ctx.clock.clearTimeout(this.timeoutTimer);
    this.ctx.clock.clearTimeout(this.idleTimer);
    this.ctx.clock.clearTimeout(this.lifetimeTimer);
    this.server.close();
    for (const party of [this.parties.device, this.parties.client]) {
      if (!party) continue;
      this.detach(party, reason);
      this.closeAfterFlush(party.socket);
    }
    this.ctx.metrics.sessions.dec();
    this.ctx.metrics.sessionsEnded.inc({ reason });
    this.ctx.logger.info({ serial: this.serial, port: this.spec.port, reason, transferred: this.transferred }, 'session ended');
    this.ctx.emit({ type: 'session-ended', serial: this.serial, id: this.spec.id, reason });
  }

  /** Payload bytes forwarded, both directions together. */
  private get transferred(): number {
    return this.sides.device.forwarded + this.sides.client.forwarded;
  }

  state(): SessionState {
    const { device, client } = this.parties;
    return {
      ...this.spec,
      ipWhitelist: [...this.spec.ipWhitelist],
      serial: this.serial,
      state: this.live ? 'listening' : 'ended',
      ...(this.endedReason ? { endedReason: this.endedReason } : {}),
      deviceConnected: device !== undefined,
      clientConnected: client !== undefined,
      ...(device ? { deviceAddress: device.address } : {}),
      ...(client ? { clientAddress: client.address } : {}),
      transferredBytes: this.transferred,
      droppedBytes: this.sides.device.dropped + this.sides.client.dropped,
      device: this.sides.device.state(),
      client: this.sides.client.state(),
      clientsRefused: this.clientsRefused,
      listeningSince: this.listeningSince.toISOString(),
      ...(this.endedAt ? { endedAt: this.endedAt.toISOString() } : {}),
      changeSeq: 0,
    };
  }

  private armTimeout(): void {
    this.ctx.clock.clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    if (this.clientEverConnected || this.spec.timeoutSeconds === undefined || !this.live) return;
    this.timeoutTimer = this.ctx.clock.setTimeout(() => this.end('ClientConnectTimeout'), this.spec.timeoutSeconds * 1000, {
      keepAlive: true,
    });
  }

  /** Arms the lifetime and idle limits from the spec (both optional). */
  private armLimits(): void {
    this.ctx.clock.clearTimeout(this.lifetimeTimer);
    this.ctx.clock.clearTimeout(this.idleTimer);
    this.lifetimeTimer = undefined;
    this.idleTimer = undefined;
    if (!this.live) return;
    if (this.spec.notAfter !== undefined) {
      const remainingMs = Date.parse(this.spec.notAfter) - this.ctx.clock.now();
      // Already past (a lowered limit, a late start): end now, so the put that set it answers "ended".
      if (remainingMs <= 0) {
        this.end('MaxLifetime');
        return;
      }
      this.lifetimeTimer = this.ctx.clock.setTimeout(() => this.end('MaxLifetime'), remainingMs, { keepAlive: true });
    }
    if (this.spec.idleTimeoutSeconds !== undefined) this.scheduleIdleCheck(this.spec.idleTimeoutSeconds * 1000);
  }

  /** One timer per session, re-armed for the remainder: nothing per chunk but a stamp. */
  private scheduleIdleCheck(inMs: number): void {
    this.idleTimer = this.ctx.clock.setTimeout(
      () => {
        const limit = this.spec.idleTimeoutSeconds;
        if (limit === undefined || !this.live) return;
        // The stamp may lag the real last byte by up to the clock's tick, so
        // the tick is not counted as idle: the session ends up to a second
        // after its limit, never before.
        const idleMs = this.ctx.clock.now() - this.lastUseMs - COARSE_TICK_MS;
        if (idleMs >= limit * 1000) this.end('IdleTimeout');
        else this.scheduleIdleCheck(limit * 1000 - idleMs);
      },
      inMs,
      { keepAlive: true },
    );
  }

  private onClient(socket: net.Socket): void {
    const address = peerAddress(socket);
    if (!this.live) {
      socket.destroy();
      return;
    }
    if (!this.whitelist.admits(peerHost(socket))) {
      // Destroyed before a single byte is read from it.
      socket.destroy();
      this.clientsRefused += 1;
      this.ctx.metrics.clientsRefused.inc();
      this.ctx.summary.warn({ serial: this.serial, client: address }, 'client refused by whitelist');
      this.ctx.emit({ type: 'client-refused', serial: this.serial, id: this.spec.id, address });
      return;
    }
    this.clientEverConnected = true;
    this.ctx.clock.clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    this.attach('client', socket);
  }

  private attach(side: Side, socket: net.Socket): Party {
    socket.setKeepAlive(true, this.ctx.keepaliveIdleMs);
    socket.setNoDelay(true);
    const previous = this.parties[side];
    if (previous) {
      // Replacement is not the party leaving: the session goes on.
      this.detach(previous, 'replaced by a newer connection');
      previous.socket.destroy();
    }
    const party = new Party(side, socket, peerAddress(socket));
    this.parties[side] = party;
    this.lastUseMs = refreshCoarseClock();
    this.sides[side].connectedSince = new Date(this.lastUseMs).toISOString();
    party.listen({
      data: (chunk: Buffer) => this.forward(party, chunk),
      end: () => this.onPartyGone(party, 'closed'),
      close: () => this.onPartyGone(party, 'connection lost'),
      error: (err: Error) => this.ctx.logger.debug({ serial: this.serial, side, peer: party.address, err: err.message }, 'socket error'),
    });
    this.ctx.metrics.connections.inc({ side });
    this.ctx.metrics.connected.inc({ side });
    this.ctx.summary.info({ serial: this.serial, side, peer: party.address }, `${side} connected`);
    this.ctx.emit({ type: `${side}-connected`, serial: this.serial, id: this.spec.id, address: party.address });
    // A sender that was waiting for the previous party's 'drain' goes on; its
    // bytes now reach the new party.
    this.releaseBlockedSender(previous);
    socket.resume();
    return party;
  }

  private forward(from: Party, chunk: Buffer): void {
    if (this.parties[from.side] !== from) return;
    const to = this.parties[from.side === 'device' ? 'client' : 'device'];
    if (from.awaitingLf) {
      from.awaitingLf = false;
      if (chunk[0] === LF) chunk = chunk.subarray(1);
      if (chunk.length === 0) return;
    }
    const record = this.sides[from.side];
    const now = coarseNowMs;
    record.lastActivityMs = now;
    if (!to) {
      record.dropped += chunk.length;
      this.ctx.metrics.bytesFrom[from.side].dropped.inc(chunk.length);
      return;
    }
    to.awaitingLf = false;
    record.forwarded += chunk.length;
    this.lastUseMs = now;
    this.ctx.metrics.bytesFrom[from.side].forwarded.inc(chunk.length);
    if (!to.socket.write(chunk)) {
      from.socket.pause();
      to.blockedSender = from;
      to.socket.once('drain', () => this.releaseBlockedSender(to));
      this.armSendTimer(to);
    }
  }

  /**
   * Ends the connection of a party that took no bytes for sendTimeoutMs while
   * bytes waited for it: a dead link under traffic gets no keepalive probes,
   * and the kernel alone would retransmit for about 15 minutes.
   */
  private armSendTimer(party: Party): void {
    if (this.ctx.sendTimeoutMs <= 0 || party.sendTimer) return;
    party.sendTimer = setTimeout(() => {
      party.sendTimer = undefined;
      if (this.parties[party.side] !== party) return;
      this.ctx.logger.warn(
        { serial: this.serial, side: party.side, peer: party.address, sendTimeoutS: this.ctx.sendTimeoutMs / 1000 },
        'peer took no data in time: connection ended',
      );
      party.socket.destroy();
      this.onPartyGone(party, 'send timeout');
    }, this.ctx.sendTimeoutMs);
    party.sendTimer.unref();
  }

  private releaseBlockedSender(receiver: Party | undefined): void {
    const sender = receiver?.blockedSender;
    if (receiver) {
      clearTimeout(receiver.sendTimer);
      receiver.sendTimer = undefined;
    }
    if (!receiver || !sender) return;
    receiver.blockedSender = undefined;
    if (this.parties[sender.side] === sender) sender.socket.resume();
  }

  /** The party closed its side, or its connection died. */
  private onPartyGone(party: Party, how: string): void {
    if (this.parties[party.side] !== party) return;
    this.detach(party, how);
    if (this.spec.persistent) {
      this.closeAfterFlush(party.socket);
      return;
    }
    this.end(party.side === 'device' ? 'DeviceDisconnected' : 'ClientDisconnected');
    this.closeAfterFlush(party.socket);
  }

  /** Removes the party from its slot; its socket is the caller's to close. */
  private detach(party: Party, why: string): void {
    if (this.parties[party.side] !== party) return;
    this.parties[party.side] = undefined;
    this.sides[party.side].connectedSince = undefined;
    party.unlisten();
    this.ctx.metrics.connected.dec({ side: party.side });
    this.ctx.summary.info({ serial: this.serial, side: party.side, peer: party.address, why }, `${party.side} disconnected`);
    this.ctx.emit({ type: `${party.side}-disconnected`, serial: this.serial, id: this.spec.id, address: party.address, reason: why });
    const other = this.parties[party.side === 'device' ? 'client' : 'device'];
    // Whoever waited for this party to drain must not wait forever.
    this.releaseBlockedSender(party);
    if (other?.blockedSender === party) other.blockedSender = undefined;
  }

  /**
   * Sends FIN after the bytes already written and frees the socket once the
   * peer closes too, or after the linger time. What the peer still sends is
   * read and discarded: closing with unread bytes would send a RST, and a RST
   * can make the peer's kernel throw away the bytes we just flushed to it.
   */
  private closeAfterFlush(socket: net.Socket): void {
    if (socket.destroyed) return;
    const linger = this.ctx.clock.setTimeout(() => socket.destroy(), this.ctx.lingerMs);
    socket.once('close', () => this.ctx.clock.clearTimeout(linger));
    socket.on('data', () => {});
    socket.resume();
    socket.end();
  }
}
