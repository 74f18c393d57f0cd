// PROXY protocol on real loopback sockets, headers written by hand: the
// header's address is the one the whitelist, the allowlist, status and events
// use; missing, truncated and forged headers close the connection before a
// byte of it reaches a session or the device registry.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProxyEvent } from '../../common/admin-protocol.ts';
import type { ProxyProtocolSettings } from '../../proxy-pod/proxy-protocol.ts';
import { connect, freePorts, Received, sleep, waitFor } from '../helpers/net.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { encodeV1, encodeV2 } from '../helpers/proxy-header.ts';

const test = suite('PROXY protocol');
const HEADER_TIMEOUT_MS = 800;
const settings: ProxyProtocolSettings = { device: 'any', sessions: 'any', trustedSources: [], headerTimeoutMs: HEADER_TIMEOUT_MS };
let proxy: TestProxy;
let ports: number[];
let next = 0;
const sockets: net.Socket[] = [];
const events: ProxyEvent[] = [];
const extraProxies: TestProxy[] = [];

const client = { address: '203.0.113.7', port: 40001 };
const lb = (port: number) => ({ address: '198.51.100.1', port });

test.before(async () => {
  proxy = await startProxy({ proxyProtocol: settings, lingerMs: 1000 });
  proxy.pod.subscribe((event) => events.push(event));
  ports = await freePorts(24);
});

test.after.each(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of extraProxies.splice(0)) await p.stop();
});

test.after(async () => {
  await proxy.stop();
});

async function session(serial: string, spec: { ipWhitelist?: string[]; persistent?: boolean } = {}, on = proxy): Promise<number> {
  const port = ports[next++]!;
  const answer = await on.admin.put(serial, { port, persistent: true, ...spec });
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  return port;
}

/** Connects and writes `bytes` in one write; the socket is closed after the test. */
async function open(port: number, bytes: Buffer, localAddress?: string): Promise<Received> {
  const socket = await connect(port, { localAddress });
  sockets.push(socket);
  const received = new Received(socket);
  if (bytes.length > 0) socket.write(bytes);
  return received;
}

async function refusals(on: TestProxy, listener: string, reason: string): Promise<number> {
  const metric = await on.pod.metrics.proxyHeadersRefused.get();
  return metric.values.find((v) => v.labels.listener === listener && v.labels.reason === reason)?.value ?? 0;
}

/** Joins a device (v2 header, serial and payload in one write) and a client (v1 header) through headers. */
async function joined(serial: string, spec: { ipWhitelist?: string[] } = {}) {
  const port = await session(serial, spec);
  const device = await open(
    proxy.pod.devicePort,
    Buffer.concat([encodeV2({ source: { address: '192.0.2.50', port: 6000 }, destination: lb(9000) }), Buffer.from(`${serial}\r\n`)]),
  );
  await waitFor(async () => (await proxy.admin.session(serial))?.deviceConnected === true, 2000, `device ${serial}`);
  const peer = await open(port, encodeV1(client, lb(port)));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, `client of ${serial}`);
  return { port, device, client: peer };
}

test('status and events show the addresses from the headers, not the connections’ 127.0.0.1', async () => {
  const serial = 'PP-status';
  await joined(serial);
  const state = await proxy.admin.session(serial);
  assert.is(state?.deviceAddress, '192.0.2.50:6000');
  assert.is(state?.clientAddress, '203.0.113.7:40001');
  const connected = events.filter((e) => e.serial === serial && e.type.endsWith('-connected')).map((e) => e.address);
  assert.equal(connected.sort(), ['192.0.2.50:6000', '203.0.113.7:40001']);
});

test('bytes after the header in the same write are kept: header, serial and payload in one segment', async () => {
  const serial = 'PP-same-segment';
  const port = await session(serial);
  const peer = await open(port, encodeV1(client, lb(port)));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, 'the client');
  const header = encodeV2({
    source: { address: '2001:db8::5', port: 7 },
    destination: { address: '2001:db8::1', port: 9000 },
    tlvs: [{ type: 0xea, value: Buffer.alloc(20, 1) }],
  });
  const device = await open(proxy.pod.devicePort, Buffer.concat([header, Buffer.from(`${serial}\r\nfrom-device`)]));
  assert.is((await peer.untilLength(11)).toString(), 'from-device');
  peer.socket.write('from-client');
  assert.is((await device.untilLength(11)).toString(), 'from-client');
  assert.is((await proxy.admin.session(serial))?.deviceAddress, '[2001:db8::5]:7');
});

test('the session whitelist decides by the header’s address: admitted by it, refused by it, counted and reported with it', async () => {
  const serial = 'PP-whitelist';
  const port = await session(serial, { ipWhitelist: ['203.0.113.0/24'] });
  const admitted = await open(port, encodeV1({ address: '203.0.113.99', port: 1 }, lb(port)));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, 'the admitted client');
  // 127.0.0.1, the connection's real source, is not listed: the header decided.
  assert.not.ok(admitted.closedByPeer);
  const refused = await open(port, encodeV2({ source: { address: '198.51.100.77', port: 2 }, destination: lb(port) }));
  await refused.untilClosed(2000);
  const state = await proxy.admin.session(serial);
  assert.is(state?.clientsRefused, 1);
  assert.is(state?.clientAddress, '203.0.113.99:1');
  const refusal = events.find((e) => e.serial === serial && e.type === 'client-refused');
  assert.is(refusal?.address, '198.51.100.77:2');
  // A whitelist change re-checks the connected client against its header address.
  await proxy.admin.put(serial, { port, persistent: true, ipWhitelist: ['127.0.0.1'] });
  await admitted.untilClosed(2000);
});

test('v1 UNKNOWN and v2 LOCAL (health checks) leave the connection’s own address in force', async () => {
  const serial = 'PP-local';
  const port = await session(serial, { ipWhitelist: ['127.0.0.1'] });
  await open(port, Buffer.from('PROXY UNKNOWN\r\n'));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, 'the UNKNOWN client');
  assert.match((await proxy.admin.session(serial))?.clientAddress ?? '', /^127\.0\.0\.1:\d+$/);
  const local = await open(port, encodeV2({ command: 0x0 }));
  await sleep(100);
  assert.not.ok(local.closedByPeer);
  assert.is((await proxy.admin.session(serial))?.clientsRefused, 0);
});

const forgedClients: Array<[string, (port: number) => Buffer, string]> = [
  ['no header at all', () => Buffer.from('GET / HTTP/1.0\r\n\r\n'), 'bad-signature'],
  [
    'a v2 header with a wrong signature',
    (port) => Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIZ\n'), encodeV2({ source: client, destination: lb(port) }).subarray(12)]),
    'bad-signature',
  ],
  ['a v2 length too short for its family', (port) => encodeV2({ source: client, destination: lb(port), length: 8 }), 'bad-length'],
  ['a v2 length above the limit', (port) => encodeV2({ source: client, destination: lb(port), length: 60_000 }), 'bad-length'],
  ['a v2 AF_UNIX family', (port) => encodeV2({ source: client, destination: lb(port), family: 0x31 }), 'bad-family'],
  ['a v2 unknown family', (port) => encodeV2({ source: client, destination: lb(port), family: 0x51 }), 'bad-family'],
  [
    'a v2 TLV running past the header',
    (port) => Buffer.concat([encodeV2({ source: client, destination: lb(port), length: 15 }), Buffer.from([1, 0, 9])]),
    'bad-tlv',
  ],
  ['a v1 line with a leading-zero address', (port) => Buffer.from(`PROXY TCP4 203.0.113.07 198.51.100.1 1 ${port}\r\n`), 'bad-address'],
  ['a v1 line ended by a lone LF', (port) => Buffer.from(`PROXY TCP4 203.0.113.7 198.51.100.1 1 ${port}\n`), 'bad-line'],
];

test('missing and forged headers on a session port: closed, never joined, and not one byte reaches the device', async () => {
  const serial = 'PP-forged';
  const { port, device } = await joined(serial);
  const connectedBefore = events.filter((e) => e.serial === serial && e.type === 'client-connected').length;
  for (const [what, bytes, reason] of forgedClients) {
    const before = await refusals(proxy, 'session', reason);
    const forged = await open(port, Buffer.concat([bytes(port), Buffer.from(`SECRET(${what})`)]));
    await forged.untilClosed(2000).catch(() => assert.unreachable(`${what}: the connection was not closed`));
    assert.is(await refusals(proxy, 'session', reason), before + 1, what);
  }
  // The joined client (header-admitted) still holds the session; a marker from it is the device's first byte.
  const state = await proxy.admin.session(serial);
  assert.is(state?.clientAddress, '203.0.113.7:40001');
  assert.is(state?.clientsRefused, 0);
  assert.is(events.filter((e) => e.serial === serial && e.type === 'client-connected').length, connectedBefore);
  assert.is(device.length, 0, `the device received ${JSON.stringify(device.text())}`);
});

test('a truncated header, or none at all, is closed at the header deadline; one closed mid-header is counted too', async () => {
  const serial = 'PP-truncated';
  const { port, device } = await joined(serial);
  const whole = encodeV2({ source: client, destination: lb(port) });
  const started = Date.now();
  const truncated = await open(port, whole.subarray(0, 20));
  const silent = await open(port, Buffer.alloc(0));
  await truncated.untilClosed(HEADER_TIMEOUT_MS + 2000);
  await silent.untilClosed(2000);
  const waited = Date.now() - started;
  assert.ok(waited >= HEADER_TIMEOUT_MS - 50, `closed after ${waited} ms, before the ${HEADER_TIMEOUT_MS} ms deadline`);
  assert.is(await refusals(proxy, 'session', 'timeout'), 2);
  const halfThenGone = await connect(port);
  halfThenGone.write(whole.subarray(0, 10));
  halfThenGone.end();
  sockets.push(halfThenGone);
  await waitFor(async () => (await refusals(proxy, 'session', 'closed-early')) === 1, 2000, 'the early close to be counted');
  assert.is(device.length, 0);
});

test('forged and missing headers on the device port: the device never registers, its serial and payload go nowhere', async () => {
  const serial = 'PP-device-forged';
  const port = await session(serial);
  const peer = await open(port, encodeV1(client, lb(port)));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, 'the client');
  const registeredBefore = (await proxy.pod.metrics.registrations.get()).values[0]?.value ?? 0;
  for (const [what, bytes] of forgedClients) {
    const forged = await open(proxy.pod.devicePort, Buffer.concat([bytes(9000), Buffer.from(`${serial}\r\nSECRET`)]));
    await forged.untilClosed(2000).catch(() => assert.unreachable(`${what}: the device connection was not closed`));
  }
  // A serial line alone, as a device that bypassed the load balancer would send.
  const direct = await open(proxy.pod.devicePort, Buffer.from(`${serial}\r\nSECRET`));
  await direct.untilClosed(2000);
  assert.is((await proxy.admin.session(serial))?.deviceConnected, false);
  assert.is((await proxy.pod.metrics.registrations.get()).values[0]?.value ?? 0, registeredBefore);
  assert.is(peer.length, 0, `the client received ${JSON.stringify(peer.text())}`);
  assert.is(await refusals(proxy, 'device', 'bad-signature'), 3);
});

test('the device allowlist decides by the header’s address', async () => {
  const other = await startProxy({ proxyProtocol: settings, deviceAllowlist: ['192.0.2.0/24'] });
  extraProxies.push(other);
  const serial = 'PP-allowlist';
  const port = await session(serial, {}, other);
  const peer = await open(port, encodeV1(client, lb(port)));
  const refused = await open(
    other.pod.devicePort,
    Buffer.concat([encodeV1({ address: '198.51.100.9', port: 5 }, lb(9000)), Buffer.from(`${serial}\r\nnot-allowed`)]),
  );
  await refused.untilClosed(2000);
  const admitted = await open(
    other.pod.devicePort,
    Buffer.concat([encodeV1({ address: '192.0.2.9', port: 5 }, lb(9000)), Buffer.from(`${serial}\r\nallowed`)]),
  );
  assert.is((await peer.untilLength(7)).toString(), 'allowed');
  assert.is((await other.admin.session(serial))?.deviceAddress, '192.0.2.9:5');
  const rejected = await other.pod.metrics.registrationsRejected.get();
  assert.is(rejected.values.find((v) => v.labels.reason === 'source-not-allowed')?.value, 1);
  assert.not.ok(admitted.closedByPeer);
});

test('trusted sources: a header from a source outside the list is refused before it is read', async () => {
  const other = await startProxy({ proxyProtocol: { ...settings, trustedSources: ['127.0.0.2'] }, bindHost: '0.0.0.0' });
  extraProxies.push(other);
  const serial = 'PP-trusted';
  const port = await session(serial, {}, other);
  const untrusted = await open(port, encodeV1(client, lb(port)), '127.0.0.1');
  await untrusted.untilClosed(2000);
  assert.is(await refusals(other, 'session', 'untrusted-source'), 1);
  await open(port, encodeV1(client, lb(port)), '127.0.0.2');
  await waitFor(async () => (await other.admin.session(serial))?.clientConnected === true, 2000, 'the trusted sender’s client');
  assert.is((await other.admin.session(serial))?.clientAddress, '203.0.113.7:40001');
});

test('a header only where configured: sessions off, device v2 only', async () => {
  const other = await startProxy({ proxyProtocol: { ...settings, device: 'v2', sessions: 'off' } });
  extraProxies.push(other);
  const serial = 'PP-split';
  const port = await session(serial, {}, other);
  const peer = await open(port, Buffer.alloc(0));
  await waitFor(async () => (await other.admin.session(serial))?.clientConnected === true, 2000, 'the plain client');
  const v1Device = await open(other.pod.devicePort, Buffer.concat([encodeV1(client, lb(9000)), Buffer.from(`${serial}\r\n`)]));
  await v1Device.untilClosed(2000);
  const device = await open(
    other.pod.devicePort,
    Buffer.concat([encodeV2({ source: client, destination: lb(9000) }), Buffer.from(`${serial}\r\nok`)]),
  );
  assert.is((await peer.untilLength(2)).toString(), 'ok');
  peer.socket.write('plain-client');
  assert.is((await device.untilLength(12)).toString(), 'plain-client');
});

test('connections waiting for their header are capped, and closed at once when the pod stops', async () => {
  const other = await startProxy({ proxyProtocol: { ...settings, headerTimeoutMs: 30_000 }, maxUnregistered: 3 });
  const waiting = await Promise.all([1, 2, 3].map(() => open(other.pod.devicePort, Buffer.from('PROXY TCP4'))));
  await sleep(100);
  const fourth = await open(other.pod.devicePort, Buffer.alloc(0));
  await fourth.untilClosed(2000);
  assert.is(await refusals(other, 'device', 'overload'), 1);
  assert.ok(waiting.every((w) => !w.closedByPeer));
  const started = Date.now();
  await other.stop();
  assert.ok(Date.now() - started < 2000, `stop took ${Date.now() - started} ms`);
  await Promise.all(waiting.map((w) => w.untilClosed(1000)));
  // Closed by the stop, not refused: nothing counted.
  assert.is(await refusals(other, 'device', 'closed-early'), 0);
});

test.run();
