// The four ways a client can reach a device in the benchmark, behind one
// interface: the proxy (standalone mode, one session per pair), HAProxy in TCP
// mode, socat (one forked process per connection), and a direct connection.
// A "pair" is the client's socket and the device's socket, joined end to end.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../test/helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../test/helpers/standalone.ts';
import { processTree } from './process-usage.ts';

export type TargetName = 'proxy' | 'haproxy' | 'socat' | 'direct';
export const TARGETS: TargetName[] = ['proxy', 'haproxy', 'socat', 'direct'];

export interface Pair {
  client: net.Socket;
  device: net.Socket;
}

export interface Target {
  name: TargetName;
  /** The processes doing the forwarding (empty for a direct connection). */
  pids(): number[];
  openPairs(count: number): Promise<Pair[]>;
  stop(): Promise<void>;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Waits until bytes flow end to end: the client sends 'p' until the device
 * answers 'J' (a proxy drops bytes while a party is missing), then 'E' marks
 * the end of the probes so the device can discard them all.
 */
export function joinPair(pair: Pair, timeoutMs = 15_000): Promise<void> {
  const { client, device } = pair;
  return new Promise((resolve, reject) => {
    let answered = false;
    const probe = setInterval(() => client.write('p'), 25);
    client.write('p');
    const timer = setTimeout(() => finish(new Error('the pair did not join')), timeoutMs);
    const onDevice = (chunk: Buffer) => {
      if (!answered) {
        answered = true;
        device.write('J');
      }
      if (chunk.includes(0x45 /* E */)) finish();
    };
    const onClient = (chunk: Buffer) => {
      if (chunk.includes(0x4a /* J */)) {
        clearInterval(probe);
        client.off('data', onClient);
        client.write('E');
      }
    };
    function finish(error?: Error) {
      clearInterval(probe);
      clearTimeout(timer);
      device.off('data', onDevice);
      client.off('data', onClient);
      if (error) reject(error);
      else resolve();
    }
    device.on('data', onDevice);
    client.on('data', onClient);
  });
}

async function inBatches<T>(count: number, width: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await make(i);
      }
    }),
  );
  return out;
}

/** The device end for haproxy, socat and direct: a TCP server whose accepted sockets are handed out in order. */
class Backend {
  private readonly waiting: Array<(socket: net.Socket) => void> = [];
  private readonly early: net.Socket[] = [];
  private constructor(
    readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<Backend> {
    const server = net.createServer({ noDelay: true });
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
    const backend = new Backend(server, (server.address() as net.AddressInfo).port);
    server.on('connection', (socket) => {
      socket.setNoDelay(true);
      socket.on('error', () => {});
      const waiter = backend.waiting.shift();
      if (waiter) waiter(socket);
      else backend.early.push(socket);
    });
    return backend;
  }

  next(): Promise<net.Socket> {
    const socket = this.early.shift();
    if (socket) return Promise.resolve(socket);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Pairs opened one at a time, so that the n-th accepted socket belongs to the n-th client. */
  async openPairs(frontPort: number, count: number): Promise<Pair[]> {
    const pairs: Pair[] = [];
    for (let i = 0; i < count; i++) {
      const device = this.next();
      const client = await connect(frontPort);
      const pair = { client, device: await withTimeout(device, 10_000, 'the forwarded connection to arrive') };
      pairs.push(pair);
    }
    await inBatches(pairs.length, 50, (i) => joinPair(pairs[i]!));
    return pairs;
  }

  /** Drops connections that arrived before anyone asked for them (readiness probes). */
  drainEarly(): void {
    for (const socket of this.early.splice(0)) socket.destroy();
  }

  close(): Promise<void> {
    for (const socket of this.early.splice(0)) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms))),
  ]).finally(() => clearTimeout(timer));
}

function startDetached(command: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  process.on('exit', () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  });
  return { child, output: () => output };
}

async function stopDetached(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {}
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  }, 3000);
  await exited;
  clearTimeout(timer);
}

async function listening(port: number, what: string, output: () => string): Promise<void> {
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        // A probe that connects and closes at once; what it makes haproxy or socat
        // forward to the backend is discarded by the caller.
        const socket = net.connect({ port, host: '127.0.0.1' });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    10_000,
    what,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; output:\n${output()}`);
  });
}

export async function startTarget(name: TargetName, opts: { maxPairs: number }): Promise<Target> {
  switch (name) {
    case 'proxy':
      return startProxyTarget(opts.maxPairs);
    case 'direct': {
      const backend = await Backend.start();
      return { name, pids: () => [], openPairs: (n) => backend.openPairs(backend.port, n), stop: () => backend.close() };
    }
    case 'haproxy':
    case 'socat': {
      const backend = await Backend.start();
      const front = await freePort();
      const started = name === 'haproxy' ? startHaproxy(front, backend.port, opts.maxPairs) : startSocat(front, backend.port);
      await listening(front, `${name} to listen`, started.output);
      // Discard the probe's forwarded connection(s).
      await new Promise((r) => setTimeout(r, 200));
      backend.drainEarly();
      return {
        name,
        pids: () => processTree(started.child.pid!),
        openPairs: (n) => backend.openPairs(front, n),
        async stop() {
          await stopDetached(started.child);
          started.cleanup?.();
          await backend.close();
        },
      };
    }
  }
}

function startHaproxy(front: number, backendPort: number, maxPairs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-bench-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  // One thread, like the proxy's one event loop; TCP mode; no timeouts that
  // could cut the idle-ish connections of the many-sessions run.
  writeFileSync(
    config,
    [
      'global',
      '  nbthread 1',
      // Counted per proxied connection; haproxy sizes its file limit from it (two fds each).
      `  maxconn ${maxPairs + 100}`,
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 1h',
      '  timeout server 1h',
      'frontend bench',
      `  bind 127.0.0.1:${front}`,
      `  maxconn ${maxPairs + 50}`,
      '  default_backend device',
      'backend device',
      `  server device 127.0.0.1:${backendPort}`,
      '',
    ].join('\n'),
  );
  const started = startDetached('haproxy', ['-db', '-f', config]);
  return { ...started, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function startSocat(front: number, backendPort: number) {
  const started = startDetached('socat', [
    `TCP-LISTEN:${front},bind=127.0.0.1,fork,reuseaddr,backlog=4096,nodelay`,
    `TCP:127.0.0.1:${backendPort},nodelay`,
  ]);
  return { ...started, cleanup: undefined as undefined | (() => void) };
}

async function startProxyTarget(maxPairs: number): Promise<Target> {
  const app: RunningStandalone = await startStandalone({ rangeSize: maxPairs + 10, env: { CCCP_LOG_LEVEL: 'warn' } });
  let sessions = 0;
  return {
    name: 'proxy',
    pids: () => [app.process.child.pid!],
    async openPairs(count) {
      const first = sessions;
      sessions += count;
      const ports = await inBatches(count, 16, async (i) => {
        const answer = await app.call(`/on?serial=BENCH-${first + i}&persistent=true`);
        if (answer.status !== 200) throw new Error(`/on answered ${answer.status}: ${JSON.stringify(answer.body)}`);
        return (answer.body as { port: number }).port;
      });
      const pairs = await inBatches(count, 50, async (i) => {
        const device = await connect(app.devicePort);
        device.write(`BENCH-${first + i}\r`);
        const pair = { client: await connect(ports[i]!), device };
        await joinPair(pair);
        return pair;
      });
      return pairs;
    },
    async stop() {
      await app.stop();
    },
  };
}

/** The standalone mode itself, for the control-plane figures. */
export { startStandalone };
