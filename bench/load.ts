// The load generators: bulk transfer one way, 64-byte ping-pong, and many
// pairs each exchanging a small message every second. They run in the
// benchmark's own Node process on loopback; the "direct" target shows where
// the generator itself tops out.
import type { Pair } from './join.ts';

export const MiB = 1024 * 1024;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export type Direction = 'client→device' | 'device→client';

/** Sends `total` bytes from one end of the pair to the other; bytes per second from the first write to the last byte read. */
export function throughput(pair: Pair, total: number, direction: Direction): Promise<number> {
  const [sender, receiver] = direction === 'client→device' ? [pair.client, pair.device] : [pair.device, pair.client];
  const block = Buffer.alloc(MiB, 0x5a);
  return new Promise((resolve, reject) => {
    let received = 0;
    let sent = 0;
    const started = process.hrtime.bigint();
    const timer = setTimeout(() => done(new Error(`${direction}: only ${received} of ${total} bytes after 120 s`)), 120_000);
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received >= total) done();
    };
    const pump = () => {
      while (sent < total) {
        const size = Math.min(block.length, total - sent);
        sent += size;
        if (!sender.write(size === block.length ? block : block.subarray(0, size))) {
          sender.once('drain', pump);
          return;
        }
      }
    };
    function done(error?: Error) {
      clearTimeout(timer);
      receiver.off('data', onData);
      sender.removeListener('drain', pump);
      if (error) return reject(error);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolve(total / seconds);
    }
    receiver.on('data', onData);
    pump();
  });
}

/** `count` sequential round trips of `size` bytes (the device echoes); sorted round-trip times in microseconds. */
export function roundTrips(pair: Pair, count: number, size = 64, warmup = 1000): Promise<number[]> {
  const { client, device } = pair;
  const message = Buffer.alloc(size, 0x61);
  const times: number[] = [];
  return new Promise((resolve, reject) => {
    let received = 0;
    let sentAt = 0n;
    let done = 0;
    const timer = setTimeout(() => finish(new Error(`round trips stalled after ${done}`)), 120_000);
    const echo = (chunk: Buffer) => device.write(chunk);
    const onReply = (chunk: Buffer) => {
      received += chunk.length;
      if (received < size) return;
      received -= size;
      const now = process.hrtime.bigint();
      if (done >= warmup) times.push(Number(now - sentAt) / 1000);
      done++;
      if (done === count + warmup) return finish();
      sentAt = process.hrtime.bigint();
      client.write(message);
    };
    function finish(error?: Error) {
      clearTimeout(timer);
      device.off('data', echo);
      client.off('data', onReply);
      if (error) reject(error);
      else resolve(times.sort((a, b) => a - b));
    }
    device.on('data', echo);
    client.on('data', onReply);
    sentAt = process.hrtime.bigint();
    client.write(message);
  });
}

/** How often the steady load's schedule is looked at: the most a send waits for its slot. */
const SCHEDULE_TICK_MS = 1;

/**
 * Every pair's client sends a `size`-byte message once a second (the pairs
 * spread evenly over the second) and its device echoes it, for `seconds`.
 * Sorted round-trip times in microseconds, and how many messages went unanswered.
 *
 * The sends follow one schedule: pair i's are due at i/n of every second
 * after the start, and a 1 ms tick sends whatever has come due. (A timer of
 * its own per pair, started in one go, let the pairs whose first timer fired
 * late stay together: with 5,000 pairs the 10 ms after the 20th of every
 * second carried 2.5 times their share of the sends, in one burst.)
 */
export async function steadySessions(pairs: Pair[], seconds: number, size = 32): Promise<{ times: number[]; lost: number }> {
  const message = Buffer.alloc(size, 0x62);
  const times: number[] = [];
  let lost = 0;
  const cleanups: Array<() => void> = [];
  const senders = pairs.map(({ client, device }) => {
    let received = 0;
    let sentAt = 0n;
    let outstanding = false;
    const echo = (chunk: Buffer) => device.write(chunk);
    const onReply = (chunk: Buffer) => {
      received += chunk.length;
      while (received >= size && outstanding) {
        received -= size;
        outstanding = false;
        times.push(Number(process.hrtime.bigint() - sentAt) / 1000);
      }
    };
    device.on('data', echo);
    client.on('data', onReply);
    cleanups.push(() => {
      device.off('data', echo);
      client.off('data', onReply);
    });
    return () => {
      if (outstanding) lost++;
      outstanding = true;
      sentAt = process.hrtime.bigint();
      client.write(message);
    };
  });
  const start = performance.now();
  const end = start + seconds * 1000;
  /** Sends made so far: the next is pair (sent % n), due at sent/n seconds after the start. */
  let sent = 0;
  const ticker = setInterval(() => {
    const now = Math.min(performance.now(), end);
    while (senders.length > 0 && start + (sent / senders.length) * 1000 <= now) {
      senders[sent % senders.length]!();
      sent++;
    }
  }, SCHEDULE_TICK_MS);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  clearInterval(ticker);
  // The last messages get a moment to come back.
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const cleanup of cleanups) cleanup();
  return { times: times.sort((a, b) => a - b), lost };
}
