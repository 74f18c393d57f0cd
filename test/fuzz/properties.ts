// Properties of the parsers that face hostile input: the registration line,
// the whitelist matcher and the Control API's query. Shared by the short run
// in `npm test` (test/fuzz.test.ts) and the long one (`npm run fuzz`).

import { isIP } from 'node:net';
import fc from 'fast-check';
import { parseOnQuery } from '../../operator/query-validation.ts';
import { AddressMatcher } from '../../proxy-pod/address-matcher.ts';
import { isValidSerial, RegistrationParser } from '../../proxy-pod/registration.ts';

const serialByte = fc.integer({ min: 0x21, max: 0x7e });
const serial = fc.array(serialByte, { minLength: 1, maxLength: 64 }).map((bytes) => Buffer.from(bytes).toString('latin1'));
const anyBytes = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));

/** Cuts a buffer into chunks at the given (sorted, deduplicated) offsets. */
function split(whole: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, whole.length]) {
    chunks.push(whole.subarray(start, point));
    start = point;
  }
  return chunks.filter((c) => c.length > 0);
}

/** Feeds chunks; returns the serial and every byte the device side would forward as payload. */
function register(chunks: Buffer[]): { serial?: string; payload: Buffer; rejected: boolean } {
  const parser = new RegistrationParser();
  for (let i = 0; i < chunks.length; i++) {
    const step = parser.push(chunks[i]!);
    if (step.kind === 'rejected') return { payload: Buffer.alloc(0), rejected: true };
    if (step.kind === 'registered') {
      let rest = Buffer.concat([step.payload, ...chunks.slice(i + 1)]);
      // A CR at the end of a read: an LF that follows at once completes CRLF (see session.ts).
      if (step.endedWithCr && step.payload.length === 0 && rest[0] === 0x0a) rest = rest.subarray(1);
      return { serial: step.serial, payload: rest, rejected: false };
    }
  }
  return { payload: Buffer.alloc(0), rejected: false };
}

export const registrationProperties = {
  'a valid serial with any ending and payload, split anywhere, registers exactly': fc.property(
    serial,
    fc.constantFrom('\r', '\n', '\r\n'),
    anyBytes,
    fc.array(fc.nat(), { maxLength: 8 }),
    (s, ending, payload, cuts) => {
      // After a lone CR, a payload starting with LF would make the ending CRLF by definition.
      if (ending === '\r' && payload[0] === 0x0a) return;
      const whole = Buffer.concat([Buffer.from(s + ending, 'latin1'), payload]);
      const result = register(split(whole, cuts));
      return result.serial === s && result.payload.equals(payload);
    },
  ),
  'arbitrary bytes never yield an invalid serial, and a registered serial is the text before the first line ending': fc.property(
    anyBytes,
    fc.array(fc.nat(), { maxLength: 8 }),
    (bytes, cuts) => {
      const result = register(split(bytes, cuts));
      if (result.serial === undefined) return true;
      const end = bytes.findIndex((b) => b === 0x0d || b === 0x0a);
      return isValidSerial(result.serial) && result.serial === bytes.subarray(0, end).toString('latin1');
    },
  ),
  'a byte outside 0x21-0x7E before the line ending is refused': fc.property(
    serial,
    fc.integer({ min: 0, max: 255 }).filter((b) => (b < 0x21 || b > 0x7e) && b !== 0x0d && b !== 0x0a),
    fc.nat(),
    (s, bad, at) => {
      const bytes = Buffer.from(s, 'latin1');
      const position = at % (bytes.length + 1);
      const line = Buffer.concat([bytes.subarray(0, position), Buffer.from([bad]), bytes.subarray(position), Buffer.from('\r')]);
      return register([line]).rejected;
    },
  ),
};

/** Forms that some parsers read as addresses: octal, hex, short, padded, zoned. */
const ODD_FORMS = [
  '010.0.0.1',
  '0x7f.0.0.1',
  '0x7f000001',
  '127.1',
  '1.2.3',
  '2130706433',
  ' 10.0.0.1',
  '10.0.0.1 ',
  '10.0.0.01',
  '::ffff:10.0.0.1',
  '::ffff:0a00:0001',
  'fe80::1%eth0',
  '[::1]',
  '1.2.3.4.5',
  '256.1.1.1',
  '-1.0.0.0',
  '+1.2.3.4',
  '1e3.0.0.0',
];

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
const dotted = (a: number[]) => a.join('.');
const toInt = (a: number[]) => ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;

export const whitelistProperties = {
  'an IPv4 CIDR admits exactly the addresses that share its prefix': fc.property(
    ipv4,
    fc.integer({ min: 0, max: 32 }),
    ipv4,
    (net, bits, peer) => {
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      const inside = (toInt(net) & mask) === (toInt(peer) & mask);
      const matcher = new AddressMatcher([`${dotted(net)}/${bits}`]);
      return matcher.admits(dotted(peer)) === inside && matcher.admits(`::ffff:${dotted(peer)}`) === inside;
    },
  ),
  'a single IP admits only itself, also written as IPv4-mapped IPv6': fc.property(ipv4, ipv4, (listed, peer) => {
    const same = dotted(listed) === dotted(peer);
    return (
      new AddressMatcher([dotted(listed)]).admits(dotted(peer)) === same &&
      new AddressMatcher([`::ffff:${dotted(listed)}`]).admits(dotted(peer)) === same
    );
  }),
  'an entry in an odd form is refused rather than read as something else': fc.property(
    fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.tuple(fc.constantFrom(...ODD_FORMS), fc.constantFrom('', '/8', '/33', '/', ' ', '/08', '/-1', '%eth0')).map(([a, b]) => a + b),
    ),
    (entry) => {
      let matcher: AddressMatcher;
      try {
        matcher = new AddressMatcher([entry]);
      } catch {
        return true;
      }
      // Accepted only as plain IP text, with an optional decimal prefix, and it admits its own address.
      const [base = '', prefix, ...rest] = entry.split('/');
      return (
        isIP(base) !== 0 &&
        !base.includes('%') &&
        rest.length === 0 &&
        (prefix === undefined || /^(0|[1-9]\d{0,2})$/.test(prefix)) &&
        matcher.admits(base)
      );
    },
  ),
};

const queryChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz_=&%+,./:0123456789ABCDEF-'.split(''));

export const queryProperties = {
  'any query string gets a value or a 400 that names a parameter, never an exception': fc.property(
    fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.array(queryChar, { maxLength: 120 }).map((c) => c.join('')),
    ),
    (query) => {
      const result = parseOnQuery(query);
      if (result.ok) {
        const { serial: s, timeoutSeconds, ipWhitelist } = result.value;
        return (
          isValidSerial(s) &&
          (timeoutSeconds === undefined || (timeoutSeconds >= 1 && timeoutSeconds <= 86_400)) &&
          ipWhitelist.every((e) => {
            try {
              new AddressMatcher([e]);
              return true;
            } catch {
              return false;
            }
          })
        );
      }
      // The message names the parameter; one with unprintable bytes is named escaped.
      const printable = /^[\x21-\x7e]{1,20}$/.test(result.parameter);
      return result.parameter.length > 0 && (!printable || result.message.includes(result.parameter));
    },
  ),
  'well-formed /on parameters are accepted as given': fc.property(
    serial,
    fc.option(fc.boolean(), { nil: undefined }),
    fc.option(fc.integer({ min: 1, max: 86_400 }), { nil: undefined }),
    fc.array(ipv4, { maxLength: 5 }),
    (s, persistent, timeout, whitelist) => {
      const parts = [`serial=${encodeURIComponent(s)}`];
      if (persistent !== undefined) parts.push(`persistent=${persistent}`);
      if (timeout !== undefined) parts.push(`timeout=${timeout}`);
      if (whitelist.length > 0) parts.push(`ip_whitelist=${whitelist.map(dotted).join(',')}`);
      const result = parseOnQuery(parts.join('&'));
      return (
        result.ok &&
        result.value.serial === s &&
        result.value.persistent === (persistent ?? false) &&
        result.value.timeoutSeconds === timeout &&
        result.value.ipWhitelist.length === new Set(whitelist.map(dotted)).size
      );
    },
  ),
};
