// Socket helpers for tests on loopback. Every wait is bounded.
import { readFileSync } from 'node:fs';
import net from 'node:net';

export function connect(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress, allowHalfOpen: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Connects as a device and sends its registration line (and anything after it) in one write. */
export async function connectDevice(port: number, serial: string, ending = '\r', payload: Buffer | string = ''): Promise<net.Socket> {
  const socket = await connect(port);
  socket.write(Buffer.concat([Buffer.from(serial + ending, 'latin1'), Buffer.from(payload)]));
  return socket;
}

/** Collects everything a socket receives, for later assertions. */
export class Received {
  private chunks: Buffer[] = [];
  private size = 0;
  ended = false;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  get length(): number {
    return this.size;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  text(): string {
    return this.bytes().toString('latin1');
  }

  untilLength(n: number, timeoutMs = 5000): Promise<Buffer> {
    return waitFor(() => this.size >= n, timeoutMs, `${n} bytes (have ${this.size})`).then(() => this.bytes());
  }

  /** The other side closed: its FIN arrived, or the connection is gone. */
  get closedByPeer(): boolean {
    return this.ended || this.closed;
  }

  untilClosed(timeoutMs = 5000): Promise<Buffer> {
    return waitFor(() => this.closedByPeer, timeoutMs, 'the peer to close the connection').then(() => this.bytes());
  }
}

/** Polls `condition` every 10 ms; rejects naming what it waited for. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** True when nothing accepts connections on the port. */
export function refuses(port: number, host = '127.0.0.1'): Promise<boolean> {
  return connect(port, { host }).then(
    (socket) => {
      socket.destroy();
      return false;
    },
    () => true,
  );
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Several distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

export interface PortRange {
  min: number;
  max: number;
}

/** Whether a listener could take `port` on loopback right now. */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * `size` consecutive ports that were free a moment ago, below Linux's
 * ephemeral range so outgoing connections do not take them meanwhile.
 */
export async function freePortRange(size: number): Promise<PortRange> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const min = 20_000 + Math.floor(Math.random() * (12_000 - size));
    const checks = await Promise.all(Array.from({ length: size }, (_, i) => canBind(min + i)));
    if (checks.every(Boolean)) return { min, max: min + size - 1 };
  }
  throw new Error(`no ${size} consecutive free ports found`);
}

/** Ports in LISTEN state on this machine, from /proc/net/tcp{,6}: no connection is made. */
export function listeningPorts(): Set<number> {
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A') ports.add(parseInt(fields[1]!.split(':').pop()!, 16));
    }
  }
  return ports;
}
