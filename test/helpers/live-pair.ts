// A live session to watch while something else happens: a device and a
// client joined through the proxy, the client sending 64 bytes every 50 ms
// and the device echoing them. Round-trip times are collected in windows, so
// a test or a benchmark can take the p99 of "at rest" and "during the storm".
import { readdirSync, readFileSync } from 'node:fs';
import { connect, connectDevice, type Received, sleep, waitFor } from './net.ts';

export interface LivePair {
  /** Starts a new window of round-trip times and returns the previous one (ms, sorted). */
  mark(): number[];
  /** Messages sent that had no answer yet when the next one was due. */
  late: number;
  close(): void;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Joins a device and a client on `port` (the session of `serial`) and starts the ping-pong. */
export async function startLivePair(devicePort: number, serial: string, port: number, intervalMs = 50): Promise<LivePair> {
  const device = await connectDevice(devicePort, serial);
  const client = await connect(port);
  for (const socket of [device, client]) socket.on('error', () => {});
  const size = 64;
  // Bytes flow once both are attached: probe until the device hears the client.
  let heard = false;
  const onProbe = () => (heard = true);
  device.once('data', onProbe);
  await waitFor(
    () => {
      if (!heard) client.write('p');
      return heard;
    },
    10_000,
    'the pair to join',
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  device.removeAllListeners('data');
  client.removeAllListeners('data');

  let window: number[] = [];
  let sentAt = 0n;
  let received = 0;
  let outstanding = false;
  const pair: LivePair = {
    late: 0,
    mark() {
      const done = window.sort((a, b) => a - b);
      window = [];
      return done;
    },
    close() {
      clearInterval(timer);
      device.destroy();
      client.destroy();
    },
  };
  const message = Buffer.alloc(size, 0x61);
  device.on('data', (chunk: Buffer) => device.write(chunk));
  client.on('data', (chunk: Buffer) => {
    received += chunk.length;
    while (received >= size && outstanding) {
      received -= size;
      outstanding = false;
      window.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
    }
  });
  // Stray probe bytes still in flight are skipped by counting whole messages only.
  received = 0;
  const timer = setInterval(() => {
    if (outstanding) {
      pair.late++;
      return;
    }
    outstanding = true;
    sentAt = process.hrtime.bigint();
    client.write(message);
  }, intervalMs);
  return pair;
}

/** Descriptors the process holds, from /proc. */
export function descriptorCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The pids of a process's direct children, from /proc. */
export function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (text) found.push(...text.split(/\s+/).map(Number));
  }
  return found;
}

/** A joined device and client, each read through a Received. */
export interface JoinedPair {
  device: Received;
  client: Received;
}

/**
 * Keeps one byte crossing every pair per round (client to device, and with
 * `bothWays` device to client too) until `stop()`, which resolves the number
 * of rounds. A byte that does not arrive within `timeoutMs` fails the traffic,
 * and so `stop()`.
 */
export function keepTraffic(pairs: JoinedPair[], opts: { bothWays: boolean; timeoutMs: number }): { stop(): Promise<number> } {
  let rounds = 0;
  let stopped = false;
  const traffic = (async () => {
    while (!stopped) {
      rounds++;
      await Promise.all(
        pairs.map(async ({ device, client }) => {
          const [toDevice, toClient] = [device.length, client.length];
          client.socket.write('d');
          if (opts.bothWays) device.socket.write('c');
          await Promise.all([
            device.untilLength(toDevice + 1, opts.timeoutMs),
            ...(opts.bothWays ? [client.untilLength(toClient + 1, opts.timeoutMs)] : []),
          ]);
        }),
      );
      await sleep(20);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await traffic;
      return rounds;
    },
  };
}
