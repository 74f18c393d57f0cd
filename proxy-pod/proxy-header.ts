// Parses the PROXY protocol header (haproxy's doc/proxy-protocol.txt) that a
// load balancer puts before a connection's first byte: version 1 (one text
// line) and version 2 (binary). Pure: bytes in, verdict out. The caller owns
// the socket, the deadline and what follows the header.
import { isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Which header versions a listener expects; `off` means none is read. */
export type ProxyProtocolMode = 'off' | 'v1' | 'v2' | 'any';
export const PROXY_PROTOCOL_MODES: readonly ProxyProtocolMode[] = ['off', 'v1', 'v2', 'any'];

/** The longest v1 line the spec allows, CRLF included ("PROXY UNKNOWN" with two IPv6 addresses). */
export const MAX_V1_LENGTH = 107;
/** v2: the fixed part (signature, version and command, family, length). */
export const V2_FIXED_LENGTH = 16;
/**
 * v2: most bytes after the fixed part (addresses and TLVs). The field allows
 * 65,535; load balancers send tens (AWS, GCP and Azure add one short TLV), so
 * a longer header is refused rather than held for every unauthenticated
 * connection.
 */
export const MAX_V2_BODY_LENGTH = 2048;

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const CR = 0x0d;
const LF = 0x0a;

/** v2 family and protocol bytes the spec defines; any other is refused. */
const V2_FAMILIES = new Set([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]);
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const V2_LOCAL = 0x0;
const V2_PROXY = 0x1;

export type HeaderRejection =
  | 'bad-signature'
  | 'bad-version'
  | 'bad-command'
  | 'bad-family'
  | 'bad-length'
  | 'bad-tlv'
  | 'bad-line'
  | 'bad-address'
  | 'bad-port';

export interface ProxiedEndpoint {
  address: string;
  port: number;
}

export type HeaderStep =
  | { kind: 'incomplete' }
  | { kind: 'rejected'; reason: HeaderRejection }
  /**
   * `length` is the header's size in bytes: what follows it is the
   * connection's own data. `source` is absent for v1 UNKNOWN and v2 LOCAL,
   * where the spec says to use the connection's own addresses.
   */
  | HeaderRead;

export interface HeaderRead {
  kind: 'read';
  version: 1 | 2;
  length: number;
  source?: ProxiedEndpoint;
  destination?: ProxiedEndpoint;
}

const rejected = (reason: HeaderRejection): HeaderStep => ({ kind: 'rejected', reason });
const INCOMPLETE: HeaderStep = { kind: 'incomplete' };

/**
 * Reads the header at the start of `bytes`. `incomplete` only while fewer
 * bytes than the longest acceptable header have arrived, and only when every
 * byte so far can still start a valid one: a device or client that sends no
 * header is refused at its first byte, not at the deadline.
 */
export function parseProxyHeader(bytes: Buffer, mode: Exclude<ProxyProtocolMode, 'off'>): HeaderStep {
  if (bytes.length === 0) return INCOMPLETE;
  if (mode !== 'v1' && bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes);
  if (mode !== 'v2' && bytes[0] === V1_PREFIX[0]) return parseV1(bytes);
  return rejected('bad-signature');
}

function parseV2(bytes: Buffer): HeaderStep {
  const signed = Math.min(bytes.length, V2_SIGNATURE.length);
  if (!bytes.subarray(0, signed).equals(V2_SIGNATURE.subarray(0, signed))) return rejected('bad-signature');
  if (bytes.length <= V2_SIGNATURE.length) return INCOMPLETE;
  const versionCommand = bytes[12] ?? 0;
  if (versionCommand >> 4 !== 2) return rejected('bad-version');
  const command = versionCommand & 0x0f;
  if (command !== V2_LOCAL && command !== V2_PROXY) return rejected('bad-command');
  if (bytes.length < 14) return INCOMPLETE;
  const family = bytes[13] ?? 0;
  if (!V2_FAMILIES.has(family)) return rejected('bad-family');
  // A relayed connection must say where it came from over TCP: UNSPEC, UDP and
  // UNIX would leave the load balancer's own address in the whitelist's place.
  if (command === V2_PROXY && family !== V2_TCP4 && family !== V2_TCP6) return rejected('bad-family');
  if (bytes.length < V2_FIXED_LENGTH) return INCOMPLETE;
  const bodyLength = bytes.readUInt16BE(14);
  if (bodyLength > MAX_V2_BODY_LENGTH) return rejected('bad-length');
  const addressLength = command === V2_LOCAL ? 0 : family === V2_TCP4 ? 12 : 36;
  if (bodyLength < addressLength) return rejected('bad-length');
  const length = V2_FIXED_LENGTH + bodyLength;
  if (bytes.length < length) return INCOMPLETE;
  // LOCAL: the spec says to ignore the block, family included.
  if (command === V2_LOCAL) return { kind: 'read', version: 2, length };
  if (!tlvsFit(bytes, V2_FIXED_LENGTH + addressLength, length)) return rejected('bad-tlv');
  const body = bytes.subarray(V2_FIXED_LENGTH);
  const size = family === V2_TCP4 ? 4 : 16;
  const ports = body.subarray(2 * size);
  return {
    kind: 'read',
    version: 2,
    length,
    source: { address: addressText(body.subarray(0, size)), port: ports.readUInt16BE(0) },
    destination: { address: addressText(body.subarray(size, 2 * size)), port: ports.readUInt16BE(2) },
  };
}

/** TLVs (type, 16-bit length, value) must tile [start, end) exactly; their content is ignored. */
function tlvsFit(bytes: Buffer, start: number, end: number): boolean {
  let at = start;
  while (at < end) {
    if (at + 3 > end) return false;
    at += 3 + bytes.readUInt16BE(at + 1);
  }
  return at === end;
}

/** IPv4 dotted quad; IPv6 in RFC 5952 form, an IPv4-mapped one as ::ffff:a.b.c.d like Node writes it. */
function addressText(raw: Buffer): string {
  if (raw.length === 4) return raw.join('.');
  const address = ipaddr.fromByteArray([...raw]) as ipaddr.IPv6;
  return address.isIPv4MappedAddress() ? `::ffff:${address.toIPv4Address().toString()}` : address.toRFC5952String();
}

const IPV4_OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** Four decimal octets without leading zeros, as the spec requires (no octal look-alikes). */
const CANONICAL_IPV4 = new RegExp(`^${IPV4_OCTET}(?:\\.${IPV4_OCTET}){3}$`);
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;
const PORT = /^(?:0|[1-9]\d{0,4})$/;

function parseV1(bytes: Buffer): HeaderStep {
  const prefixed = Math.min(bytes.length, V1_PREFIX.length);
  if (!bytes.subarray(0, prefixed).equals(V1_PREFIX.subarray(0, prefixed))) return rejected('bad-signature');
  const scanned = Math.min(bytes.length, MAX_V1_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < scanned; i++) {
    const byte = bytes[i] ?? 0;
    if (byte === CR) {
      // A CR must be followed by LF; a lone CR or LF never ends the line.
      if (i + 1 < bytes.length && bytes[i + 1] !== LF) return rejected('bad-line');
      if (i + 1 < scanned) end = i;
      break;
    }
    if (byte < 0x20 || byte > 0x7e) return rejected('bad-line');
  }
  if (end < 0) return bytes.length >= MAX_V1_LENGTH ? rejected('bad-line') : INCOMPLETE;
  const fields = bytes.subarray(V1_PREFIX.length, end).toString('latin1').split(' ');
  const length = end + 2;
  // UNKNOWN: the spec says to ignore the rest of the line and use the connection's addresses.
  if (fields[0] === 'UNKNOWN') return { kind: 'read', version: 1, length };
  if (fields.length !== 5) return rejected('bad-line');
  const [protocol, source = '', destination = '', sourcePort = '', destinationPort = ''] = fields;
  const valid =
    protocol === 'TCP4'
      ? (text: string) => CANONICAL_IPV4.test(text)
      : protocol === 'TCP6'
        ? (text: string) => IPV6_CHARS.test(text) && isIPv6(text)
        : undefined;
  if (!valid) return rejected('bad-family');
  const addresses = [source, destination].map((text) => (valid(text) ? canonicalAddress(text) : undefined));
  if (addresses[0] === undefined || addresses[1] === undefined) return rejected('bad-address');
  const ports = [sourcePort, destinationPort].map((text) => (PORT.test(text) ? Number(text) : -1));
  if (ports.some((port) => port < 0 || port > 65_535)) return rejected('bad-port');
  return {
    kind: 'read',
    version: 1,
    length,
    source: { address: addresses[0], port: ports[0] ?? 0 },
    destination: { address: addresses[1], port: ports[1] ?? 0 },
  };
}

/** IPv6 text in the same form as v2's, so status shows one form whatever the version; undefined if unreadable. */
function canonicalAddress(text: string): string | undefined {
  if (!text.includes(':')) return text;
  try {
    return addressText(Buffer.from(ipaddr.IPv6.parse(text).toByteArray()));
  } catch {
    return undefined;
  }
}

const NOTHING = Buffer.alloc(0);

/** Accumulates a connection's first bytes until its header is read or refused. */
export class ProxyHeaderParser {
  private held = NOTHING;

  constructor(private readonly mode: Exclude<ProxyProtocolMode, 'off'>) {}

  /** On `read`, `rest` holds the bytes after the header: the connection's own, to hand on. */
  push(chunk: Buffer): Exclude<HeaderStep, HeaderRead> | (HeaderRead & { rest: Buffer }) {
    const bytes = this.held.length > 0 ? Buffer.concat([this.held, chunk]) : chunk;
    const step = parseProxyHeader(bytes, this.mode);
    if (step.kind === 'incomplete') {
      // Less than the longest header: a copy, so a large read's buffer is not kept alive.
      this.held = Buffer.from(bytes);
      return step;
    }
    this.held = NOTHING;
    if (step.kind === 'rejected') return step;
    const { version, length, source, destination } = step;
    return { kind: 'read', version, length, source, destination, rest: bytes.subarray(length) };
  }
}
