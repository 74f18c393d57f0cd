// Writes PROXY protocol headers the way a load balancer would, for tests that
// send them by hand (forged ones included) and for the parser's round trips.
import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { V2_SIGNATURE } from '../../proxy-pod/proxy-header.ts';

export interface Endpoint {
  address: string;
  port: number;
}

/** "PROXY TCP4|TCP6 src dst sport dport\r\n"; the family follows the source's. */
export function encodeV1(source: Endpoint, destination: Endpoint): Buffer {
  const family = isIPv4(source.address) ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${family} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`, 'latin1');
}

export interface Tlv {
  type: number;
  value: Buffer;
}

export interface V2Fields {
  /** 0x1 PROXY (default) or 0x0 LOCAL; the high nibble (version 2) is added unless `versionCommand` is given. */
  command?: number;
  /** The whole 13th byte, to forge a version or a command. */
  versionCommand?: number;
  /** The 14th byte; by default TCP over the source's family (0x11 or 0x21), 0x00 for LOCAL without endpoints. */
  family?: number;
  source?: Endpoint;
  destination?: Endpoint;
  tlvs?: Tlv[];
  /** Overrides the length field (forged lengths). */
  length?: number;
  signature?: Buffer;
}

export function encodeTlvs(tlvs: Tlv[]): Buffer {
  return Buffer.concat(
    tlvs.map(({ type, value }) => {
      const head = Buffer.alloc(3);
      head.writeUInt8(type, 0);
      head.writeUInt16BE(value.length, 1);
      return Buffer.concat([head, value]);
    }),
  );
}

export function encodeV2(fields: V2Fields): Buffer {
  const { source, destination } = fields;
  const v4 = source ? isIPv4(source.address) : true;
  const addresses =
    source && destination
      ? Buffer.concat([
          Buffer.from(ipaddr.parse(source.address).toByteArray()),
          Buffer.from(ipaddr.parse(destination.address).toByteArray()),
          portBytes(source.port),
          portBytes(destination.port),
        ])
      : Buffer.alloc(0);
  const body = Buffer.concat([addresses, encodeTlvs(fields.tlvs ?? [])]);
  const fixed = Buffer.alloc(4);
  fixed.writeUInt8(fields.versionCommand ?? 0x20 | (fields.command ?? 0x1), 0);
  fixed.writeUInt8(fields.family ?? (source ? (v4 ? 0x11 : 0x21) : 0x00), 1);
  fixed.writeUInt16BE(fields.length ?? body.length, 2);
  return Buffer.concat([fields.signature ?? V2_SIGNATURE, fixed, body]);
}

function portBytes(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(port, 0);
  return bytes;
}
