// Properties of the parsers that face hostile input: the registration line,
// the whitelist matcher, the Control API's query and the PROXY protocol header. Shared by the short run
// in `npm test` (test/fuzz.test.ts) and the long one (`npm run fuzz`).

import { isIP } from 'node:net';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { parseOnQuery } from '../../operator/query-validation.ts';
import { AddressMatcher } from '../../proxy-pod/address-matcher.ts';
import {
  type HeaderStep,
  MAX_V1_LENGTH,
  MAX_V2_BODY_LENGTH,
  ProxyHeaderParser,
  parseProxyHeader,
  V2_FIXED_LENGTH,
  V2_SIGNATURE,
} from '../../proxy-pod/proxy-header.ts';
import { isValidSerial, RegistrationParser } from '../../proxy-pod/registration.ts';
import { type Endpoint, encodeV1, encodeV2, type Tlv } from '../helpers/proxy-header.ts';

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

const port = fc.integer({ min: 0, max: 65_535 });
const ipv6 = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => {
    const groups = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return groups.join(':');
  }),
  ipv4.map((a) => `::ffff:${dotted(a)}`),
  fc.constantFrom('::', '::1', '2001:db8::', 'fe80::1:0:0:1'),
);
const endpoints = fc.oneof(
  fc.tuple(ipv4, port, ipv4, port).map(
    ([a, ap, b, bp]) =>
      [
        { address: dotted(a), port: ap },
        { address: dotted(b), port: bp },
      ] as const,
  ),
  fc.tuple(ipv6, port, ipv6, port).map(
    ([a, ap, b, bp]) =>
      [
        { address: a, port: ap },
        { address: b, port: bp },
      ] as const,
  ),
);
const tlvs = fc.array(
  fc.record({ type: fc.integer({ min: 0, max: 255 }), value: fc.uint8Array({ maxLength: 600, size: 'large' }).map((a) => Buffer.from(a)) }),
  { maxLength: 5, size: 'medium' },
);
const validHeader = fc.oneof(
  endpoints.map(([source, destination]) => ({ bytes: encodeV1(source, destination), source, destination })),
  fc
    .tuple(endpoints, tlvs)
    .filter(([, list]) => list.reduce((n, t) => n + 3 + t.value.length, 0) <= MAX_V2_BODY_LENGTH - 36)
    .map(([[source, destination], list]: [readonly [Endpoint, Endpoint], Tlv[]]) => ({
      bytes: encodeV2({ source, destination, tlvs: list }),
      source,
      destination,
    })),
);
/** Random bytes, some starting like a header, so the parser's deeper paths are reached too. */
const garbage = fc.oneof(
  anyBytes,
  anyBytes.map((b) => Buffer.concat([Buffer.from('PROXY ', 'latin1'), b])),
  fc
    .constantFrom('TCP4 ', 'TCP6 ', 'UNKNOWN', 'TCP4 1.2.3.4 5.6.7.8 ')
    .chain((family) => anyBytes.map((b) => Buffer.concat([Buffer.from(`PROXY ${family}`, 'latin1'), b]))),
  fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), anyBytes)
    .map(([versionCommand, family, length, rest]) => {
      const fixed = Buffer.alloc(4);
      fixed.writeUInt8(versionCommand, 0);
      fixed.writeUInt8(family, 1);
      fixed.writeUInt16BE(length % (MAX_V2_BODY_LENGTH + 64), 2);
      return Buffer.concat([V2_SIGNATURE, fixed, rest]);
    }),
);
const mode = fc.constantFrom('v1' as const, 'v2' as const, 'any' as const);
/** Canonical text of an address, as the parser gives it. */
function canonical(address: string): string {
  if (!address.includes(':')) return address;
  const parsed = ipaddr.IPv6.parse(address);
  return parsed.isIPv4MappedAddress() ? `::ffff:${parsed.toIPv4Address()}` : parsed.toRFC5952String();
}

/** Feeds chunks until a verdict; returns it with the bytes the connection would be left with. */
function readHeader(chunks: Buffer[], as: 'v1' | 'v2' | 'any'): { step: HeaderStep; after: Buffer } {
  const parser = new ProxyHeaderParser(as);
  for (let i = 0; i < chunks.length; i++) {
    const step = parser.push(chunks[i]!);
    if (step.kind === 'read') return { step, after: Buffer.concat([step.rest, ...chunks.slice(i + 1)]) };
    if (step.kind === 'rejected') return { step, after: Buffer.alloc(0) };
  }
  return { step: { kind: 'incomplete' }, after: Buffer.alloc(0) };
}

export const proxyHeaderProperties = {
  'random bytes never throw: refused, or incomplete only while shorter than the longest header, or read within them': fc.property(
    garbage,
    mode,
    (bytes, as) => {
      const step = parseProxyHeader(bytes, as);
      if (step.kind === 'incomplete') return bytes.length < (bytes[0] === 0x50 ? MAX_V1_LENGTH : V2_FIXED_LENGTH + MAX_V2_BODY_LENGTH);
      if (step.kind === 'read') return step.length <= bytes.length && step.length <= V2_FIXED_LENGTH + MAX_V2_BODY_LENGTH;
      return true;
    },
  ),
  'bytes that start like neither version are refused at once': fc.property(anyBytes, mode, (bytes, as) => {
    if (bytes.length === 0 || bytes[0] === 0x50 || bytes[0] === 0x0d) return true;
    return parseProxyHeader(bytes, as).kind === 'rejected';
  }),
  'an encoded header of random endpoints and TLVs reads back exactly, split anywhere, and what follows it is left untouched': fc.property(
    validHeader,
    anyBytes,
    fc.array(fc.nat(), { maxLength: 8 }),
    ({ bytes, source, destination }, payload, cuts) => {
      const { step, after } = readHeader(split(Buffer.concat([bytes, payload]), cuts), 'any');
      return (
        step.kind === 'read' &&
        step.length === bytes.length &&
        after.equals(payload) &&
        step.source?.address === canonical(source.address) &&
        step.source.port === source.port &&
        step.destination?.address === canonical(destination.address) &&
        step.destination.port === destination.port
      );
    },
  ),
  'every strict prefix of a valid header needs more bytes; no byte past the header is ever consumed': fc.property(
    validHeader,
    fc.nat(),
    ({ bytes }, cut) => {
      const prefix = bytes.subarray(0, cut % bytes.length);
      return parseProxyHeader(prefix, 'any').kind === 'incomplete';
    },
  ),
  'a header with any byte of its signature changed is refused at once': fc.property(
    validHeader,
    fc.nat(),
    fc.integer({ min: 1, max: 255 }),
    ({ bytes }, at, flip) => {
      const forged = Buffer.from(bytes);
      // "PROXY " for v1, the 12-byte signature for v2.
      const index = at % (bytes[0] === 0x50 ? 6 : V2_SIGNATURE.length);
      forged[index] = forged[index]! ^ flip;
      return parseProxyHeader(forged, 'any').kind === 'rejected';
    },
  ),
};
