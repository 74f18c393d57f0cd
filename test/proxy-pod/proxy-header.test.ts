// The PROXY protocol header parser: what each version accepts, what it
// refuses and when, and how many bytes it takes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type HeaderStep, MAX_V1_LENGTH, MAX_V2_BODY_LENGTH, ProxyHeaderParser, parseProxyHeader } from '../../proxy-pod/proxy-header.ts';
import { encodeV1, encodeV2 } from '../helpers/proxy-header.ts';

const src = { address: '203.0.113.7', port: 51234 };
const dst = { address: '198.51.100.1', port: 9000 };
const src6 = { address: '2001:db8::7', port: 40000 };
const dst6 = { address: '2001:db8::1', port: 20001 };

const latin1 = (text: string) => Buffer.from(text, 'latin1');

function read(step: HeaderStep) {
  if (step.kind !== 'read') throw new Error(`expected a header, got ${JSON.stringify(step)}`);
  return step;
}

const refusal = (step: HeaderStep) => (step.kind === 'rejected' ? step.reason : step.kind);

test('v1 TCP4: the source and destination, and the header length up to CRLF', () => {
  const header = encodeV1(src, dst);
  const step = read(parseProxyHeader(Buffer.concat([header, latin1('SERIAL-1\r')]), 'v1'));
  assert.equal(step.source, src);
  assert.equal(step.destination, dst);
  assert.is(step.length, header.length);
  assert.is(step.version, 1);
});

test('v1 TCP6: addresses come out in one canonical form, an IPv4-mapped one as ::ffff:a.b.c.d', () => {
  const step = read(parseProxyHeader(latin1('PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::ffff:7f00:2 1 2\r\n'), 'any'));
  assert.equal(step.source, { address: '2001:db8::7', port: 1 });
  assert.equal(step.destination, { address: '::ffff:127.0.0.2', port: 2 });
});

test('v1 UNKNOWN, short or with the longest allowed line (107 bytes), is read without a source', () => {
  assert.is(read(parseProxyHeader(latin1('PROXY UNKNOWN\r\n'), 'v1')).source, undefined);
  const ff = Array(8).fill('ffff').join(':');
  const longest = latin1(`PROXY UNKNOWN ${ff} ${ff} 65535 65535\r\n`);
  assert.is(longest.length, MAX_V1_LENGTH);
  const step = read(parseProxyHeader(longest, 'v1'));
  assert.is(step.length, MAX_V1_LENGTH);
  assert.is(step.source, undefined);
});

test('v1: no CRLF within 107 bytes is refused at the 107th byte, not held', () => {
  const long = latin1(`PROXY UNKNOWN ${'a'.repeat(200)}`);
  assert.is(refusal(parseProxyHeader(long.subarray(0, MAX_V1_LENGTH - 1), 'v1')), 'incomplete');
  assert.is(refusal(parseProxyHeader(long.subarray(0, MAX_V1_LENGTH), 'v1')), 'bad-line');
  // CRLF as the 108th and 109th bytes is one byte too many.
  assert.is(refusal(parseProxyHeader(latin1(`PROXY UNKNOWN ${'a'.repeat(92)}\r\n`), 'v1')), 'bad-line');
});

test('v1: malformed lines are refused, each with its reason', () => {
  const cases: Array<[string, string]> = [
    ['PROXY TCP4 203.0.113.7 198.51.100.1 51234 9000\n', 'bad-line'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 51234 9000\rX', 'bad-line'],
    ['PROXY TCP4 203.0.113.7  198.51.100.1 51234 9000\r\n', 'bad-line'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 51234\r\n', 'bad-line'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 51234 9000 7\r\n', 'bad-line'],
    ['PROXY TCP4 203.0.113.7\t198.51.100.1 51234 9000\r\n', 'bad-line'],
    ['PROXY TCP5 203.0.113.7 198.51.100.1 51234 9000\r\n', 'bad-family'],
    ['PROXY UDP4 203.0.113.7 198.51.100.1 51234 9000\r\n', 'bad-family'],
    ['PROXY TCP4 2001:db8::7 198.51.100.1 51234 9000\r\n', 'bad-address'],
    ['PROXY TCP6 203.0.113.7 2001:db8::1 51234 9000\r\n', 'bad-address'],
    ['PROXY TCP4 010.0.113.7 198.51.100.1 51234 9000\r\n', 'bad-address'],
    ['PROXY TCP4 203.0.113 198.51.100.1 51234 9000\r\n', 'bad-address'],
    ['PROXY TCP4 256.0.113.7 198.51.100.1 51234 9000\r\n', 'bad-address'],
    ['PROXY TCP6 fe80::1%eth0 2001:db8::1 51234 9000\r\n', 'bad-address'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 051234 9000\r\n', 'bad-port'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 65536 9000\r\n', 'bad-port'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 -1 9000\r\n', 'bad-port'],
    ['PROXY TCP4 203.0.113.7 198.51.100.1 51234 \r\n', 'bad-port'],
    ['proxy TCP4 203.0.113.7 198.51.100.1 51234 9000\r\n', 'bad-signature'],
    ['PROXY\r\n', 'bad-signature'],
  ];
  for (const [line, reason] of cases) assert.is(refusal(parseProxyHeader(latin1(line), 'v1')), reason, JSON.stringify(line));
});

test('v2 TCP4 and TCP6 over PROXY: the endpoints, with TLVs skipped', () => {
  const tlvs = [
    { type: 0x01, value: latin1('h2') },
    { type: 0xea, value: latin1('\x01vpce-0123456789abcdef') },
    { type: 0x04, value: Buffer.alloc(0) },
  ];
  const header4 = encodeV2({ source: src, destination: dst, tlvs });
  const step4 = read(parseProxyHeader(Buffer.concat([header4, latin1('payload')]), 'v2'));
  assert.equal([step4.source, step4.destination, step4.length, step4.version], [src, dst, header4.length, 2]);
  const header6 = encodeV2({ source: src6, destination: dst6 });
  const step6 = read(parseProxyHeader(header6, 'any'));
  assert.equal([step6.source, step6.destination, step6.length], [src6, dst6, 16 + 36]);
});

test('v2 LOCAL is read without a source, whatever its family and block', () => {
  for (const family of [0x00, 0x11, 0x21, 0x31, 0x12]) {
    const step = read(parseProxyHeader(encodeV2({ command: 0x0, family, tlvs: [{ type: 0x04, value: Buffer.alloc(5) }] }), 'v2'));
    assert.is(step.source, undefined);
    assert.is(step.length, 16 + 8);
  }
});

test('v2: forged headers are refused, each with its reason', () => {
  const signature = encodeV2({ source: src, destination: dst });
  const cases: Array<[Buffer, string]> = [
    [Buffer.concat([latin1('\r\n\r\n\0\r\nQUIT\n'.replace('QUIT', 'QUIX')), signature.subarray(12)]), 'bad-signature'],
    [encodeV2({ source: src, destination: dst, versionCommand: 0x11 }), 'bad-version'],
    [encodeV2({ source: src, destination: dst, versionCommand: 0x31 }), 'bad-version'],
    [encodeV2({ source: src, destination: dst, command: 0x2 }), 'bad-command'],
    [encodeV2({ source: src, destination: dst, family: 0x41 }), 'bad-family'],
    [encodeV2({ source: src, destination: dst, family: 0x13 }), 'bad-family'],
    // Relayed, but not over TCP: the spec lets a receiver refuse these.
    [encodeV2({ source: src, destination: dst, family: 0x12 }), 'bad-family'],
    [encodeV2({ family: 0x00 }), 'bad-family'],
    [encodeV2({ family: 0x31, tlvs: [{ type: 0x04, value: Buffer.alloc(213) }] }), 'bad-family'],
    [encodeV2({ source: src, destination: dst, length: 11 }), 'bad-length'],
    [encodeV2({ source: src6, destination: dst6, length: 12 }), 'bad-length'],
    [encodeV2({ source: src, destination: dst, family: 0x21 }), 'bad-length'],
    [encodeV2({ source: src, destination: dst, length: MAX_V2_BODY_LENGTH + 1 }), 'bad-length'],
    [encodeV2({ source: src, destination: dst, length: 0xffff }), 'bad-length'],
    // A TLV longer than the header, and two stray bytes that cannot be a TLV.
    [Buffer.concat([encodeV2({ source: src, destination: dst, length: 12 + 4 }), Buffer.from([0x04, 0x00, 0x05, 0x00])]), 'bad-tlv'],
    [Buffer.concat([encodeV2({ source: src, destination: dst, length: 12 + 2 }), Buffer.from([0x04, 0x00])]), 'bad-tlv'],
  ];
  for (const [bytes, reason] of cases) assert.is(refusal(parseProxyHeader(bytes, 'v2')), reason, bytes.toString('hex'));
});

test('v2: the longest accepted header is read; truncated headers only ever need more bytes', () => {
  const longest = encodeV2({ source: src, destination: dst, tlvs: [{ type: 0xe0, value: Buffer.alloc(MAX_V2_BODY_LENGTH - 12 - 3) }] });
  assert.is(read(parseProxyHeader(longest, 'v2')).length, 16 + MAX_V2_BODY_LENGTH);
  for (const header of [longest, encodeV2({ source: src6, destination: dst6 }), encodeV1(src6, dst6)]) {
    for (let cut = 0; cut < header.length; cut++) assert.is(refusal(parseProxyHeader(header.subarray(0, cut), 'any')), 'incomplete');
  }
});

test('the mode decides the version: v1 refuses a v2 header, v2 a v1 line, at the first byte', () => {
  assert.is(refusal(parseProxyHeader(encodeV2({ source: src, destination: dst }).subarray(0, 1), 'v1')), 'bad-signature');
  assert.is(refusal(parseProxyHeader(latin1('P'), 'v2')), 'bad-signature');
  assert.is(read(parseProxyHeader(encodeV1(src, dst), 'any')).version, 1);
  assert.is(read(parseProxyHeader(encodeV2({ source: src, destination: dst }), 'any')).version, 2);
});

test('a connection without a header (a device sending its serial, a TLS hello) is refused at its first byte', () => {
  for (const mode of ['v1', 'v2', 'any'] as const) {
    assert.is(refusal(parseProxyHeader(latin1('S'), mode)), 'bad-signature');
    assert.is(refusal(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]), mode)), 'bad-signature');
  }
  // A serial that happens to start like the v1 prefix is refused at its first differing byte.
  assert.is(refusal(parseProxyHeader(latin1('PROX'), 'v1')), 'incomplete');
  assert.is(refusal(parseProxyHeader(latin1('PROXIMA-7\r'), 'v1')), 'bad-signature');
});

test('fed a byte at a time, the parser reads the same header and hands back exactly the bytes after it', () => {
  for (const header of [
    encodeV1(src, dst),
    encodeV2({ source: src6, destination: dst6, tlvs: [{ type: 5, value: Buffer.alloc(9, 7) }] }),
  ]) {
    const parser = new ProxyHeaderParser('any');
    const whole = Buffer.concat([header, latin1('DEV-9\r\nhello')]);
    let result: ReturnType<ProxyHeaderParser['push']> | undefined;
    let at = 0;
    while (at < whole.length) {
      result = parser.push(whole.subarray(at, at + 1));
      at += 1;
      if (result.kind !== 'incomplete') break;
    }
    assert.is(result?.kind, 'read');
    if (result?.kind !== 'read') return;
    assert.is(at, header.length);
    assert.is(result.rest.length, 0);
    // In one push, the rest is exactly what followed.
    const once = new ProxyHeaderParser('any').push(whole);
    assert.is(once.kind === 'read' && once.rest.toString('latin1'), 'DEV-9\r\nhello');
  }
});

test.run();
