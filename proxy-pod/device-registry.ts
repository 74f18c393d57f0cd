// The device port: accepts devices, reads their registration line under a
// deadline, and hands each registered device to its session, or keeps it as
// pending until its session exists.
import net from 'node:net';
import type { Clock } from '../common/clock.ts';
import type { Logger } from '../common/log.ts';
import type { LogSummary } from '../common/log-summary.ts';
import { listen, peerAddress, peerHost } from '../common/sockets.ts';
import { AddressMatcher } from './address-matcher.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { ProxyProtocolGate } from './proxy-protocol.ts';
import { adoptReads } from './read-buffers.ts';
import { RegistrationParser } from './registration.ts';

export interface DeviceRegistryOptions {
  port: number;
  bindHost?: string;
  /** Time allowed from connect to the end of the registration line. */
  registrationTimeoutMs: number;
  /** Time a registered device waits for its session before it is closed. */
  pendingTimeoutMs: number;
  maxPending: number;
  /** Connections that have not registered yet, beyond which new ones are closed. */
  maxUnregistered: number;
  /** TCP keepalive idle time; a silently dead device is closed soon after it. */
  keepaliveIdleMs: number;
  /** Source CIDRs allowed on the device port; empty admits all. */
  allowlist: string[];
  metrics: ProxyMetrics;
  logger: Logger;
  clock: Clock;
  /** For registration lines, which anyone who reaches the device port can cause. */
  summary: LogSummary;
  /** Reads a PROXY protocol header before the registration, when the device port expects one. */
  proxyProtocol?: ProxyProtocolGate;
}

export interface RegisteredDevice {
  serial: string;
  socket: net.Socket;
  /** Bytes that followed the line ending in the same read. */
  payload: Buffer;
  endedWithCr: boolean;
}

/** Registered devices handed on per turn of the event loop. */
const ROUTE_BATCH = 32;

type RejectReason =
  | 'too-long'
  | 'non-printable'
  | 'empty'
  | 'timeout'
  | 'closed-early'
  | 'source-not-allowed'
  | 'overload'
  | 'pending-full'
  | 'pending-timeout';

interface PendingDevice {
  socket: net.Socket;
  /** Stops the pending bookkeeping (timer, handlers) and leaves the socket paused. */
  release(): void;
}

/** Where a connection that has not registered yet finds its registration: one set of listeners serves them all. */
const REGISTRATION = Symbol('registration');
type RegisteringSocket = net.Socket & { [REGISTRATION]?: Registration };

/** Swallows what a socket emits that nobody needs (errors of sockets on their way out, discarded data). */
function ignore(): void {}

/** What one connection needs until it has sent its serial; dropped as soon as it has (or failed to). */
interface Registration {
  registry: DeviceRegistry;
  socket: net.Socket;
  address: string;
  parser: RegistrationParser;
  deadline: unknown;
}

export class DeviceRegistry {
  private readonly server: net.Server;
  private readonly allowlist: AddressMatcher;
  private readonly pending = new Map<string, PendingDevice>();
  private readonly unregistered = new Set<net.Socket>();
  /** Registered devices not handed on yet, oldest first (see `routeSoon`). */
  private readonly registered: Array<{ device: RegisteredDevice; address: string }> = [];
  private routing: NodeJS.Immediate | undefined;

  /** `route` returns false when no live session takes the device, which then waits as pending. */
  constructor(
    private readonly opts: DeviceRegistryOptions,
    private readonly route: (device: RegisteredDevice) => boolean,
  ) {
    this.allowlist = new AddressMatcher(opts.allowlist);
    // keepAlive without a delay would leave the kernel's 2 h default in place (TCP_KEEPIDLE 0 is refused).
    const onConnection = (socket: net.Socket) => this.onConnection(socket);
    const accepted = opts.proxyProtocol?.accepting('device', onConnection) ?? onConnection;
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => accepted(adoptReads(socket)));
    // Accept errors (EMFILE and the like) must not take the process down.
    this.server.on('error', (err) => opts.logger.error({ err }, 'device port error'));
  }

  async listen(): Promise<number> {
    await listen(this.server, { port: this.opts.port, host: this.opts.bindHost });
    return (this.server.address() as net.AddressInfo).port;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Whether a device of this serial waits for its session. */
  hasPending(serial: string): boolean {
    return this.pending.has(serial);
  }

  /** The serials of the devices pending here. */
  pendingSerials(): IterableIterator<string> {
    return this.pending.keys();
  }

  /** Takes the pending device of this serial, if one waits. */
  takePending(serial: string): net.Socket | undefined {
    const entry = this.pending.get(serial);
    if (!entry) return undefined;
    this.pending.delete(serial);
    this.opts.metrics.pendingDevices.set(this.pending.size);
    entry.release();
    return entry.socket;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    clearImmediate(this.routing);
    for (const { device } of this.registered.splice(0)) device.socket.destroy();
    for (const socket of this.unregistered) socket.destroy();
    for (const serial of [...this.pending.keys()]) this.takePending(serial)?.destroy();
    await closed;
  }

  private onConnection(socket: net.Socket): void {
    const address = peerAddress(socket);
    socket.on('error', ignore);
    if (!this.allowlist.admits(peerHost(socket))) {
      this.reject(socket, address, 'source-not-allowed');
      return;
    }
    if (this.unregistered.size >= this.opts.maxUnregistered) {
      this.reject(socket, address, 'overload');
      return;
    }
    socket.setKeepAlive(true, this.opts.keepaliveIdleMs);
    socket.setNoDelay(true);
    this.unregistered.add(socket);
    this.opts.metrics.unregisteredConnections.set(this.unregistered.size);
    const registration: Registration = { registry: this, socket, address, parser: new RegistrationParser(), deadline: undefined };
    registration.deadline = this.opts.clock.setTimeout(() => this.timedOut(registration), this.opts.registrationTimeoutMs, {
      keepAlive: true,
    });
    const registering: RegisteringSocket = socket;
    registering[REGISTRATION] = registration;
    socket.on('data', DeviceRegistry.onData).on('close', DeviceRegistry.onClosed).on('end', DeviceRegistry.onClosed);
  }

  // The listeners of every registering socket, shared: `this` is the socket, which knows its registration.
  private static readonly onData = function (this: RegisteringSocket, chunk: Buffer): void {
    const registration = this[REGISTRATION];
    if (registration) registration.registry.received(registration, chunk);
  };

  private static readonly onClosed = function (this: RegisteringSocket): void {
    const registration = this[REGISTRATION];
    if (registration) registration.registry.closedEarly(registration);
  };

  /** Registration is over, one way or the other: drops everything it needed (parser, deadline, listeners). */
  private finish(registration: Registration): void {
    const socket: RegisteringSocket = registration.socket;
    this.opts.clock.clearTimeout(registration.deadline);
    socket.off('data', DeviceRegistry.onData).off('close', DeviceRegistry.onClosed).off('end', DeviceRegistry.onClosed);
    socket[REGISTRATION] = undefined;
    this.unregistered.delete(socket);
    this.opts.metrics.unregisteredConnections.set(this.unregistered.size);
  }

  /** The registration's deadline passed. */
  private timedOut(registration: Registration): void {
    this.finish(registration);
    this.reject(registration.socket, registration.address, 'timeout');
  }

  /** The connection closed before its line was complete. */
  private closedEarly(registration: Registration): void {
    this.finish(registration);
    this.reject(registration.socket, registration.address, 'closed-early');
  }

  /** Bytes of a connection that has not registered yet. */
  private received(registration: Registration, chunk: Buffer): void {
    const step = registration.parser.push(chunk);
    if (step.kind === 'incomplete') return;
    const { socket, address } = registration;
    this.finish(registration);
    if (step.kind === 'rejected') {
      this.reject(socket, address, step.reason);
      return;
    }
    // Nothing more is read until the device's new owner wants it.
    socket.pause();
    this.opts.metrics.registrations.inc();
    this.opts.summary.info({ serial: step.serial, peer: address }, 'device registered');
    this.routeSoon({ serial: step.serial, socket, payload: step.payload, endedWithCr: step.endedWithCr }, address);
  }

  /**
   * Hands registered devices on (attach, replace, or pending) a batch at a
   * time, between turns of the event loop: a burst of registrations (say
   * 3,000 devices reconnecting at once) then cannot hold up live sessions'
   * bytes for the whole burst. Order is kept.
   */
  private routeSoon(device: RegisteredDevice, address: string): void {
    this.registered.push({ device, address });
    this.routing ??= setImmediate(() => this.routeBatch());
  }

  private routeBatch(): void {
    this.routing = undefined;
    for (const { device, address } of this.registered.splice(0, ROUTE_BATCH)) {
      if (device.socket.destroyed) continue;
      if (!this.route(device)) this.addPending(device, address);
    }
    if (this.registered.length > 0) this.routing = setImmediate(() => this.routeBatch());
  }

  /** Keeps the device until its session exists (also for a device no peer pod took). */
  addPending(device: RegisteredDevice, address = peerAddress(device.socket)): void {
    const { serial, socket } = device;
    // A newer connection for the serial replaces the older one.
    this.takePending(serial)?.destroy();
    if (this.pending.size >= this.opts.maxPending) {
      this.reject(socket, address, 'pending-full');
      return;
    }
    const gone = () => {
      this.takePending(serial);
      socket.destroy();
    };
    const timer = this.opts.clock.setTimeout(
      () => {
        this.takePending(serial);
        this.reject(socket, address, 'pending-timeout');
      },
      this.opts.pendingTimeoutMs,
      { keepAlive: true },
    );
    const release = () => {
      this.opts.clock.clearTimeout(timer);
      socket.off('data', ignore).off('end', gone).off('close', gone);
      socket.pause();
    };
    this.pending.set(serial, { socket, release });
    this.opts.metrics.pendingDevices.set(this.pending.size);
    // Data that arrives before the session exists is discarded.
    socket.on('data', ignore).on('end', gone).on('close', gone);
    socket.resume();
    this.opts.summary.info({ serial, peer: address }, 'device pending: no session yet');
  }

  private reject(socket: net.Socket, address: string, reason: RejectReason): void {
    this.opts.metrics.registrationsRejected.inc({ reason });
    // Debug, not info: a flood would otherwise write a line per connection; the metric counts them.
    this.opts.logger.debug({ peer: address, reason }, 'device connection closed');
    socket.destroy();
  }
}
