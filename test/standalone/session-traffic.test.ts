// Bytes through a session from /on, end to end: a device on the device port,
// a client on the session port, the Control API reporting on them.
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, connectDevice, Received, refuses, waitFor } from '../helpers/net.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('session traffic');
let app: RunningStandalone;
const sockets: net.Socket[] = [];

test.before(async () => {
  app = await startStandalone({ rangeSize: 5 });
});

test.after.each(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

test.after(async () => {
  await app.stop();
});

async function on(query: string): Promise<number> {
  const answer = await app.call(`/on?${query}`);
  assert.is(answer.status, 200, JSON.stringify(answer.body));
  return (answer.body as { port: number }).port;
}

/** The seed's three fields of /status (the reply carries more). */
async function status(serial: string): Promise<unknown> {
  const { device_connected, client_connected, transferred } = (await app.call(`/status?serial=${serial}`)).body as Record<string, unknown>;
  return { device_connected, client_connected, transferred };
}

async function device(serial: string): Promise<Received> {
  const socket = await connectDevice(app.devicePort, serial, '\r');
  sockets.push(socket);
  return new Received(socket);
}

async function client(port: number): Promise<Received> {
  const socket = await connect(port);
  sockets.push(socket);
  return new Received(socket);
}

test('a device and a client exchange bytes; /status shows both connected and the right transferred within one second', async () => {
  const port = await on('serial=CLD-123456&persistent=true');
  const dev = await device('CLD-123456');
  const cli = await client(port);
  await waitFor(
    async () =>
      JSON.stringify(await status('CLD-123456')) === JSON.stringify({ device_connected: true, client_connected: true, transferred: 0 }),
    1000,
    'both parties shown connected',
  );
  cli.socket.write('hello device');
  assert.is((await dev.untilLength(12)).toString(), 'hello device');
  dev.socket.write('hi client');
  assert.is((await cli.untilLength(9)).toString(), 'hi client');
  const sent = Date.now();
  await waitFor(
    async () => ((await status('CLD-123456')) as { transferred: number }).transferred === 21,
    1000,
    '/status to show 21 bytes transferred',
  );
  assert.ok(Date.now() - sent <= 1000);
  assert.is((await app.call('/off?serial=CLD-123456')).status, 200);
});

test('/on on a live session applies a new whitelist on the same port: a client from outside it is refused', async () => {
  const port = await on('serial=WL-1&persistent=true');
  const before = await client(port);
  await waitFor(
    async () => ((await status('WL-1')) as { client_connected: boolean }).client_connected,
    1000,
    'the first client to be admitted',
  );
  before.socket.destroy();
  await waitFor(
    async () => !((await status('WL-1')) as { client_connected: boolean }).client_connected,
    1000,
    'the first client to be gone',
  );
  assert.is(await on('serial=WL-1&persistent=true&ip_whitelist=10.0.0.0/8'), port, 'same port after the update');
  const outsider = await client(port);
  await outsider.untilClosed(2000);
  assert.is(((await status('WL-1')) as { client_connected: boolean }).client_connected, false);
  assert.is(await on('serial=WL-1&persistent=true&ip_whitelist=127.0.0.1'), port);
  const insider = await client(port);
  await waitFor(
    async () => ((await status('WL-1')) as { client_connected: boolean }).client_connected,
    1000,
    'a whitelisted client to be admitted',
  );
  assert.not.ok(insider.closedByPeer);
  assert.is((await app.call('/off?serial=WL-1')).status, 200);
});

test('/off closes the device and the client connection and the port refuses new connections', async () => {
  const port = await on('serial=OFF-2&persistent=true');
  const dev = await device('OFF-2');
  const cli = await client(port);
  await waitFor(
    async () => ((await status('OFF-2')) as { device_connected: boolean; client_connected: boolean }).client_connected,
    1000,
    'the client to connect',
  );
  await waitFor(async () => ((await status('OFF-2')) as { device_connected: boolean }).device_connected, 1000, 'the device to attach');
  assert.is((await app.call('/off?serial=OFF-2')).status, 200);
  await dev.untilClosed(2000);
  await cli.untilClosed(2000);
  assert.ok(await refuses(port));
  assert.is((await app.call('/off?serial=OFF-2')).status, 404);
});

test('a non-persistent session ends when the device leaves: its port is freed and /status answers 404', async () => {
  const port = await on('serial=NP-1');
  const dev = await device('NP-1');
  const cli = await client(port);
  await waitFor(async () => ((await status('NP-1')) as { client_connected: boolean }).client_connected, 1000, 'the client to connect');
  await waitFor(async () => ((await status('NP-1')) as { device_connected: boolean }).device_connected, 1000, 'the device to attach');
  dev.socket.end();
  await cli.untilClosed(3000);
  await waitFor(async () => (await app.call('/status?serial=NP-1')).status === 404, 1500, '/status to answer 404');
  assert.ok(await refuses(port));
  assert.is((await app.call('/off?serial=NP-1')).status, 404);
});

test('bulk transfers that alternate direction on one pair all arrive exact, with /status counting every byte', async () => {
  const port = await on('serial=TRAFFIC-bulk&persistent=true');
  const client = await connect(port);
  sockets.push(client);
  const dev = await device('TRAFFIC-bulk');
  dev.socket.removeAllListeners('data');
  await waitFor(async () => JSON.stringify(await status('TRAFFIC-bulk')).includes('"client_connected":true'), 2000, 'both parties');
  const size = 64 * 1024 * 1024;
  let total = 0;
  for (const [sender, receiver] of [
    [dev.socket, client],
    [client, dev.socket],
    [dev.socket, client],
    [client, dev.socket],
  ] as const) {
    const block = randomBytes(1024 * 1024);
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${received} of ${size} bytes after 30 s`)), 30_000);
      const onData = (chunk: Buffer) => {
        got.update(chunk);
        received += chunk.length;
        if (received < size) return;
        clearTimeout(timer);
        receiver.off('data', onData);
        resolve();
      };
      receiver.on('data', onData);
    });
    for (let offset = 0; offset < size; offset += block.length) {
      sent.update(block);
      if (!sender.write(block)) await new Promise((resolve) => sender.once('drain', resolve));
    }
    await arrived;
    assert.is(got.digest('hex'), sent.digest('hex'));
    total += size;
  }
  await waitFor(
    async () => ((await status('TRAFFIC-bulk')) as { transferred: number }).transferred === total,
    2000,
    `transferred to reach ${total}`,
  );
});

test.run();
