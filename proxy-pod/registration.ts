// Parses a device's registration line: its serial, then CR, LF or CRLF.
// Pure: bytes in, verdict out. The caller owns the socket and the deadline.

export const MAX_SERIAL_LENGTH = 64;

const CR = 0x0d;
const LF = 0x0a;

export type RegistrationRejection = 'too-long' | 'non-printable' | 'empty';

export type RegistrationStep =
  | { kind: 'incomplete' }
  | { kind: 'rejected'; reason: RegistrationRejection }
  /**
   * `payload` is what followed the line ending in the same bytes.
   * `endedWithCr` is set when the CR was the last byte seen, so an LF that is
   * the very next byte may still belong to a CRLF ending.
   */
  | { kind: 'registered'; serial: string; payload: Buffer; endedWithCr: boolean };

export function isSerialByte(byte: number): boolean {
  return byte >= 0x21 && byte <= 0x7e;
}

/** True when a device could register with this serial. */
export function isValidSerial(serial: string): boolean {
  if (serial.length < 1 || serial.length > MAX_SERIAL_LENGTH) return false;
  for (let i = 0; i < serial.length; i++) if (!isSerialByte(serial.charCodeAt(i))) return false;
  return true;
}

/** Accumulates bytes until the registration line is complete or refused. */
export class RegistrationParser {
  private serial: number[] = [];

  push(chunk: Buffer): RegistrationStep {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] ?? 0;
      if (byte === CR || byte === LF) {
        if (this.serial.length === 0) return { kind: 'rejected', reason: 'empty' };
        const crIsLast = byte === CR && i + 1 === chunk.length;
        const next = byte === CR && chunk[i + 1] === LF ? i + 2 : i + 1;
        return {
          kind: 'registered',
          serial: Buffer.from(this.serial).toString('latin1'),
          payload: chunk.subarray(next),
          endedWithCr: crIsLast,
        };
      }
      if (!isSerialByte(byte)) return { kind: 'rejected', reason: 'non-printable' };
      if (this.serial.length === MAX_SERIAL_LENGTH) return { kind: 'rejected', reason: 'too-long' };
      this.serial.push(byte);
    }
    return { kind: 'incomplete' };
  }
}
