// The device port on real loopback sockets: registration, its deadline and
// refusals, and pending devices.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, connectDevice, freePorts, Received, sleep, waitFor } from '../helpers/net.ts';
import { joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('device registration');
let proxy: TestProxy;
let ports: number[];
const sockets: net.Socket[] = [];
const track = <T extends net.Socket>(s: T) => {
  sockets.push(s);
  return s;
};

test.before(async () => {
  proxy = await startProxy({ registrationTimeoutMs: 1500, pendingTimeoutMs: 1000 });
  ports = await freePorts(8);
});

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

test.after(async () => {
  await proxy.stop();
});

const rejected = async (reason: string) => {
  const text = await proxy.pod.metrics.registrationsRejected.get();
  return text.values.find((v) => v.labels.reason === reason)?.value ?? 0;
};

test('CR, LF and CRLF each register; payload in the same packet reaches the client intact', async () => {
  const endings = { cr: '\r', lf: '\n', crlf: '\r\n' };
  let i = 0;
  for (const [name, ending] of Object.entries(endings)) {
    const serial = `REG-${name}`;
    const port = ports[i++]!;
    // Payload that starts with bytes a careless parser would eat: CR, LF.
    const payload = Buffer.from([0x0d, 0x0a, 0x00, 0xff, 0x41, 0x0a]);
    const pair = await joinPair(proxy.admin, proxy.pod.devicePort, serial, { port }, { ending, payload });
    track(pair.device);
    const client = new Received(track(pair.client));
    await client.untilLength(payload.length);
    await sleep(50);
    assert.equal([...client.bytes()], [...payload], `ending ${name}`);
  }
});

test('an LF arriving in the read after a trailing CR is taken as part of CRLF', async () => {
  const serial = 'REG-split-crlf';
  const port = ports[3]!;
  await proxy.admin.put(serial, { port });
  const client = new Received(track(await connect(port)));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, 'the client');
  const device = track(await connect(proxy.pod.devicePort));
  device.write(`${serial}\r`);
  await waitFor(async () => (await proxy.admin.session(serial))?.deviceConnected === true, 2000, 'the device');
  device.write('\nDATA');
  assert.is((await client.untilLength(4)).toString(), 'DATA');
});

test('over-long, non-printable, empty and unterminated registrations are closed', async () => {
  const cases: Array<[string, string, string]> = [
    ['x'.repeat(65), 'too-long', 'over 64 bytes without a line ending'],
    [`${'x'.repeat(70)}\r`, 'too-long', 'a 70-byte serial'],
    ['CLD 1\r', 'non-printable', 'a space'],
    ['CLD\x01\r', 'non-printable', 'a control byte'],
    ['\r', 'empty', 'an empty line'],
  ];
  for (const [line, reason, what] of cases) {
    const before = await rejected(reason);
    const device = new Received(track(await connect(proxy.pod.devicePort)));
    device.socket.write(line, 'latin1');
    await device.untilClosed(2000).catch(() => assert.unreachable(`${what} was not closed`));
    assert.is(await rejected(reason), before + 1, what);
  }
  // A device that half-closes without ever ending its line is closed too.
  const unterminated = new Received(track(await connect(proxy.pod.devicePort)));
  unterminated.socket.end('CLD-NO-END');
  await unterminated.untilClosed(2000);
});

test('a registration dribbling one byte per second is closed at the deadline', async () => {
  const device = new Received(track(await connect(proxy.pod.devicePort)));
  const started = Date.now();
  const dribble = setInterval(() => device.socket.writable && device.socket.write('A'), 300);
  try {
    await device.untilClosed(4000);
  } finally {
    clearInterval(dribble);
  }
  const elapsed = Date.now() - started;
  // The deadline is 1.5 s from connect, however steadily bytes arrive.
  assert.ok(elapsed >= 1400 && elapsed < 3000, `closed after ${elapsed} ms`);
});

test('with 1,000 silent connections open, a real device still registers at once', async () => {
  const silent = await Promise.all(Array.from({ length: 1000 }, () => connect(proxy.pod.devicePort)));
  silent.forEach(track);
  await waitFor(
    async () => (await proxy.pod.metrics.unregisteredConnections.get()).values[0]?.value === 1000,
    3000,
    '1,000 unregistered connections',
  );
  const serial = 'REG-under-load';
  const port = ports[4]!;
  await proxy.admin.put(serial, { port });
  const started = Date.now();
  track(await connectDevice(proxy.pod.devicePort, serial));
  await waitFor(async () => (await proxy.admin.session(serial))?.deviceConnected === true, 1000, 'the device to register');
  const took = Date.now() - started;
  assert.ok(took < 1000, `registered after ${took} ms`);
  // And the silent ones are closed at their deadline.
  await waitFor(() => silent.every((s) => s.destroyed || s.readableEnded), 4000, 'the silent connections to be closed');
});

test('a device that connects before its session exists is attached when the session is put', async () => {
  const serial = 'REG-early';
  const port = ports[5]!;
  const device = new Received(track(await connectDevice(proxy.pod.devicePort, serial, '\r', 'discarded-while-pending')));
  await waitFor(async () => (await proxy.pod.metrics.pendingDevices.get()).values[0]?.value === 1, 2000, 'the device to wait as pending');
  assert.is((await proxy.admin.put(serial, { port })).status, 200);
  const state = await proxy.admin.session(serial);
  assert.ok(state?.deviceConnected, 'device attached at put');
  const client = new Received(track(await connect(port)));
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === true, 2000, 'the client');
  device.socket.write('after');
  assert.is((await client.untilLength(5)).toString(), 'after', 'bytes sent while pending were discarded');
  client.socket.write('back');
  assert.is((await device.untilLength(4)).toString(), 'back');
});

test('a pending device is closed after the pending timeout', async () => {
  const before = await rejected('pending-timeout');
  const device = new Received(track(await connectDevice(proxy.pod.devicePort, 'REG-never')));
  const started = Date.now();
  await device.untilClosed(3000);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before the 1 s pending timeout`);
  assert.is(await rejected('pending-timeout'), before + 1);
});

test('a newer pending connection for a serial replaces the older one', async () => {
  const older = new Received(track(await connectDevice(proxy.pod.devicePort, 'REG-twice')));
  await sleep(100);
  const newer = new Received(track(await connectDevice(proxy.pod.devicePort, 'REG-twice')));
  await older.untilClosed(1000);
  assert.not.ok(newer.closedByPeer);
  await proxy.admin.put('REG-twice', { port: ports[6]! });
  assert.ok((await proxy.admin.session('REG-twice'))?.deviceConnected);
});

test('the device port refuses sources outside its allowlist', async () => {
  const guarded = await startProxy({ deviceAllowlist: ['127.0.0.2/32'] });
  try {
    const outsider = new Received(await connect(guarded.pod.devicePort));
    outsider.socket.write('CLD-1\r');
    await outsider.untilClosed(1000);
    const insider = new Received(await connect(guarded.pod.devicePort, { localAddress: '127.0.0.2' }));
    insider.socket.write('CLD-1\r');
    await sleep(200);
    assert.not.ok(insider.closedByPeer, 'an allowed source is kept');
    insider.socket.destroy();
  } finally {
    await guarded.stop();
  }
});

test.run();
