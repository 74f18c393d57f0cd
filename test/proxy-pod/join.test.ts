// Joining a device and a client: persistence, ending, timeout, whitelist and
// replacement, on real loopback sockets.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, connectDevice, freePorts, Received, refuses, sleep, waitFor } from '../helpers/net.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('joining device and client');
let proxy: TestProxy;
let ports: number[];
let next = 0;
const sockets: net.Socket[] = [];

test.before(async () => {
  proxy = await startProxy({ lingerMs: 2000 });
  ports = await freePorts(16);
});

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

test.after(async () => {
  await proxy.stop();
});

/** Puts a session and returns its port. */
async function session(
  serial: string,
  spec: { persistent?: boolean; ipWhitelist?: string[]; timeoutSeconds?: number } = {},
): Promise<number> {
  const port = ports[next++]!;
  const answer = await proxy.admin.put(serial, { port, ...spec });
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  return port;
}

async function device(serial: string, payload = ''): Promise<Received> {
  const socket = await connectDevice(proxy.pod.devicePort, serial, '\r', payload);
  sockets.push(socket);
  await waitFor(async () => (await proxy.admin.session(serial))?.deviceConnected === true, 2000, `device ${serial} attached`);
  return new Received(socket);
}

async function client(serial: string, port: number, localAddress?: string): Promise<Received> {
  const socket = await connect(port, { localAddress });
  sockets.push(socket);
  const received = new Received(socket);
  await waitFor(
    async () => (await proxy.admin.session(serial))?.clientConnected === true || received.closedByPeer,
    2000,
    `client of ${serial}`,
  );
  return received;
}

test('persistent: the client leaves and returns; bytes sent while it was away are dropped and not counted', async () => {
  const serial = 'JOIN-persistent';
  const port = await session(serial, { persistent: true });
  const dev = await device(serial);
  const first = await client(serial, port);
  dev.socket.write('one');
  await first.untilLength(3);
  first.socket.end();
  await waitFor(async () => (await proxy.admin.session(serial))?.clientConnected === false, 2000, 'client gone');
  dev.socket.write('lost-while-away');
  await waitFor(async () => (await proxy.admin.session(serial))?.droppedBytes === 15, 2000, 'the dropped bytes to be counted');
  const second = await client(serial, port);
  dev.socket.write('two');
  assert.is((await second.untilLength(3)).toString(), 'two');
  const state = await proxy.admin.session(serial);
  assert.is(state?.transferredBytes, 6);
  assert.is(state?.droppedBytes, 15);
  assert.is(state?.state, 'listening');
  assert.not.ok(dev.closedByPeer, 'the device stays connected');
});

test('persistent: the device leaves and returns, and the session goes on', async () => {
  const serial = 'JOIN-persistent-dev';
  const port = await session(serial, { persistent: true });
  const cli = await client(serial, port);
  const first = await device(serial);
  first.socket.end();
  await waitFor(async () => (await proxy.admin.session(serial))?.deviceConnected === false, 2000, 'device gone');
  cli.socket.write('nobody-home');
  await device(serial);
  const back = sockets.at(-1)!;
  const fromClient = new Received(back);
  cli.socket.write('hello');
  assert.is((await fromClient.untilLength(5)).toString(), 'hello');
  assert.not.ok(cli.closedByPeer);
});

test('non-persistent: the device closing ends the session after the client got everything sent before', async () => {
  const serial = 'JOIN-device-ends';
  const port = await session(serial);
  const cli = await client(serial, port);
  const dev = await device(serial);
  const tail = Buffer.alloc(2 * 1024 * 1024, 7);
  dev.socket.end(tail);
  const got = await cli.untilClosed(5000);
  assert.is(got.length, tail.length);
  assert.ok(got.equals(tail));
  const state = await proxy.admin.session(serial);
  assert.equal([state?.state, state?.endedReason], ['ended', 'DeviceDisconnected']);
  assert.ok(await refuses(port), 'the port is freed');
});

test('non-persistent: the client closing ends the session after the device got everything sent before', async () => {
  const serial = 'JOIN-client-ends';
  const port = await session(serial);
  const dev = await device(serial);
  const cli = await client(serial, port);
  const tail = Buffer.alloc(2 * 1024 * 1024, 9);
  cli.socket.end(tail);
  const got = await dev.untilClosed(5000);
  assert.ok(got.equals(tail), `device got ${got.length} of ${tail.length} bytes`);
  const state = await proxy.admin.session(serial);
  assert.equal([state?.state, state?.endedReason], ['ended', 'ClientDisconnected']);
  assert.ok(await refuses(port));
});

test('the timeout ends a session that no client joined', async () => {
  const serial = 'JOIN-timeout';
  const port = await session(serial, { timeoutSeconds: 1 });
  const dev = await device(serial);
  await dev.untilClosed(3000);
  const state = await proxy.admin.session(serial);
  assert.equal([state?.state, state?.endedReason], ['ended', 'ClientConnectTimeout']);
  assert.ok(await refuses(port));
});

test('a client connection cancels the timeout for good', async () => {
  const serial = 'JOIN-timeout-cancelled';
  const port = await session(serial, { timeoutSeconds: 1, persistent: true });
  const cli = await client(serial, port);
  cli.socket.end();
  await sleep(1500);
  const state = await proxy.admin.session(serial);
  assert.is(state?.state, 'listening', 'still listening after the timeout passed with no client');
  assert.not.ok(await refuses(port));
});

test('the whitelist refuses 127.0.0.1, admits 127.0.0.2 and a CIDR member; no refused byte reaches the device', async () => {
  const serial = 'JOIN-whitelist';
  const port = await session(serial, { ipWhitelist: ['127.0.0.2', '127.0.1.0/24'], persistent: true });
  const dev = await device(serial);
  const refused = new Received(await connect(port));
  sockets.push(refused.socket);
  refused.socket.write('intruder', () => {});
  await refused.untilClosed(2000);
  await sleep(100);
  assert.is(dev.length, 0, 'no byte from the refused client');
  assert.not.ok((await proxy.admin.session(serial))?.clientConnected);

  const byIp = await client(serial, port, '127.0.0.2');
  byIp.socket.write('ip');
  await dev.untilLength(2);
  const byCidr = await client(serial, port, '127.0.1.77');
  byCidr.socket.write('cidr');
  assert.is((await dev.untilLength(6)).toString(), 'ipcidr');
});

test('a newer client replaces the older one and the session goes on', async () => {
  const serial = 'JOIN-newer-client';
  const port = await session(serial);
  const dev = await device(serial);
  const older = await client(serial, port);
  const newer = new Received(await connect(port));
  sockets.push(newer.socket);
  await older.untilClosed(2000);
  await sleep(50);
  dev.socket.write('to-newer');
  assert.is((await newer.untilLength(8)).toString(), 'to-newer');
  assert.is((await proxy.admin.session(serial))?.state, 'listening', 'replacement is not the client leaving');
});

test('a newer device replaces the older one and the session goes on', async () => {
  const serial = 'JOIN-newer-device';
  const port = await session(serial);
  const cli = await client(serial, port);
  const older = await device(serial);
  const newerSocket = await connectDevice(proxy.pod.devicePort, serial);
  sockets.push(newerSocket);
  const newer = new Received(newerSocket);
  await older.untilClosed(2000);
  await sleep(50);
  cli.socket.write('to-newer');
  assert.is((await newer.untilLength(8)).toString(), 'to-newer');
  assert.is((await proxy.admin.session(serial))?.state, 'listening');
});

test('deleting a session closes both parties and frees the port', async () => {
  const serial = 'JOIN-delete';
  const port = await session(serial, { persistent: true });
  const dev = await device(serial);
  const cli = await client(serial, port);
  assert.is((await proxy.admin.delete(serial)).status, 200);
  await dev.untilClosed(2000);
  await cli.untilClosed(2000);
  assert.ok(await refuses(port));
  assert.is(await proxy.admin.session(serial), undefined);
});

test.run();
