// One session as the soak drives it: a device connection and a client
// connection, each direction carrying a verifiable stream, with the bytes
// sent and checked counted on both ends.
import net from 'node:net';
import { StreamChecker, StreamWriter } from './streams.ts';

export interface Endpoint {
  host: string;
  port: number;
  localAddress?: string;
}

let nextKey = 1;

/** A direction's stream: written on one socket, checked on the other. */
export class Direction {
  readonly writer: StreamWriter;
  readonly checker: StreamChecker;

  constructor() {
    const key = (nextKey++ * 7919) % 65_521;
    this.writer = new StreamWriter(key);
    this.checker = new StreamChecker(key);
  }

  get inFlight(): number {
    return this.writer.offset - this.checker.offset;
  }
}

export function connectTo(endpoint: Endpoint, timeoutMs = 15_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port, localAddress: endpoint.localAddress, allowHalfOpen: false });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${endpoint.host}:${endpoint.port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export class Pair {
  device: net.Socket | undefined;
  client: net.Socket | undefined;
  /** Client to device. */
  down = new Direction();
  /** Device to client. */
  up = new Direction();
  /** Bytes counted by both ends before the current streams (earlier connections). */
  previouslyDelivered = 0;
  previouslyMismatched = 0;
  /** Delivered bytes the proxy no longer counts (it was restarted since). */
  transferredBase = 0;
  /** The traffic loop leaves a paused pair alone. */
  paused = false;

  constructor(
    readonly serial: string,
    public port: number,
  ) {}

  /** Everything both ends have received, over the session's whole life. */
  get delivered(): number {
    return this.previouslyDelivered + this.down.checker.offset + this.up.checker.offset;
  }

  get mismatched(): number {
    return this.previouslyMismatched + this.down.checker.mismatched + this.up.checker.mismatched;
  }

  get inFlight(): number {
    return this.down.inFlight + this.up.inFlight;
  }

  get connected(): boolean {
    return !!this.device && !this.device.destroyed && !!this.client && !this.client.destroyed;
  }

  async connectDevice(endpoint: Endpoint): Promise<net.Socket> {
    const socket = await connectTo(endpoint);
    // CRLF: a split after the CR still ends the line at the CR, and the LF is dropped by the proxy.
    socket.write(`${this.serial}\r\n`);
    socket.on('data', (chunk: Buffer) => {
      if (this.device === socket) this.down.checker.check(chunk);
    });
    this.device = socket;
    return socket;
  }

  async connectClient(endpoint: Endpoint): Promise<net.Socket> {
    const socket = await connectTo(endpoint);
    socket.on('data', (chunk: Buffer) => {
      if (this.client === socket) this.up.checker.check(chunk);
    });
    this.client = socket;
    return socket;
  }

  /** Sends `down` bytes from the client and `up` bytes from the device. */
  send(down: number, up: number): void {
    if (down > 0 && this.client && !this.client.destroyed) this.client.write(this.down.writer.next(down));
    if (up > 0 && this.device && !this.device.destroyed) this.device.write(this.up.writer.next(up));
  }

  /**
   * Starts fresh streams for new connections: what the old ones carried is
   * kept in the totals. Call only when nothing is in flight, or after the
   * bytes in flight are known lost (a killed proxy).
   */
  newStreams(): void {
    this.previouslyDelivered += this.down.checker.offset + this.up.checker.offset;
    this.previouslyMismatched += this.down.checker.mismatched + this.up.checker.mismatched;
    this.down = new Direction();
    this.up = new Direction();
  }

  close(): void {
    this.device?.destroy();
    this.client?.destroy();
  }
}
