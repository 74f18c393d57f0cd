// Devices on emulated mobile links (test/helpers/netlab.ts): the standalone
// mode runs in a network namespace like a pod, each device reaches it over
// its own link with 300 ms round trip, jitter, 2 % loss, 1 Mbit/s and
// reordering, and clients come in over a clean link.
import { createHash, randomBytes } from 'node:crypto';
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sleep, waitFor } from '../helpers/net.ts';
import { MOBILE_LINK, NetLab } from '../helpers/netlab.ts';
import { type Started, startNodeProcess } from '../helpers/processes.ts';
import { connectTo, type Endpoint } from '../soak/pair.ts';

const test = suite('mobile links');
const MiB = 1024 * 1024;
// CCCP_MOBILE_DEVICES=1 makes a quick run of the fault tests.
const DEVICES = Number(process.env.CCCP_MOBILE_DEVICES ?? 20);
const EACH_WAY = 10 * MiB;
/** Link DEVICES and DEVICES + 1: two cells for the fault tests. */
const CELL_A = DEVICES;
const CELL_B = DEVICES + 1;
const KEEPALIVE_IDLE_S = 5;
const SEND_TIMEOUT_S = Number(process.env.CCCP_TEST_SEND_TIMEOUT_S ?? 30);
/** Keepalive: idle, then 10 probes one second apart (Node 20 sets them per socket); plus the 300 ms status poll and slack. */
const KEEPALIVE_BOUND_S = KEEPALIVE_IDLE_S + 10 + 3;

let lab: NetLab | undefined;
let standalone: Started | undefined;
const sockets: net.Socket[] = [];

test.before(async () => {
  lab = await NetLab.create({ links: DEVICES + 2, shape: MOBILE_LINK, seed: 7 });
  // The kernel's own defaults inside the namespace: what Node sets per socket must win over them.
  await lab.sysctl('net.ipv4.tcp_keepalive_time', 7200);
  await lab.sysctl('net.ipv4.tcp_keepalive_intvl', 75);
  await lab.sysctl('net.ipv4.tcp_keepalive_probes', 9);
  standalone = await startNodeProcess(
    'operator/standalone.ts',
    {
      CCCP_CONTROL_PORT: '8080',
      CCCP_CONTROL_BIND_HOST: '0.0.0.0',
      CCCP_DEVICE_PORT: '9000',
      CCCP_BIND_HOST: '0.0.0.0',
      CCCP_PUBLIC_HOST: lab.nsAddr,
      CCCP_PORT_RANGE: '20000-20099',
      CCCP_LOG_LEVEL: 'warn',
      CCCP_KEEPALIVE_IDLE_S: String(KEEPALIVE_IDLE_S),
      CCCP_SEND_TIMEOUT_S: String(SEND_TIMEOUT_S),
    },
    /Session ports /,
    30_000,
    undefined,
    lab.exec,
  );
});

test.after(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await standalone?.stop();
  await lab?.destroy();
});

async function control(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://${lab!.nsAddr}:8080${path}`, { signal: AbortSignal.timeout(20_000) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const deviceVia = (link: number): Endpoint => ({ host: lab!.links[link]!.nsAddr, port: 9000, localAddress: lab!.links[link]!.hostAddr });

async function open(serial: string, persistent: boolean, link: number) {
  const on = await control(`/on?serial=${serial}&persistent=${persistent}`);
  assert.is(on.status, 200, JSON.stringify(on.body));
  const device = await connectTo(deviceVia(link));
  sockets.push(device);
  device.write(`${serial}\r\n`);
  const client = await connectTo({ host: lab!.nsAddr, port: Number(on.body.port) });
  sockets.push(client);
  await waitFor(
    async () => {
      const { body } = await control(`/status?serial=${serial}`);
      return body.device_connected === true && body.client_connected === true;
    },
    30_000,
    `${serial} to be joined`,
  );
  return { device, client };
}

/** Sends `size` random bytes with backpressure; resolves with their SHA-256. */
async function sendRandom(socket: net.Socket, size: number): Promise<string> {
  const hash = createHash('sha256');
  for (let sent = 0; sent < size; ) {
    const chunk = randomBytes(Math.min(64 * 1024, size - sent));
    hash.update(chunk);
    sent += chunk.length;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  return hash.digest('hex');
}

/** Reads `size` bytes; resolves with their SHA-256. */
function receive(socket: net.Socket, size: number): Promise<string> {
  const hash = createHash('sha256');
  let got = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      got += chunk.length;
      if (got === size) resolve(hash.digest('hex'));
      if (got > size) reject(new Error(`${got} bytes instead of ${size}`));
    });
    socket.once('close', () => got < size && reject(new Error(`closed after ${got} of ${size} bytes`)));
  });
}

/** Seconds until /status shows the device gone (or the whole session, for a non-persistent one). */
async function secondsUntilDeviceGone(serial: string, limitS: number): Promise<number> {
  const begin = Date.now();
  await waitFor(
    async () => {
      const { status, body } = await control(`/status?serial=${serial}`);
      return status === 404 || body.device_connected === false;
    },
    limitS * 1000,
    `${serial}'s device to be reported disconnected`,
  );
  return (Date.now() - begin) / 1000;
}

test(`${DEVICES} devices on their own mobile links move 10 MiB each way at once, byte-exact, with exact counters`, async () => {
  const begin = Date.now();
  const pairs = await Promise.all(Array.from({ length: DEVICES }, (_, i) => open(`MOBILE-${i}`, false, i)));
  const results = await Promise.all(
    pairs.map(async ({ device, client }) => {
      const [up, down, atClient, atDevice] = await Promise.all([
        sendRandom(device, EACH_WAY),
        sendRandom(client, EACH_WAY),
        receive(client, EACH_WAY),
        receive(device, EACH_WAY),
      ]);
      return { up, down, atClient, atDevice };
    }),
  );
  const seconds = (Date.now() - begin) / 1000;
  results.forEach((r, i) => {
    assert.is(r.atClient, r.up, `device ${i} to client: hashes differ`);
    assert.is(r.atDevice, r.down, `client to device ${i}: hashes differ`);
  });
  for (let i = 0; i < DEVICES; i++) {
    await waitFor(
      async () => (await control(`/status?serial=MOBILE-${i}`)).body.transferred === 2 * EACH_WAY,
      5000,
      `MOBILE-${i} transferred to be ${2 * EACH_WAY}`,
    );
  }
  console.log(
    `  ${DEVICES} × 10 MiB each way in ${seconds.toFixed(0)} s: ${((EACH_WAY * 8) / 1000 / seconds).toFixed(0)} kbit/s per direction per device on 1 Mbit/s links with 2 % loss`,
  );
  for (let i = 0; i < DEVICES; i++) assert.is((await control(`/off?serial=MOBILE-${i}`)).status, 200);
});

test('a blackholed device of a non-persistent session is noticed within the keepalive bound and the session ends', async () => {
  const { client } = await open('BLACKHOLE-1', false, CELL_A);
  let clientClosed = false;
  client.on('close', () => (clientClosed = true));
  await sleep(1000);
  await lab!.shape(CELL_A, { blackhole: true });
  try {
    const seconds = await secondsUntilDeviceGone('BLACKHOLE-1', 60);
    console.log(
      `  silent device noticed after ${seconds.toFixed(1)} s (keepalive idle ${KEEPALIVE_IDLE_S} s + 10 × 1 s probes; bound ${KEEPALIVE_BOUND_S} s)`,
    );
    assert.ok(seconds >= KEEPALIVE_IDLE_S, `noticed after ${seconds} s: before the idle time, so not by keepalive`);
    assert.ok(seconds <= KEEPALIVE_BOUND_S, `noticed after ${seconds} s, beyond the bound of ${KEEPALIVE_BOUND_S} s`);
    assert.is((await control('/status?serial=BLACKHOLE-1')).status, 404, 'the non-persistent session ended');
    await waitFor(() => clientClosed, 5000, 'the client to be disconnected');
  } finally {
    await lab!.shape(CELL_A, { blackhole: false });
  }
});

test('a persistent session shows its blackholed device disconnected and takes it back from another cell', async () => {
  const { client } = await open('CELL-CHANGE', true, CELL_A);
  await sleep(1000);
  await lab!.shape(CELL_A, { blackhole: true });
  try {
    const seconds = await secondsUntilDeviceGone('CELL-CHANGE', 60);
    console.log(`  persistent session: device reported disconnected after ${seconds.toFixed(1)} s`);
    assert.ok(seconds <= KEEPALIVE_BOUND_S, `noticed after ${seconds} s, beyond ${KEEPALIVE_BOUND_S} s`);
    const { status, body } = await control('/status?serial=CELL-CHANGE');
    assert.is(status, 200, 'the persistent session goes on');
    assert.is(body.client_connected, true);

    // The device comes back from its other cell, with another address.
    const device = await connectTo(deviceVia(CELL_B));
    sockets.push(device);
    device.write('CELL-CHANGE\r\n');
    await waitFor(async () => (await control('/status?serial=CELL-CHANGE')).body.device_connected === true, 20_000, 'the device back');
    const [atClient, atDevice] = [receive(client, 4096), receive(device, 4096)];
    const [up, down] = await Promise.all([sendRandom(device, 4096), sendRandom(client, 4096)]);
    assert.is(await atClient, up);
    assert.is(await atDevice, down);
  } finally {
    await lab!.shape(CELL_A, { blackhole: false });
    await control('/off?serial=CELL-CHANGE');
  }
});

test('a device that moves cells while its old connection still looks alive replaces it at once', async () => {
  const { client } = await open('MOVER', true, CELL_A);
  // The old cell goes dark; the device is already back from the new one before any keepalive could tell.
  await lab!.shape(CELL_A, { blackhole: true });
  try {
    const device = await connectTo(deviceVia(CELL_B));
    sockets.push(device);
    device.write('MOVER\r\n');
    const begin = Date.now();
    const atDevice = receive(device, 2048);
    // Bytes from the client reach the device on its new connection.
    await waitFor(async () => (await control('/status?serial=MOVER')).body.device_connected === true, 10_000, 'the new connection');
    await sleep(2000);
    const down = await sendRandom(client, 2048);
    assert.is(await atDevice, down);
    const seconds = (Date.now() - begin) / 1000;
    assert.ok(seconds < KEEPALIVE_IDLE_S + 5, `the new connection took ${seconds} s`);
  } finally {
    await lab!.shape(CELL_A, { blackhole: false });
    await control('/off?serial=MOVER');
  }
});

test('a device blackholed while the client streams to it is cut by the send timeout (keepalive is silent while data is unacknowledged)', async () => {
  const { client } = await open('UNACKED', true, CELL_A);
  let stop = false;
  // The SCADA side keeps writing; the proxy's queue toward the dead device fills up.
  const streaming = (async () => {
    while (!stop && !client.destroyed) {
      client.write(randomBytes(16 * 1024));
      while (!stop && client.writableLength > 256 * 1024) await sleep(100);
    }
  })();
  await sleep(2000);
  await lab!.shape(CELL_A, { blackhole: true });
  try {
    const seconds = await secondsUntilDeviceGone('UNACKED', 120);
    console.log(
      `  device under traffic noticed after ${seconds.toFixed(1)} s (send timeout ${SEND_TIMEOUT_S} s; keepalive alone would say nothing for about 15 minutes)`,
    );
    // Keepalive would have ended it within KEEPALIVE_BOUND_S, had it been allowed to probe.
    assert.ok(seconds > KEEPALIVE_BOUND_S + 2, `noticed after ${seconds} s: by keepalive, not by the send timeout`);
    assert.ok(seconds <= SEND_TIMEOUT_S + 10, `noticed after ${seconds} s, beyond the send timeout`);
  } finally {
    stop = true;
    await streaming;
    await lab!.shape(CELL_A, { blackhole: false });
    await control('/off?serial=UNACKED');
  }
});

test('small polls into a dead link: keepalive stays silent while they are unacknowledged, tcp_retries2 of the namespace ends it', async () => {
  const { client } = await open('POLLED', true, CELL_A);
  // A SCADA master polling every second: 12 bytes, far below any buffer, so the send timeout never runs.
  const poller = setInterval(() => client.write(Buffer.alloc(12, 1)), 1000);
  await sleep(1500);
  await lab!.shape(CELL_A, { blackhole: true });
  try {
    await sleep((KEEPALIVE_BOUND_S + 7) * 1000);
    const still = await control('/status?serial=POLLED');
    console.log(
      `  polled dead device after ${KEEPALIVE_BOUND_S + 7} s: device_connected ${String(still.body.device_connected)} (kernel default tcp_retries2 15, about 15 minutes)`,
    );
    assert.is(still.body.device_connected, true, 'keepalive probed although data was unacknowledged');
    // Fewer retransmissions before the kernel gives up: the pod's namespace, not the proxy, decides.
    await lab!.sysctl('net.ipv4.tcp_retries2', 5);
    const seconds = await secondsUntilDeviceGone('POLLED', 90);
    console.log(`  with tcp_retries2 5 in the proxy's namespace: noticed ${seconds.toFixed(1)} s later`);
    assert.ok(seconds <= 60, `noticed after ${seconds} s`);
  } finally {
    clearInterval(poller);
    await lab!.sysctl('net.ipv4.tcp_retries2', 15);
    await lab!.shape(CELL_A, { blackhole: false });
    await control('/off?serial=POLLED');
  }
});

test('a NAT that forgets idle flows: keepalive shorter than its timeout keeps the mapping; a shorter NAT timeout is noticed', async () => {
  // NAT timeout above the keepalive idle: the probes keep the mapping, the idle session survives.
  await lab!.shape(CELL_B, { natIdleS: KEEPALIVE_IDLE_S + 4 });
  try {
    const kept = await open('NAT-KEPT', true, CELL_B);
    await sleep((KEEPALIVE_IDLE_S + 4) * 3 * 1000);
    const atDevice = receive(kept.device, 1024);
    const down = await sendRandom(kept.client, 1024);
    assert.is(await atDevice, down, 'bytes still reach the device after three NAT timeouts of silence');
    assert.is((await control('/status?serial=NAT-KEPT')).body.device_connected, true);
    await control('/off?serial=NAT-KEPT');

    // NAT timeout below the keepalive idle: the mapping is gone before the first probe, which is then lost.
    await lab!.shape(CELL_B, { natIdleS: 2 });
    await open('NAT-CUT', true, CELL_B);
    const seconds = await secondsUntilDeviceGone('NAT-CUT', 60);
    console.log(`  NAT idle cut of 2 s noticed after ${seconds.toFixed(1)} s`);
    assert.ok(seconds <= KEEPALIVE_BOUND_S, `noticed after ${seconds} s`);
    await control('/off?serial=NAT-CUT');
  } finally {
    await lab!.shape(CELL_B, { natIdleS: 0 });
  }
});

test.run();
