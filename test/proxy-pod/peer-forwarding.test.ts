// Three proxy pods of one release on 127.0.0.10, .11 and .12, sharing the
// device port and peer port numbers: a device joins its session whichever
// pod it lands on.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { InstanceInfo } from '../../common/admin-protocol.ts';
import { PEER_PROTOCOL } from '../../proxy-pod/peer-protocol.ts';
import { MiB, receiveHashed, sendHashed } from '../helpers/bulk.ts';
import { connect, freePortRange, Received, sleep, waitFor } from '../helpers/net.ts';
import { deviceOn, metricValue, PEER_TOKEN, type PodRelease, podHost, startRelease, waitForDevice } from '../helpers/peers.ts';
import { startProxy } from '../helpers/proxy.ts';

const test = suite('device forwarding between proxy pods');
let release: PodRelease;
let sessionPorts: number[];
let nextPort = 0;
const sockets: net.Socket[] = [];

test.before(async () => {
  release = await startRelease(3);
  const range = await freePortRange(30);
  sessionPorts = Array.from({ length: 30 }, (_, i) => range.min + i);
});

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

test.after(async () => {
  await release?.stop();
});

const pod = (ordinal: number) => release.pods[ordinal]!;

async function session(ordinal: number, serial: string, spec: { persistent?: boolean } = {}): Promise<number> {
  const port = sessionPorts[nextPort++]!;
  const answer = await pod(ordinal).admin.put(serial, { port, ...spec });
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  return port;
}

async function client(ordinal: number, serial: string, port: number): Promise<net.Socket> {
  const socket = await connect(port, { host: podHost(ordinal) });
  sockets.push(socket);
  await waitFor(async () => (await pod(ordinal).admin.session(serial))?.clientConnected === true, 2000, `the client of ${serial}`);
  return socket;
}

async function device(onOrdinal: number, serial: string, opts: { payload?: string; localAddress?: string } = {}): Promise<net.Socket> {
  const socket = await deviceOn(podHost(onOrdinal), release.devicePort, serial, opts);
  sockets.push(socket);
  return socket;
}

test('a device on pod 0 for a session on pod 1 exchanges 8 MiB each way byte-exact, both receivers slow, and pod 1 counts transferredBytes exactly', async () => {
  const serial = 'FWD-8MiB';
  const port = await session(1, serial);
  const clientSocket = await client(1, serial, port);
  const greeting = 'first bytes after the serial';
  const deviceSocket = await device(0, serial, { payload: greeting, localAddress: '127.0.0.99' });
  const fromDevice = new Received(clientSocket);
  await waitForDevice(pod(1), serial);
  await fromDevice.untilLength(greeting.length);
  assert.is(fromDevice.text(), greeting);
  clientSocket.removeAllListeners('data');

  const eachWay = 8 * MiB;
  // Slow receivers make both pods' writes wait: a buffer a write still holds must not be read into again.
  const slow = { bytesPerSecond: 3 * MiB };
  const [sentByDevice, sentByClient, receivedByClient, receivedByDevice] = await Promise.all([
    sendHashed(deviceSocket, eachWay),
    sendHashed(clientSocket, eachWay),
    receiveHashed(clientSocket, eachWay, slow),
    receiveHashed(deviceSocket, eachWay, slow),
  ]);
  assert.is(receivedByClient, sentByDevice, 'device to client');
  assert.is(receivedByDevice, sentByClient, 'client to device');
  const expected = 2 * eachWay + greeting.length;
  await waitFor(async () => (await pod(1).admin.session(serial))?.transferredBytes === expected, 3000, 'the exact count');
  const state = await pod(1).admin.session(serial);
  assert.is(state?.transferredBytes, expected);
  assert.is(state?.droppedBytes, 0);
  assert.is(state?.device.forwardedBytes, eachWay + greeting.length);
  assert.is(state?.client.forwardedBytes, eachWay);
  assert.is(await pod(0).admin.session(serial), undefined, 'pod 0 holds no session');
  assert.is(await metricValue(pod(0), 'cccp_proxy_peer_relays'), 1);
  assert.is(await metricValue(pod(0), 'cccp_proxy_forwarded_bytes_total'), 0, 'the relaying pod counts nothing');
});

test("the owning pod's device-connected event and state carry the device's real address", async () => {
  const serial = 'FWD-address';
  const port = await session(2, serial, { persistent: true });
  await client(2, serial, port);
  const deviceSocket = await device(0, serial, { localAddress: '127.0.0.98' });
  await waitForDevice(pod(2), serial);
  const real = `127.0.0.98:${deviceSocket.localPort}`;
  const state = await pod(2).admin.session(serial);
  assert.is(state?.deviceAddress, real);
  const connected = pod(2).events.find((e) => e.type === 'device-connected' && e.serial === serial);
  assert.is(connected?.address, real);
});

test('a device waiting on pod 0 is joined when its session is created on pod 2', async () => {
  const serial = 'FWD-waiting';
  const deviceSocket = await device(0, serial, { payload: 'discarded while pending' });
  // Offered to pods 1 and 2, declined by both: it waits on pod 0.
  await waitFor(async () => (await metricValue(pod(0), 'cccp_proxy_pending_devices')) === 1, 3000, 'the device pending on pod 0');
  const port = await session(2, serial);
  await waitForDevice(pod(2), serial);
  const clientSocket = await client(2, serial, port);
  const atClient = new Received(clientSocket);
  const atDevice = new Received(deviceSocket);
  deviceSocket.write('ping');
  clientSocket.write('pong');
  await atClient.untilLength(4);
  await atDevice.untilLength(4);
  assert.is(atClient.text(), 'ping');
  assert.is(atDevice.text(), 'pong');
  assert.is(await metricValue(pod(0), 'cccp_proxy_pending_devices'), 0);
});

test('a CR-ended registration split from its LF keeps CRLF as one ending across the hop', async () => {
  const serial = 'FWD-crlf';
  const port = await session(1, serial);
  const clientSocket = await client(1, serial, port);
  const atClient = new Received(clientSocket);
  const deviceSocket = await device(0, serial);
  await waitForDevice(pod(1), serial);
  deviceSocket.write('\ndata');
  await atClient.untilLength(4);
  await sleep(100);
  assert.is(atClient.text(), 'data');
});

test('the device leaving pod 0 ends the non-persistent session on pod 1 with DeviceDisconnected', async () => {
  const serial = 'FWD-leaves';
  const port = await session(1, serial);
  const clientSocket = await client(1, serial, port);
  const atClient = new Received(clientSocket);
  const deviceSocket = await device(0, serial);
  await waitForDevice(pod(1), serial);
  deviceSocket.end('bye');
  await atClient.untilClosed(5000);
  assert.is(atClient.text(), 'bye');
  await waitFor(async () => (await pod(1).admin.session(serial))?.state === 'ended', 3000, 'the session to end');
  const state = await pod(1).admin.session(serial);
  assert.is(state?.endedReason, 'DeviceDisconnected');
  assert.ok(pod(1).events.some((e) => e.type === 'device-disconnected' && e.serial === serial));
  await waitFor(async () => (await metricValue(pod(0), 'cccp_proxy_peer_relays')) === 0, 3000, 'the relay on pod 0 to close');
});

test('the session ending on pod 1 closes the device on pod 0 after its last bytes', async () => {
  const serial = 'FWD-off';
  const port = await session(1, serial);
  const clientSocket = await client(1, serial, port);
  const deviceSocket = await device(0, serial);
  const atDevice = new Received(deviceSocket);
  await waitForDevice(pod(1), serial);
  clientSocket.end('last words');
  await atDevice.untilClosed(5000);
  assert.is(atDevice.text(), 'last words');
});

test('a newer registration on another pod replaces the forwarded device without ending the session', async () => {
  const serial = 'FWD-replaced';
  const port = await session(1, serial);
  const clientSocket = await client(1, serial, port);
  const atClient = new Received(clientSocket);
  const older = await device(0, serial, { localAddress: '127.0.0.97' });
  const olderGone = new Received(older);
  await waitForDevice(pod(1), serial);
  const newer = await device(2, serial, { localAddress: '127.0.0.96' });
  await waitFor(
    async () => (await pod(1).admin.session(serial))?.deviceAddress === `127.0.0.96:${newer.localPort}`,
    3000,
    'the newer device',
  );
  await olderGone.untilClosed(3000);
  newer.write('from the newer');
  await atClient.untilLength(14);
  const state = await pod(1).admin.session(serial);
  assert.is(state?.state, 'listening');
  assert.is(atClient.text(), 'from the newer');
});

test('a wrong token on the peer port is refused, counted, and nothing reaches the session', async () => {
  const serial = 'FWD-token';
  await session(1, serial);
  for (const token of ['wrong-token-but-long-enough', `${PEER_TOKEN}x`, '']) {
    const socket = await connect(release.peerPort, { host: podHost(1) });
    sockets.push(socket);
    const answer = new Received(socket);
    const header = {
      protocol: PEER_PROTOCOL,
      token,
      kind: 'offer',
      from: 0,
      serial,
      deviceHost: '192.0.2.1',
      devicePort: 1,
      awaitingLf: false,
    };
    socket.write(`${JSON.stringify(header)}\nbytes for the session`);
    await answer.untilClosed(3000);
    assert.is(answer.length, 0, 'no answer to a wrong token');
  }
  const garbage = await connect(release.peerPort, { host: podHost(1) });
  sockets.push(garbage);
  garbage.write('GET / HTTP/1.1\r\n\r\n');
  await new Received(garbage).untilClosed(3000);
  const state = await pod(1).admin.session(serial);
  assert.is(state?.deviceConnected, false);
  assert.is(state?.transferredBytes, 0);
  assert.is(await metricValue(pod(1), 'cccp_proxy_peer_refused_total', { reason: 'bad-token' }), 3);
  assert.is(await metricValue(pod(1), 'cccp_proxy_peer_refused_total', { reason: 'malformed' }), 1);
});

test('the right token with a well-formed offer is accepted (the refusals above are the token)', async () => {
  const serial = 'FWD-token-ok';
  await session(1, serial, { persistent: true });
  const socket = await connect(release.peerPort, { host: podHost(1) });
  sockets.push(socket);
  const answer = new Received(socket);
  const header = {
    protocol: PEER_PROTOCOL,
    token: PEER_TOKEN,
    kind: 'offer',
    from: 0,
    serial,
    deviceHost: '192.0.2.1',
    devicePort: 4242,
    awaitingLf: false,
  };
  socket.write(`${JSON.stringify(header)}\n`);
  await answer.untilLength(9);
  assert.is(answer.text(), 'accepted\n');
  await waitForDevice(pod(1), serial);
  assert.is((await pod(1).admin.session(serial))?.deviceAddress, '192.0.2.1:4242');
});

test('/v1/info and the session list name the public host of a pod that has one, and none otherwise', async () => {
  const info = await pod(0).admin.request<InstanceInfo>('GET', '/v1/info');
  assert.is(info.body.devicePort, release.devicePort);
  assert.is(info.body.publicHost, undefined);
  const withHost = await startProxy({ publicHost: '198.51.100.4' });
  try {
    assert.is((await withHost.admin.request<InstanceInfo>('GET', '/v1/info')).body.publicHost, '198.51.100.4');
    assert.is((await withHost.admin.request<InstanceInfo>('GET', '/v1/sessions')).body.publicHost, '198.51.100.4');
  } finally {
    await withHost.stop();
  }
});

test.run();
