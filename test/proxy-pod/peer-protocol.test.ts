// The peer port's wire format: requests, the token check, line reading and
// peer addresses, without sockets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  encodeRequest,
  LineReader,
  MAX_PEER_LINE,
  PEER_PROTOCOL,
  parseRequest,
  peerAddressPatternError,
  peerEndpoint,
  tokenDigest,
} from '../../proxy-pod/peer-protocol.ts';

const TOKEN = 'the-admin-token-0123';
const expected = tokenDigest(TOKEN);
const offer = { kind: 'offer', from: 0, serial: 'SN-1', deviceHost: '203.0.113.7', devicePort: 40112, awaitingLf: true } as const;

const line = (request: object) =>
  encodeRequest(TOKEN, request as never)
    .toString()
    .trimEnd();

test('an encoded offer and a wanted notice parse back to themselves', () => {
  assert.equal(parseRequest(line(offer), expected), { ok: true, request: offer });
  assert.equal(parseRequest(line({ kind: 'wanted', from: 2 }), expected), { ok: true, request: { kind: 'wanted', from: 2 } });
  assert.ok(encodeRequest(TOKEN, offer).toString().endsWith('}\n'));
});

test('a wrong, missing or differently long token is bad-token; the fields are not looked at before the token', () => {
  for (const token of ['the-admin-token-0124', 'the-admin-token-012', 'x'.repeat(500), '']) {
    const text = JSON.stringify({ protocol: PEER_PROTOCOL, token, ...offer });
    assert.equal(parseRequest(text, expected), { ok: false, reason: 'bad-token' }, token);
  }
  const garbageFields = JSON.stringify({ protocol: PEER_PROTOCOL, token: 'wrong', kind: 'nonsense' });
  assert.equal(parseRequest(garbageFields, expected), { ok: false, reason: 'bad-token' });
});

test('anything but a well-formed request with the token is malformed', () => {
  const bad = [
    'GET / HTTP/1.1',
    '',
    '[]',
    'null',
    JSON.stringify({ token: TOKEN, ...offer }),
    JSON.stringify({ protocol: 'cccp-peer/2', token: TOKEN, ...offer }),
    JSON.stringify({ protocol: PEER_PROTOCOL, token: 7, ...offer }),
    line({ ...offer, kind: 'other' }),
    line({ ...offer, serial: '' }),
    line({ ...offer, serial: 'has space' }),
    line({ ...offer, serial: 'x'.repeat(65) }),
    line({ ...offer, deviceHost: 'device.example' }),
    line({ ...offer, deviceHost: '300.1.1.1' }),
    line({ ...offer, devicePort: 65_536 }),
    line({ ...offer, devicePort: 1.5 }),
    line({ ...offer, awaitingLf: 'yes' }),
    line({ kind: 'wanted', from: -1 }),
    line({ kind: 'wanted', from: 64 }),
    line({ kind: 'wanted', from: '1' }),
    line({ ...offer, from: undefined }),
    line({ ...offer, from: 64 }),
  ];
  for (const text of bad) assert.equal(parseRequest(text, expected), { ok: false, reason: 'malformed' }, text);
  assert.equal(parseRequest(line({ ...offer, deviceHost: '2001:db8::7' }), expected).ok, true);
});

test('the line reader hands back each line and the bytes after it untouched, across split reads', () => {
  const reader = new LineReader();
  assert.equal(reader.push(Buffer.from('accep')), { kind: 'incomplete' });
  const step = reader.push(Buffer.from('ted\n\x00\x01\nrest'));
  assert.is(step.kind, 'line');
  if (step.kind !== 'line') return;
  assert.is(step.line, 'accepted');
  assert.equal([...step.rest], [0, 1, 10, ...Buffer.from('rest')]);
  const crlf = new LineReader().push(Buffer.from('SN-1\r\n'));
  assert.equal(crlf.kind === 'line' && crlf.line, 'SN-1');
});

test('a line longer than the limit is refused, whether or not its end has come', () => {
  assert.equal(new LineReader().push(Buffer.alloc(MAX_PEER_LINE + 1, 0x61)), { kind: 'too-long' });
  const reader = new LineReader(10);
  assert.equal(reader.push(Buffer.from('0123456789')), { kind: 'incomplete' });
  assert.equal(reader.push(Buffer.from('0\n')), { kind: 'too-long' });
  assert.is(new LineReader(10).push(Buffer.from('0123456789\n')).kind, 'line');
});

test('peer addresses: {ordinal} in host or port, IPv6 in brackets; bad patterns say why', () => {
  assert.equal(peerEndpoint('cccp-proxy-{ordinal}.cccp-proxy-peers.ns.svc:9100', 2), {
    host: 'cccp-proxy-2.cccp-proxy-peers.ns.svc',
    port: 9100,
  });
  assert.equal(peerEndpoint('127.0.0.1{ordinal}:9100', 1), { host: '127.0.0.11', port: 9100 });
  assert.equal(peerEndpoint('[fd00::{ordinal}]:9100', 3), { host: 'fd00::3', port: 9100 });
  assert.is(peerAddressPatternError('proxy-{ordinal}.peers:9100'), undefined);
  assert.match(peerAddressPatternError('proxy-0.peers:9100') ?? '', /\{ordinal\}/);
  for (const bad of [
    'proxy-{ordinal}',
    'proxy-{ordinal}:0',
    'proxy-{ordinal}:70000',
    'proxy {ordinal}:9100',
    'http://proxy-{ordinal}:9100',
    'fd00::{ordinal}:9100',
  ]) {
    assert.match(peerAddressPatternError(bad) ?? '', /host:port/, bad);
  }
});

test.run();
