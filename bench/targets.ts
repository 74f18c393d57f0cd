// The ways a client can reach a device in the benchmark, behind one
// interface: the proxy (standalone mode, one session per pair), HAProxy in TCP
// mode, socat (one forked process per connection), a direct connection, and
// "node": the least a Node process can do to forward TCP (bench/node-forwarder.mjs),
// a floor under the proxy's figures.
// A "pair" is the client's socket and the device's socket, joined end to end.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withTimeout } from '../common/timeout.ts';
import { freePort, waitFor } from '../test/helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../test/helpers/standalone.ts';
import { controlClient } from './control-plane.ts';
import {
  BUFFERED_PROBE_RETRY_MS,
  connect,
  DeviceAttachments,
  inBatches,
  joinPair,
  type OpenedPairs,
  openProxyPairs,
  type Pair,
} from './join.ts';
import type { SessionsUnderTest } from './many-sessions.ts';
import { sessionPortRange } from './ports.ts';
import { processTree } from './process-usage.ts';

export type TargetName = 'proxy' | 'haproxy' | 'socat' | 'direct' | 'node';
export const TARGETS: TargetName[] = ['proxy', 'haproxy', 'node', 'socat', 'direct'];

export type { Pair };

export interface Target extends SessionsUnderTest {
  name: TargetName;
  /** The processes doing the forwarding (empty for a direct connection); for the proxy, the standalone mode's two processes. */
  pids(): number[];
  stop(): Promise<void>;
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
  async openPairs(frontPort: number, count: number): Promise<OpenedPairs> {
    const pairs: Pair[] = [];
    for (let i = 0; i < count; i++) {
      const device = this.next();
      const client = await connect(frontPort);
      const pair = { client, device: await withTimeout(device, 10_000, 'the forwarded connection to arrive') };
      pairs.push(pair);
    }
    const retries = await inBatches(pairs.length, 50, (i) => joinPair(pairs[i]!, BUFFERED_PROBE_RETRY_MS));
    return { pairs, probeRetries: retries.reduce((a, b) => a + b, 0), signalsMissed: 0 };
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

/**
 * `entry`: for the proxy, another checkout's operator/standalone.ts (to
 * compare two versions in one run); `env`: for the proxy, environment
 * variables of its standalone mode.
 */
export async function startTarget(
  name: TargetName,
  opts: { maxPairs: number; entry?: string; env?: Record<string, string> },
): Promise<Target> {
  switch (name) {
    case 'proxy':
      return startProxyTarget(opts.maxPairs, opts.entry, opts.env);
    case 'direct': {
      const backend = await Backend.start();
      return { name, pids: () => [], openPairs: (n) => backend.openPairs(backend.port, n), stop: () => backend.close() };
    }
    case 'haproxy':
    case 'socat':
    case 'node': {
      const backend = await Backend.start();
      const front = await freePort();
      const started =
        name === 'haproxy'
          ? startHaproxy(front, backend.port, opts.maxPairs)
          : name === 'socat'
            ? startSocat(front, backend.port)
            : startNodeForwarder(front, backend.port);
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

function startNodeForwarder(front: number, backendPort: number) {
  const script = new URL('./node-forwarder.mjs', import.meta.url).pathname;
  const started = startDetached(process.execPath, [script, String(front), String(backendPort)]);
  return { ...started, cleanup: undefined as undefined | (() => void) };
}

/** The node processes of the standalone mode (itself and its proxy process), without tsx's esbuild helpers. */
function standaloneProcesses(root: number): { all: number[]; proxy: number | undefined } {
  const commands = new Map<number, string>();
  for (const pid of processTree(root)) {
    try {
      commands.set(pid, readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    } catch {}
  }
  const all = [...commands].filter(([, command]) => command.split('\0')[0] === process.execPath).map(([pid]) => pid);
  return { all, proxy: all.find((pid) => commands.get(pid)!.includes('proxy-pod/main')) };
}

/** The admin socket the standalone mode gave its proxy process (from that process's environment). */
function adminSocketOf(pid: number): string {
  const entry = readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .find((e) => e.startsWith('CCCP_ADMIN_SOCKET='));
  if (!entry) throw new Error(`the proxy process ${pid} has no CCCP_ADMIN_SOCKET`);
  return entry.slice('CCCP_ADMIN_SOCKET='.length);
}

async function startProxyTarget(maxPairs: number, entry?: string, env: Record<string, string> = {}): Promise<Target> {
  const healthPort = await freePort();
  const app: RunningStandalone = await startStandalone({
    range: await sessionPortRange(maxPairs + 10),
    env: { CCCP_LOG_LEVEL: 'warn', CCCP_PROXY_HEALTH_PORT: String(healthPort), ...env },
    ...(entry ? { entry } : {}),
  });
  const root = app.process.child.pid!;
  let attachments: DeviceAttachments;
  try {
    const proxyPid = standaloneProcesses(root).proxy;
    if (proxyPid === undefined) throw new Error('the standalone mode has no proxy process');
    attachments = await DeviceAttachments.watch({ socketPath: adminSocketOf(proxyPid) });
  } catch (error) {
    await app.stop();
    throw error;
  }
  const control = controlClient(app.url);
  let sessions = 0;
  return {
    name: 'proxy',
    pids: () => standaloneProcesses(root).all,
    proxyPid: () => standaloneProcesses(root).proxy,
    metricsUrl: `http://127.0.0.1:${healthPort}/metrics`,
    async openPairs(count) {
      const prefix = `BENCH-${sessions}`;
      sessions += count;
      return openProxyPairs({ count, prefix, control: control.call, devicePort: app.devicePort, attachments });
    },
    async stop() {
      attachments.close();
      control.close();
      await app.stop();
    },
  };
}

/** The standalone mode itself, for the control-plane figures. */
export { startStandalone };
