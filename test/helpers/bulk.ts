// Bulk transfers for byte-exact checks: each side hashes what it sent or got.
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';

export const MiB = 1024 * 1024;

/** Writes `total` bytes (a different 1 MiB each time) as fast as the socket takes them; resolves with their hash. */
export function sendHashed(socket: net.Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(MiB);
  let sent = 0;
  return new Promise((resolve, reject) => {
    socket.on('error', reject);
    const pump = () => {
      while (sent < total) {
        // A different 1 MiB each time, so a lost or repeated block changes the hash.
        const chunk = Buffer.from(block);
        chunk.writeUInt32BE(sent / MiB, 0);
        hash.update(chunk);
        sent += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      resolve(hash.digest('hex'));
    };
    pump();
  });
}

/**
 * Reads exactly `total` bytes and resolves with their hash; more than that,
 * or not all of it within timeoutMs, is an error. With `bytesPerSecond` it
 * reads no faster than that (a slow reader).
 */
export function receiveHashed(
  socket: net.Socket,
  total: number,
  options: { bytesPerSecond?: number; timeoutMs?: number } = {},
): Promise<string> {
  const { bytesPerSecond, timeoutMs = 60_000 } = options;
  const hash = createHash('sha256');
  let received = 0;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`received ${received} of ${total} bytes`)), timeoutMs);
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      if (received > total) reject(new Error(`received ${received} bytes, more than ${total}`));
      if (received === total) {
        clearTimeout(timer);
        resolve(hash.digest('hex'));
        return;
      }
      if (bytesPerSecond) {
        const aheadMs = (received / bytesPerSecond) * 1000 - (Date.now() - started);
        if (aheadMs > 0) {
          socket.pause();
          setTimeout(() => socket.resume(), aheadMs);
        }
      }
    });
  });
}
