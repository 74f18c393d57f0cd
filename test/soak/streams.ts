// Verifiable byte streams for the soak: every direction of every connection
// pair carries a deterministic stream (a fixed random pattern read from an
// offset chosen by the stream's key), so the receiver checks each byte
// without keeping a copy, and a lost, duplicated or reordered byte shows up
// as a mismatch.
import { randomBytes } from 'node:crypto';

/** A prime length, so streams with nearby keys do not line up. */
const PATTERN_LENGTH = 65_521;
const pattern = randomBytes(PATTERN_LENGTH);
const doubled = Buffer.concat([pattern, pattern]);

export class StreamWriter {
  /** Bytes produced so far. */
  offset = 0;

  constructor(private readonly key: number) {}

  next(length: number): Buffer {
    const parts: Buffer[] = [];
    let left = length;
    while (left > 0) {
      const n = Math.min(left, PATTERN_LENGTH);
      const start = (this.key + this.offset) % PATTERN_LENGTH;
      parts.push(doubled.subarray(start, start + n));
      this.offset += n;
      left -= n;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

export class StreamChecker {
  /** Bytes received so far. */
  offset = 0;
  /** Received bytes that differ from the stream. */
  mismatched = 0;

  constructor(private readonly key: number) {}

  check(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const n = Math.min(chunk.length - at, PATTERN_LENGTH);
      const start = (this.key + this.offset) % PATTERN_LENGTH;
      const expected = doubled.subarray(start, start + n);
      const got = chunk.subarray(at, at + n);
      if (!got.equals(expected)) {
        for (let i = 0; i < n; i++) if (got[i] !== expected[i]) this.mismatched++;
      }
      this.offset += n;
      at += n;
    }
  }
}
