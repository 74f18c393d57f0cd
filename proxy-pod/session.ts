// One session: its listener for clients, the device and client slots, and
// the join between them.
//
// Forwarding is explicit rather than `pipe()`: a party can be replaced or be
// absent at any moment, bytes for an absent party are dropped and counted, and
// a write that the receiver cannot take yet pauses the sender until 'drain'
// (so memory per direction stays near one socket buffer).
//
// Per chunk the data plane does one integer add and the write: no clock read,
// no metric. What the counters imply (last activity, the idle timer's "last
// use", the change feed's seq, the Prometheus byte counters) is derived later
// from the counts, by the proxy pod's activity sweep and at scrape time.
import net from 'node:net';
import type { EndedReason, SessionCounters, SessionSpec, SessionState, SideCounters, SideState } from '../common/admin-protocol.ts';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { listen, peerAddress, peerHost } from '../common/sockets.ts';
import { AddressMatcher } from './address-matcher.ts';
import type { ByteTotals, ProxyMetrics } from './metrics.ts';
import type { ProxyProtocolGate } from './proxy-protocol.ts';
import { adoptReads, type ReadSink, setReadSink, takeReads } from './read-buffers.ts';

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

/** Where a party's socket finds its party: one set of listeners serves every socket. */
const PARTY = Symbol('party');
type PartySocket = net.Socket & { [PARTY]?: Party };

/** Swallows a late error on a socket we let go, so it is no uncaught exception. */
function ignore(): void {}

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

  constructor(
    readonly session: Session,
    readonly side: Side,
    readonly socket: PartySocket,
    readonly address: string,
  ) {}
}

/** What one side has done over the session's life, across its reconnects. */
class SideRecord {
  forwarded = 0;
  dropped = 0;
  /** ISO time of the current connection, taken on connect. */
  connectedSince: string | undefined;
  /** Clock time of the first look (a sweep, a state) that saw this side's latest bytes; 0 if none yet. */
  lastActivityMs = 0;
  /** forwarded + dropped at the last look. */
  seen = 0;
  // Formatted only when the time moved: state() runs for every change.
  private formattedMs = 0;
  private formatted: string | undefined;

  /** Stamps the activity time with `nowMs` (at or after the bytes' real time) if bytes came since the last look. */
  look(clock: Clock, nowMs?: number): void {
    const total = this.forwarded + this.dropped;
    if (total === this.seen) return;
    this.seen = total;
    this.lastActivityMs = nowMs ?? clock.now();
  }

  state(clock: Clock): SideState {
    const state: SideState = this.counters(clock);
    if (this.connectedSince !== undefined) state.connectedSince = this.connectedSince;
    return state;
  }

  counters(clock: Clock): SideCounters {
    const counters: SideCounters = { forwardedBytes: this.forwarded, droppedBytes: this.dropped };
    // Never bytes without their activity time, and that time does not move without new bytes.
    this.look(clock);
    if (this.lastActivityMs !== this.formattedMs) {
      this.formattedMs = this.lastActivityMs;
      this.formatted = new Date(this.lastActivityMs).toISOString();
    }
    if (this.formatted !== undefined) counters.lastActivity = this.formatted;
    return counters;
  }
}

export class Session {
  /** The change feed's seq of this session's latest change; set by the proxy pod. */
  changeSeq = 0;
  private spec: SessionSpec;
  private whitelist: AddressMatcher;
  private readonly server: net.Server;
  private device: Party | undefined;
  private client: Party | undefined;
  private clientEverConnected = false;
  private timeoutTimer: unknown;
  private readonly deviceRecord = new SideRecord();
  private readonly clientRecord = new SideRecord();
  private clientsRefused = 0;
  /** Clock time of the last connect, or of the look that first saw forwarded bytes after it: what the idle timeout measures from. */
  private lastUseMs: number;
  /** Forwarded bytes (both ways) when `lastUseMs` was last checked. */
  private usedBytes = 0;
  /** Every byte counted (both sides, forwarded and dropped) at the last sweep. */
  private sweptBytes = 0;
  private idleTimer: unknown;
  private lifetimeTimer: unknown;
  private listeningSince: string;
  private endedAt: string | undefined;
  private endedReason: EndedReason | undefined;

  constructor(
    readonly serial: string,
    spec: SessionSpec,
    private readonly ctx: SessionContext,
  ) {
    this.spec = { ...spec, ipWhitelist: [...spec.ipWhitelist] };
    this.whitelist = new AddressMatcher(spec.ipWhitelist);
    this.lastUseMs = ctx.clock.now();
    this.listeningSince = new Date(this.lastUseMs).toISOString();
    // keepAlive is set per socket with its idle time (without one the kernel's 2 h default stays).
    const onClient = (socket: net.Socket) => this.onClient(socket);
    const accepted = ctx.proxyProtocol?.accepting('session', onClient) ?? onClient;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => accepted(adoptReads(socket)));
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

  /** A device or a client is attached: the activity sweep looks at this session. */
  get hasParty(): boolean {
    return this.device !== undefined || this.client !== undefined;
  }

  /** Binds the session's port; rejects with PortUnavailableError. */
  async listen(): Promise<void> {
    await listen(this.server, { port: this.spec.port, host: this.ctx.bindHost, exclusive: true }).catch((err: unknown) => {
      throw new PortUnavailableError(this.spec.port, err);
    });
    this.lastUseMs = this.ctx.clock.now();
    this.listeningSince = new Date(this.lastUseMs).toISOString();
    this.armTimeout();
    this.armLimits();
  }

  /** Applies new parameters to the live session; the port never changes here. False when nothing changed. */
  update(spec: SessionSpec): boolean {
    const old = this.spec;
    const timeoutChanged = spec.timeoutSeconds !== old.timeoutSeconds;
    const limitsChanged = spec.notAfter !== old.notAfter || spec.idleTimeoutSeconds !== old.idleTimeoutSeconds;
    const whitelistChanged =
      spec.ipWhitelist.length !== old.ipWhitelist.length || spec.ipWhitelist.some((entry, i) => entry !== old.ipWhitelist[i]);
    if (!timeoutChanged && !limitsChanged && !whitelistChanged && spec.persistent === old.persistent) return false;
    this.spec = { ...spec, ipWhitelist: [...spec.ipWhitelist] };
    if (whitelistChanged) this.whitelist = new AddressMatcher(spec.ipWhitelist);
    const client = this.client;
    if (client && !this.whitelist.admits(peerHost(client.socket))) {
      this.ctx.logger.info({ serial: this.serial, client: client.address }, 'client no longer whitelisted');
      this.detach(client, 'no longer whitelisted');
      client.socket.destroy();
    }
    // A changed timeout counts from when it was set; an unchanged one (a
    // retried /on) leaves the running timer alone.
    if (timeoutChanged) this.armTimeout();
    if (limitsChanged) this.armLimits();
    return true;
  }

  attachDevice(socket: net.Socket, payload: Buffer, endedWithCr: boolean): void {
    this.attach('device', socket, payload, endedWithCr);
  }

  /** Ends the session: stops listening, flushes what each party was sent, then closes it. */
  end(reason: EndedReason): void {
    if (!this.live) return;
    this.endedReason = reason;
    this.endedAt = new Date(this.ctx.clock.now()).toISOString();
    this.ctx.clock.clearTimeout(this.timeoutTimer);
    this.ctx.clock.clearTimeout(this.idleTimer);
    this.ctx.clock.clearTimeout(this.lifetimeTimer);
    this.server.close();
    for (const party of [this.device, this.client]) {
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
    return this.deviceRecord.forwarded + this.clientRecord.forwarded;
  }

  /** Payload bytes discarded, both directions together. */
  private get dropped(): number {
    return this.deviceRecord.dropped + this.clientRecord.dropped;
  }

  /** Adds this session's byte counts to `totals` (for the Prometheus counters, computed at scrape). */
  addBytesTo(totals: ByteTotals): void {
    totals.device.forwarded += this.deviceRecord.forwarded;
    totals.device.dropped += this.deviceRecord.dropped;
    totals.client.forwarded += this.clientRecord.forwarded;
    totals.client.dropped += this.clientRecord.dropped;
  }

  /**
   * The activity sweep's look at the counters: stamps the activity times of
   * what moved since the last look with `nowMs`, a time at or after the
   * bytes' real one. True when any counter moved.
   */
  sweep(nowMs: number): boolean {
    this.noteUse(nowMs);
    const { deviceRecord, clientRecord } = this;
    deviceRecord.look(this.ctx.clock, nowMs);
    clientRecord.look(this.ctx.clock, nowMs);
    const counted = deviceRecord.forwarded + deviceRecord.dropped + clientRecord.forwarded + clientRecord.dropped;
    if (counted === this.sweptBytes) return false;
    this.sweptBytes = counted;
    return true;
  }

  state(): SessionState {
    const { device, client, spec } = this;
    const deviceRecord = this.deviceRecord;
    const clientRecord = this.clientRecord;
    const state: SessionState = {
      id: spec.id,
      port: spec.port,
      persistent: spec.persistent,
      ipWhitelist: spec.ipWhitelist.slice(),
      serial: this.serial,
      state: this.endedReason === undefined ? 'listening' : 'ended',
      deviceConnected: device !== undefined,
      clientConnected: client !== undefined,
      transferredBytes: this.transferred,
      droppedBytes: this.dropped,
      device: deviceRecord.state(this.ctx.clock),
      client: clientRecord.state(this.ctx.clock),
      clientsRefused: this.clientsRefused,
      listeningSince: this.listeningSince,
      changeSeq: this.changeSeq,
    };
    if (spec.timeoutSeconds !== undefined) state.timeoutSeconds = spec.timeoutSeconds;
    if (spec.notAfter !== undefined) state.notAfter = spec.notAfter;
    if (spec.idleTimeoutSeconds !== undefined) state.idleTimeoutSeconds = spec.idleTimeoutSeconds;
    if (this.endedReason !== undefined) state.endedReason = this.endedReason;
    if (device !== undefined) state.deviceAddress = device.address;
    if (client !== undefined) state.clientAddress = client.address;
    if (this.endedAt !== undefined) state.endedAt = this.endedAt;
    return state;
  }

  /** What the activity sweep moves, for a reader that holds the rest (the change feed's counter entries). */
  counters(): SessionCounters {
    return {
      serial: this.serial,
      id: this.spec.id,
      changeSeq: this.changeSeq,
      transferredBytes: this.transferred,
      droppedBytes: this.dropped,
      device: this.deviceRecord.counters(this.ctx.clock),
      client: this.clientRecord.counters(this.ctx.clock),
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

  /** Moves the idle timer's "last use" to `nowMs` if bytes were forwarded since the last check. */
  private noteUse(nowMs: number): void {
    const used = this.deviceRecord.forwarded + this.clientRecord.forwarded;
    if (used === this.usedBytes) return;
    this.usedBytes = used;
    this.lastUseMs = nowMs;
  }

  /**
   * One timer per session, re-armed for the remainder: nothing per chunk.
   * "Last use" is stamped by the sweep (every ~250 ms) at or after the real
   * last byte, and the check itself first looks at the counters, so the
   * session never ends before its limit, and ends at most a sweep interval
   * after it.
   */
  private scheduleIdleCheck(inMs: number): void {
    this.idleTimer = this.ctx.clock.setTimeout(
      () => {
        const limit = this.spec.idleTimeoutSeconds;
        if (limit === undefined || !this.live) return;
        const now = this.ctx.clock.now();
        this.noteUse(now);
        const idleMs = now - this.lastUseMs;
        if (idleMs >= limit * 1000) this.end('IdleTimeout');
        else this.scheduleIdleCheck(limit * 1000 - idleMs);
      },
      inMs,
      { keepAlive: true },
    );
  }

  private onClient(socket: net.Socket): void {
    if (!this.live) {
      socket.destroy();
      return;
    }
    if (!this.whitelist.admits(peerHost(socket))) {
      const address = peerAddress(socket);
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

  /**
   * `first`: bytes read before the party joined (after a device's serial),
   * forwarded ahead of the rest; `awaitingLf`: the serial's line ended with a
   * CR at the end of a read (see Party).
   */
  private attach(side: Side, socket: net.Socket, first?: Buffer, awaitingLf = false): Party {
    socket.setKeepAlive(true, this.ctx.keepaliveIdleMs);
    socket.setNoDelay(true);
    const previous = this[side];
    if (previous) {
      // Replacement is not the party leaving: the session goes on.
      this.detach(previous, 'replaced by a newer connection');
      previous.socket.destroy();
    }
    const party = new Party(this, side, socket, peerAddress(socket));
    party.awaitingLf = awaitingLf;
    this[side] = party;
    const now = this.ctx.clock.now();
    // Bytes forwarded before this connect belong to the time before it.
    this.noteUse(now);
    this.lastUseMs = now;
    this.record(side).connectedSince = new Date(now).toISOString();
    const target: PartySocket = socket;
    target[PARTY] = party;
    socket
      .on('data', Session.onData)
      .on('end', Session.onEnd)
      .on('close', Session.onClose)
      .on('error', Session.onError)
      .on('drain', Session.onDrain);
    this.ctx.metrics.connections.inc({ side });
    this.ctx.metrics.connected.inc({ side });
    this.ctx.summary.info({ serial: this.serial, side, peer: party.address }, `${side} connected`);
    this.ctx.emit({ type: `${side}-connected`, serial: this.serial, id: this.spec.id, address: party.address });
    const waiting = takeReads(socket, Session.onRead);
    if (first && first.length > 0) this.forward(party, first);
    if (waiting) this.forward(party, waiting);
    // A sender that was waiting for the previous party's 'drain' goes on; its
    // bytes now reach the new party.
    this.releaseBlockedSender(previous);
    socket.resume();
    return party;
  }

  // The listeners of every party's socket, shared: `this` is the socket, which knows its party.
  // 'data' comes only from a socket that does not read into the proxy's own buffers (read-buffers.ts).
  private static readonly onData = function (this: PartySocket, chunk: Buffer): void {
    const party = this[PARTY];
    if (party) party.session.forward(party, chunk);
  };

  private static readonly onRead: ReadSink = (chunk, socket) => {
    const party = (socket as PartySocket)[PARTY];
    return party ? party.session.forward(party, chunk) : false;
  };

  private static readonly onEnd = function (this: PartySocket): void {
    const party = this[PARTY];
    if (party) party.session.onPartyGone(party, 'closed');
  };

  private static readonly onClose = function (this: PartySocket): void {
    const party = this[PARTY];
    if (party) party.session.onPartyGone(party, 'connection lost');
  };

  private static readonly onError = function (this: PartySocket, err: Error): void {
    const party = this[PARTY];
    if (party)
      party.session.ctx.logger.debug(
        { serial: party.session.serial, side: party.side, peer: party.address, err: err.message },
        'socket error',
      );
  };

  private static readonly onDrain = function (this: PartySocket): void {
    const party = this[PARTY];
    if (party) party.session.releaseBlockedSender(party);
  };

  private record(side: Side): SideRecord {
    return side === 'device' ? this.deviceRecord : this.clientRecord;
  }

  /** True when the receiver's socket still holds `chunk` (its write did not finish at once). */
  private forward(from: Party, chunk: Buffer): boolean {
    const device = from.side === 'device';
    if ((device ? this.device : this.client) !== from) return false;
    const to = device ? this.client : this.device;
    if (from.awaitingLf) {
      from.awaitingLf = false;
      if (chunk[0] === LF) chunk = chunk.subarray(1);
      if (chunk.length === 0) return false;
    }
    const record = device ? this.deviceRecord : this.clientRecord;
    if (!to) {
      record.dropped += chunk.length;
      return false;
    }
    to.awaitingLf = false;
    record.forwarded += chunk.length;
    if (!to.socket.write(chunk)) {
      from.socket.pause();
      to.blockedSender = from;
      this.armSendTimer(to);
    }
    return to.socket.writableLength > 0;
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
      if (this[party.side] !== party) return;
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
    if (this[sender.side] === sender) sender.socket.resume();
  }

  /** The party closed its side, or its connection died. */
  private onPartyGone(party: Party, how: string): void {
    if (this[party.side] !== party) return;
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
    if (this[party.side] !== party) return;
    // Its last bytes get their activity time now: the sweep only looks at sessions with a party.
    this.sweep(this.ctx.clock.now());
    this[party.side] = undefined;
    this.record(party.side).connectedSince = undefined;
    const socket = party.socket;
    socket
      .off('data', Session.onData)
      .off('end', Session.onEnd)
      .off('close', Session.onClose)
      .off('error', Session.onError)
      .off('drain', Session.onDrain);
    socket[PARTY] = undefined;
    setReadSink(socket, undefined);
    // A late error on a socket we let go must not become an uncaught exception.
    socket.on('error', ignore);
    this.ctx.metrics.connected.dec({ side: party.side });
    this.ctx.summary.info({ serial: this.serial, side: party.side, peer: party.address, why }, `${party.side} disconnected`);
    this.ctx.emit({ type: `${party.side}-disconnected`, serial: this.serial, id: this.spec.id, address: party.address, reason: why });
    const other = party.side === 'device' ? this.client : this.device;
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
    socket.on('data', ignore);
    socket.resume();
    socket.end();
  }
}
