// The peer port's wire format, between the proxy pods of one release. Pure:
// text in, verdicts out; the sockets are peer-link.ts's.
//
// Every connection opens with one line of JSON, at most MAX_PEER_LINE bytes,
// that carries the admin token and says what the connection is:
//
//   {"protocol":"cccp-peer/1","token":T,"kind":"offer","from":N,"serial":S,
//    "deviceHost":"203.0.113.7","devicePort":40112,"awaitingLf":false}
//      A device registered for S on the sender (ordinal N), which has no session S. The
//      receiver answers one line, "accepted" or "declined". After "accepted"
//      the connection is the device's: the receiver attaches it to its
//      session S as the device at deviceHost:devicePort, the sender relays
//      the device's bytes both ways. `awaitingLf`: the registration line
//      ended with a CR that was the last byte read, so an LF that is the next
//      byte completes a CRLF and is no payload.
//
//   {"protocol":"cccp-peer/1","token":T,"kind":"wanted","from":N}
//      followed by one serial per line until the sender closes: the sender
//      (ordinal N) has just created these sessions and had no device for
//      them; a receiver holding a pending device for one offers it to N.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { MAX_PROXY_REPLICAS } from '../common/admin-protocol.ts';
import { isValidSerial } from './registration.ts';

export const PEER_PROTOCOL = 'cccp-peer/1';
/** Longest line on the peer port: a header with a long token, or a serial. */
export const MAX_PEER_LINE = 4096;
/** StatefulSet ordinals a peer may have (the operator programs at most 64 pods). */
export const MAX_REPLICAS = MAX_PROXY_REPLICAS;

export const ACCEPTED = 'accepted';
export const DECLINED = 'declined';

export interface DeviceOffer {
  kind: 'offer';
  /** The ordinal of the pod the device registered on. */
  from: number;
  serial: string;
  deviceHost: string;
  devicePort: number;
  awaitingLf: boolean;
}

export interface WantedNotice {
  kind: 'wanted';
  /** The ordinal of the pod that created the sessions. */
  from: number;
}

export type PeerRequest = DeviceOffer | WantedNotice;

export type PeerRefusal = 'malformed' | 'bad-token' | 'too-long' | 'timeout' | 'overload';

export function encodeRequest(token: string, request: PeerRequest): Buffer {
  return Buffer.from(`${JSON.stringify({ protocol: PEER_PROTOCOL, token, ...request })}\n`);
}

/** The token's digest, compared in constant time so that neither length nor content leaks. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export type ParsedRequest = { ok: true; request: PeerRequest } | { ok: false; reason: 'malformed' | 'bad-token' };

/** Checks the header line: well-formed, the right token, then the request's fields. */
export function parseRequest(line: string, expectedToken: Buffer): ParsedRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'malformed' };
  const fields = value as Record<string, unknown>;
  if (fields.protocol !== PEER_PROTOCOL || typeof fields.token !== 'string') return { ok: false, reason: 'malformed' };
  if (!timingSafeEqual(tokenDigest(fields.token), expectedToken)) return { ok: false, reason: 'bad-token' };
  const request = requestFields(fields);
  return request ? { ok: true, request } : { ok: false, reason: 'malformed' };
}

function requestFields(fields: Record<string, unknown>): PeerRequest | undefined {
  const from = fields.from;
  if (!Number.isInteger(from) || (from as number) < 0 || (from as number) >= MAX_REPLICAS) return undefined;
  if (fields.kind === 'wanted') return { kind: 'wanted', from: from as number };
  if (fields.kind !== 'offer') return undefined;
  const { serial, deviceHost, devicePort, awaitingLf } = fields;
  if (typeof serial !== 'string' || !isValidSerial(serial)) return undefined;
  if (typeof deviceHost !== 'string' || isIP(deviceHost) === 0) return undefined;
  if (!Number.isInteger(devicePort) || (devicePort as number) < 0 || (devicePort as number) > 65_535) return undefined;
  if (typeof awaitingLf !== 'boolean') return undefined;
  return { kind: 'offer', from: from as number, serial, deviceHost, devicePort: devicePort as number, awaitingLf };
}

export type LineStep = { kind: 'line'; line: string; rest: Buffer } | { kind: 'incomplete' } | { kind: 'too-long' };

/**
 * Reads one LF-ended line at a time and hands back the bytes after it
 * untouched: after an offer's answer they are the session's bytes.
 */
export class LineReader {
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly maxLength = MAX_PEER_LINE) {}

  push(chunk: Buffer): LineStep {
    const data = this.buffered.length > 0 ? Buffer.concat([this.buffered, chunk]) : chunk;
    const end = data.indexOf(0x0a);
    if (end < 0) {
      if (data.length > this.maxLength) return { kind: 'too-long' };
      this.buffered = Buffer.from(data);
      return { kind: 'incomplete' };
    }
    if (end > this.maxLength) return { kind: 'too-long' };
    this.buffered = Buffer.alloc(0);
    const line = data.subarray(0, end).toString('utf8').replace(/\r$/, '');
    return { kind: 'line', line, rest: data.subarray(end + 1) };
  }
}

/** What a part that contacts the other pods (the forwarder, the announcer) is given. */
export interface PeerContactOptions {
  /** This pod's ordinal. */
  ordinal: number;
  /** The other pods' ordinals, shared and kept up to date by the peer link. */
  peers: number[];
  endpoint(ordinal: number): PeerEndpoint | undefined;
  token: string;
  connectTimeoutMs: number;
  answerTimeoutMs: number;
}

export interface PeerEndpoint {
  host: string;
  port: number;
}

/** Why a CCCP_PEER_ADDRESS pattern is unusable, or undefined. */
export function peerAddressPatternError(pattern: string): string | undefined {
  if (!pattern.includes('{ordinal}')) return 'must hold {ordinal}, so each pod has its own address';
  return peerEndpoint(pattern, 0) ? undefined : 'must be host:port (an IPv6 host in brackets) with a port from 1 to 65535';
}

/** The peer port of the pod with this ordinal, from a host:port pattern holding {ordinal}. */
export function peerEndpoint(pattern: string, ordinal: number): PeerEndpoint | undefined {
  const address = pattern.replace(/\{ordinal\}/g, String(ordinal));
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(address);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: match[1] ?? match[2] ?? '', port };
}
