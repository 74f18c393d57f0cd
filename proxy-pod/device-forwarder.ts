// Devices that registered on this pod while their session lives on another:
// offered to the peers one at a time over the peer port, then relayed byte
// for byte to the pod that accepted. The accepting pod attaches the relayed
// connection as the session's device and counts its bytes; this pod counts
// none, so the session's counters stay exact.
//
// Races. A device is held here (the serial is marked) before its first
// offer leaves, and a pod creates a session before it announces it, so of an
// offer and an announcement that cross, one always sees the other: the offer
// finds the session, or the announcement finds the device held (the peer is
// asked again after its answer) or pending (it is offered at once).
import type net from 'node:net';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { peerAddress } from '../common/sockets.ts';
import type { RegisteredDevice } from './device-registry.ts';
import { PeerAvailability } from './peer-availability.ts';
import type { PeerMetrics } from './peer-metrics.ts';
import { ACCEPTED, DECLINED, encodeRequest, LineReader, type PeerContactOptions, type PeerEndpoint } from './peer-protocol.ts';
import { connectReading, takeReads } from './read-buffers.ts';

/** Offers on the wire at once from this pod; peers admit far more waiting requests (see peer-port.ts). */
const MAX_OFFERS_IN_FLIGHT = 32;
/** Serials whose session was last found on a peer, asked first next time. */
const MAX_HINTS = 10_000;
/** A peer that did not answer is skipped for this long, then probed. */
const PEER_PAUSE_MS = 5_000;

/** `peers` is also the order new devices are offered in. */
export interface DeviceForwarderOptions extends PeerContactOptions {
  keepaliveIdleMs: number;
  lingerMs: number;
  /** A device that takes none of the bytes waiting for it for this long is disconnected; 0 turns it off. */
  sendTimeoutMs: number;
  /** Serials held for offers at most; beyond, a device waits as pending right away. */
  maxHeld: number;
  metrics: PeerMetrics;
  logger: Logger;
  summary: LogSummary;
  clock: Clock;
}

export interface DeviceForwarderHooks {
  hasLiveSession(serial: string): boolean;
  /** No peer took the device: attach it here if its session appeared meanwhile, else keep it pending. */
  settle(device: RegisteredDevice): void;
  /** Takes this pod's pending device of the serial, if one waits. */
  takePending(serial: string): net.Socket | undefined;
}

interface HeldDevice {
  device: RegisteredDevice;
  /** Peers still to ask, in order; a peer that announces the serial meanwhile is added (again). */
  toAsk: number[];
  /** A newer registration of the serial, waiting for this one's offer to end. */
  newer?: HeldDevice;
  /**
   * The accepted link of the device this one replaced, kept open until this
   * one has its first answer: the peer then sees a replacement, not the
   * device leaving (which would end a non-persistent session).
   */
  replacedLink?: net.Socket;
}

type Outcome =
  | { kind: 'accepted'; link: net.Socket; rest: Buffer }
  | { kind: 'declined' }
  | { kind: 'unreachable' }
  | { kind: 'failed' }
  | { kind: 'skipped' };

interface Found {
  ordinal: number;
  link: net.Socket;
  rest: Buffer;
}

export class DeviceForwarder {
  private readonly held = new Map<string, HeldDevice>();
  /** Links being asked, and both sockets of each relay: destroyed on close. */
  private readonly sockets = new Set<net.Socket>();
  private readonly hints = new Map<string, number>();
  private readonly availability: PeerAvailability;
  private inFlight = 0;
  private readonly waitingForSlot: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly opts: DeviceForwarderOptions,
    private readonly hooks: DeviceForwarderHooks,
  ) {
    this.availability = new PeerAvailability({
      clock: opts.clock,
      pauseMs: PEER_PAUSE_MS,
      maxMissed: opts.maxHeld,
      offer: (ordinal, serial) => this.askAgain(serial, ordinal),
    });
  }

  /** Takes a registered device that has no session here; false when it should wait as pending instead. */
  take(device: RegisteredDevice): boolean {
    if (this.closed || this.opts.peers.length === 0) return false;
    const current = this.held.get(device.serial);
    if (!current && this.held.size >= this.opts.maxHeld) return false;
    // A newer registration replaces the older, as on the device port.
    this.hooks.takePending(device.serial)?.destroy();
    const entry: HeldDevice = { device, toAsk: this.order(device.serial) };
    if (current) {
      // Only the newest waits; the one being offered is closed and its answer decides where the newer goes first.
      current.newer?.device.socket.destroy();
      current.newer = entry;
      current.device.socket.destroy();
      return true;
    }
    void this.forward(entry);
    return true;
  }

  /** The pod `from` created a session for `serial` and had no device for it. */
  wanted(serial: string, from: number): void {
    if (this.closed || from === this.opts.ordinal || !this.opts.endpoint(from)) return;
    this.hint(serial, from);
    this.availability.alive(from);
    this.askAgain(serial, from);
  }

  /** A pod just learned of: each of these serials whose device still waits here is offered to it. */
  offerWaiting(ordinal: number, serials: Iterable<string>): void {
    if (this.closed || ordinal === this.opts.ordinal || !this.opts.endpoint(ordinal)) return;
    for (const serial of serials) this.askAgain(serial, ordinal);
  }

  /** The peer took a notice from this pod or sent one: it is up. */
  peerAlive(ordinal: number): void {
    this.availability.alive(ordinal);
  }

  /** The peer could not be reached: skip it for a while. */
  peerFailed(ordinal: number): void {
    this.availability.failed(ordinal);
  }

  /**
   * Offers the device of this serial held or pending here to the peer (again,
   * after its current offer when one is on the wire); false when there is none.
   */
  private askAgain(serial: string, ordinal: number): boolean {
    if (this.closed) return false;
    const entry = this.held.get(serial);
    if (entry) {
      const target = entry.newer ?? entry;
      if (!target.toAsk.includes(ordinal)) target.toAsk.push(ordinal);
      return true;
    }
    const socket = this.hooks.takePending(serial);
    if (!socket) return false;
    // Its earlier bytes were discarded while pending, so no CRLF is half-read.
    void this.forward({ device: { serial, socket, payload: Buffer.alloc(0), endedWithCr: false }, toAsk: [ordinal] });
    return true;
  }

  close(): void {
    this.closed = true;
    this.availability.close();
    for (const entry of this.held.values()) {
      entry.newer?.device.socket.destroy();
      entry.device.socket.destroy();
    }
    for (const socket of this.sockets) socket.destroy();
    for (const wake of this.waitingForSlot.splice(0)) wake();
  }

  /** Offers the device, then each newer registration of its serial, until one is relayed or settled here. */
  private async forward(first: HeldDevice): Promise<void> {
    const { serial } = first.device;
    for (let entry: HeldDevice | undefined = first; entry; ) {
      this.held.set(serial, entry);
      const found = await this.offerAround(entry);
      entry.replacedLink?.destroy();
      this.held.delete(serial);
      const newer: HeldDevice | undefined = entry.newer;
      if (newer) {
        if (found) {
          newer.replacedLink = found.link;
          newer.toAsk = [found.ordinal, ...newer.toAsk.filter((o) => o !== found.ordinal)];
        }
        entry = newer;
        continue;
      }
      if (this.closed) found?.link.destroy();
      else if (found && !entry.device.socket.destroyed) this.relay(entry.device, found.link, found.rest);
      // The device left while the answer was on its way: the peer sees it leave.
      else if (found) found.link.destroy();
      else if (!entry.device.socket.destroyed) this.hooks.settle(entry.device);
      entry = undefined;
    }
  }

  /** Asks the peers in turn; stops early when the device is gone or replaced, or its session appeared here. */
  private async offerAround(entry: HeldDevice): Promise<Found | undefined> {
    const { serial, socket } = entry.device;
    for (;;) {
      if (this.closed || socket.destroyed || entry.newer || this.hooks.hasLiveSession(serial)) return undefined;
      const ordinal = entry.toAsk.shift();
      if (ordinal === undefined) return undefined;
      const outcome: Outcome = this.availability.isPaused(ordinal) ? { kind: 'skipped' } : await this.offerTo(ordinal, entry.device);
      entry.replacedLink?.destroy();
      entry.replacedLink = undefined;
      this.opts.metrics.offers.inc({ result: outcome.kind });
      if (outcome.kind === 'accepted') {
        this.availability.alive(ordinal);
        this.hint(serial, ordinal);
        return { ordinal, link: outcome.link, rest: outcome.rest };
      }
      if (outcome.kind === 'declined') this.availability.alive(ordinal);
      else {
        if (outcome.kind !== 'skipped') {
          this.opts.summary.warn({ serial, peer: ordinal, outcome: outcome.kind }, 'peer did not answer an offer');
          this.availability.failed(ordinal);
        }
        this.availability.missed(ordinal, serial);
      }
      if (this.hints.get(serial) === ordinal) this.hints.delete(serial);
    }
  }

  private async offerTo(ordinal: number, device: RegisteredDevice): Promise<Outcome> {
    const endpoint = this.opts.endpoint(ordinal);
    if (!endpoint) return { kind: 'unreachable' };
    if (this.inFlight >= MAX_OFFERS_IN_FLIGHT) await new Promise<void>((wake) => this.waitingForSlot.push(wake));
    if (this.closed) return { kind: 'failed' };
    this.inFlight += 1;
    try {
      return await this.ask(endpoint, device);
    } finally {
      this.inFlight -= 1;
      this.waitingForSlot.shift()?.();
    }
  }

  /** One offer: connect within the connect timeout, send the request, read one answer line within the answer timeout. */
  private ask(endpoint: PeerEndpoint, device: RegisteredDevice): Promise<Outcome> {
    const { host, port } = deviceEndpoint(device.socket);
    const request = encodeRequest(this.opts.token, {
      kind: 'offer',
      from: this.opts.ordinal,
      serial: device.serial,
      deviceHost: host,
      devicePort: port,
      awaitingLf: device.endedWithCr,
    });
    return new Promise((resolve) => {
      const link = connectReading({ host: endpoint.host, port: endpoint.port, allowHalfOpen: true, noDelay: true });
      this.track(link);
      link.on('error', () => {});
      const reader = new LineReader(64);
      let connected = false;
      let timer = setTimeout(() => finish({ kind: 'unreachable' }), this.opts.connectTimeoutMs);
      const finish = (outcome: Outcome) => {
        clearTimeout(timer);
        // Paused before the handler goes: the bytes after "accepted" are the session's.
        link.pause();
        link.off('connect', onConnect).off('data', onData).off('close', onClose);
        if (outcome.kind !== 'accepted') link.destroy();
        resolve(outcome);
      };
      const onConnect = () => {
        connected = true;
        clearTimeout(timer);
        timer = setTimeout(() => finish({ kind: 'failed' }), this.opts.answerTimeoutMs);
        link.write(request);
      };
      const onData = (chunk: Buffer) => {
        const step = reader.push(chunk);
        if (step.kind === 'incomplete') return;
        if (step.kind === 'line' && step.line === ACCEPTED) finish({ kind: 'accepted', link, rest: step.rest });
        else finish({ kind: step.kind === 'line' && step.line === DECLINED ? 'declined' : 'failed' });
      };
      const onClose = () => finish({ kind: connected ? 'failed' : 'unreachable' });
      link.on('connect', onConnect).on('data', onData).on('close', onClose);
    });
  }

  /**
   * Joins the device and the link both ways with backpressure. An end (FIN)
   * is passed on as an end; a lost connection ends the other at once.
   */
  private relay(device: RegisteredDevice, link: net.Socket, rest: Buffer): void {
    const { socket } = device;
    link.setKeepAlive(true, this.opts.keepaliveIdleMs);
    link.setNoDelay(true);
    this.track(socket);
    this.opts.metrics.relays.inc();
    if (device.payload.length > 0) link.write(device.payload);
    if (rest.length > 0) socket.write(rest);
    // The peer watches its own side of the link; this pod watches the device.
    this.pass(socket, link, false);
    this.pass(link, socket, true);
    let open = 2;
    const follow = (gone: net.Socket, other: net.Socket) => (hadError: boolean) => {
      open -= 1;
      if (open === 0) this.opts.metrics.relays.dec();
      if (other.destroyed) return;
      if (hadError || !gone.readableEnded) {
        other.destroy();
        return;
      }
      // The end was passed on; the other side has the linger time to take its last bytes and close.
      const linger = setTimeout(() => other.destroy(), this.opts.lingerMs);
      other.once('close', () => clearTimeout(linger));
    };
    socket.once('close', follow(socket, link));
    link.once('close', follow(link, socket));
  }

  /**
   * Bytes from `from` to `to`; `from` waits while `to` cannot take more. With
   * `guarded`, a `to` that takes nothing for the send timeout is taken for
   * dead and both are closed: a paused `from` would not even notice its own
   * peer closing.
   */
  private pass(from: net.Socket, to: net.Socket, guarded: boolean): void {
    let stalled: NodeJS.Timeout | undefined;
    /** True when `to` still holds the chunk (its write did not finish at once): see read-buffers.ts. */
    const forward = (chunk: Buffer): boolean => {
      if (!to.write(chunk)) {
        from.pause();
        if (guarded && this.opts.sendTimeoutMs > 0)
          stalled = setTimeout(() => {
            from.destroy();
            to.destroy();
          }, this.opts.sendTimeoutMs);
        to.once('drain', () => {
          clearTimeout(stalled);
          from.resume();
        });
      }
      return to.writableLength > 0;
    };
    const waiting = takeReads(from, forward);
    if (waiting) forward(waiting);
    // 'data' comes only from a socket that does not read into the proxy's buffers.
    from.on('data', forward);
    from.on('end', () => to.end());
    from.resume();
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private order(serial: string): number[] {
    const hinted = this.hints.get(serial);
    const peers = this.opts.peers;
    return hinted === undefined ? [...peers] : [hinted, ...peers.filter((o) => o !== hinted)];
  }

  private hint(serial: string, ordinal: number): void {
    this.hints.delete(serial);
    this.hints.set(serial, ordinal);
    if (this.hints.size > MAX_HINTS) {
      const oldest = this.hints.keys().next().value;
      if (oldest !== undefined) this.hints.delete(oldest);
    }
  }
}

/** The device's real endpoint (a PROXY protocol header's, when one came). */
function deviceEndpoint(socket: net.Socket): { host: string; port: number } {
  const address = peerAddress(socket);
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) || 0 };
}
