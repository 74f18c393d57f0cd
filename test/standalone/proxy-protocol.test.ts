// PROXY protocol through the whole standalone mode: the CCCP_PROXY_PROTOCOL_*
// settings reach the proxy process, and /status answers with the addresses
// the headers named, the whitelist deciding by them.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, Received, waitFor } from '../helpers/net.ts';
import { encodeV1, encodeV2 } from '../helpers/proxy-header.ts';
import { type RunningStandalone, startStandalone } from '../helpers/standalone.ts';

const test = suite('standalone: PROXY protocol');
let app: RunningStandalone;
const sockets: net.Socket[] = [];

interface Status {
  client_connected: boolean;
  device_connected: boolean;
  clients_refused: number;
  device: { address?: string };
  client: { address?: string };
}

test.before(async () => {
  app = await startStandalone({
    rangeSize: 2,
    env: { CCCP_PROXY_PROTOCOL_DEVICE: 'v2', CCCP_PROXY_PROTOCOL_SESSIONS: 'v1', CCCP_PROXY_PROTOCOL_TRUSTED: '127.0.0.1' },
  });
});

test.after(async () => {
  for (const socket of sockets) socket.destroy();
  await app?.stop();
});

async function open(port: number, bytes: Buffer): Promise<Received> {
  const socket = await connect(port);
  sockets.push(socket);
  socket.write(bytes);
  return new Received(socket);
}

const status = async (serial: string) => (await app.call(`/status?serial=${serial}`)).body as Status;

test('/status shows the headers’ addresses; the whitelist admits and refuses by them', async () => {
  const serial = 'PP-STANDALONE';
  const on = await app.call(`/on?serial=${serial}&persistent=true&ip_whitelist=203.0.113.0/24`);
  assert.is(on.status, 200, JSON.stringify(on.body));
  const port = (on.body as { port: number }).port;
  const refused = await open(port, encodeV1({ address: '198.51.100.4', port: 4000 }, { address: '127.0.0.1', port }));
  await refused.untilClosed(3000);
  const client = await open(port, encodeV1({ address: '203.0.113.9', port: 4001 }, { address: '127.0.0.1', port }));
  await waitFor(async () => (await status(serial)).client_connected, 3000, 'the client');
  const header = encodeV2({ source: { address: '192.0.2.33', port: 5000 }, destination: { address: '127.0.0.1', port: app.devicePort } });
  await open(app.devicePort, Buffer.concat([header, Buffer.from(`${serial}\r\nhello`)]));
  assert.is((await client.untilLength(5)).toString(), 'hello');
  await waitFor(async () => (await status(serial)).device_connected, 3000, 'the device');
  const facts = await status(serial);
  assert.is(facts.client.address, '203.0.113.9:4001');
  assert.is(facts.device.address, '192.0.2.33:5000');
  assert.is(facts.clients_refused, 1);
});

test.run();
