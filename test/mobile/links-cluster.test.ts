// The cluster mode with the proxy pod in its own network namespace (as in a
// pod) and a device on an emulated mobile link: a blackholed device shows up
// as disconnected in the ProxySession's status and in /status within the
// keepalive bound, and the persistent session takes the device back from
// another address.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startRigWithCrd, TestCluster } from '../helpers/cluster.ts';
import { sleep, waitFor } from '../helpers/net.ts';
import { MOBILE_LINK, NetLab } from '../helpers/netlab.ts';
import type { Rig } from '../kube/rig.ts';
import { connectTo } from '../soak/pair.ts';

const test = suite('mobile links in cluster mode');
const KEEPALIVE_IDLE_S = 5;
/** Idle, 10 probes a second apart, then the proxy's event, the operator's status write and the watch. */
const BOUND_S = KEEPALIVE_IDLE_S + 10 + 5;

let rig: Rig | undefined;
let lab: NetLab | undefined;
let cluster: TestCluster | undefined;
let startError: unknown;
const sockets: net.Socket[] = [];

test.before(async () => {
  try {
    lab = await NetLab.create({ links: 2, shape: MOBILE_LINK, seed: 3 });
    rig = await startRigWithCrd();
    cluster = await TestCluster.start(rig, {
      namespace: 'cccp-mobile',
      portRange: { min: 20_000, max: 20_009 },
      proxyNetns: { exec: lab.exec, address: lab.nsAddr },
      proxyEnv: { CCCP_KEEPALIVE_IDLE_S: String(KEEPALIVE_IDLE_S) },
    });
    await cluster.startOperator('operator-a');
    await cluster.waitForOperatorLeader();
  } catch (err) {
    startError = err;
  }
});

test.after(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await cluster?.stop();
  await rig?.stop();
  await lab?.destroy();
});

test('a blackholed device is shown disconnected in the ProxySession and /status within the bound, and comes back from another address', async () => {
  if (!cluster || startError) throw startError ?? new Error('cluster not started');
  const c = cluster;
  const on = await c.control<{ port: number }>('/on?serial=RTU-77&persistent=true');
  assert.is(on.status, 200);
  const device = await connectTo({ host: lab!.links[0]!.nsAddr, port: c.devicePort, localAddress: lab!.links[0]!.hostAddr });
  sockets.push(device);
  device.write('RTU-77\r\n');
  const client = await connectTo({ host: lab!.nsAddr, port: on.body.port });
  sockets.push(client);
  await waitFor(async () => (await c.session('RTU-77'))?.status?.deviceConnected === true, 30_000, 'the device in the ProxySession');
  await sleep(1000);

  await lab!.shape(0, { blackhole: true });
  const begin = Date.now();
  let crdSeconds: number | undefined;
  let statusSeconds: number | undefined;
  await waitFor(
    async () => {
      const [stored, status] = await Promise.all([c.session('RTU-77'), c.control<{ device_connected: boolean }>('/status?serial=RTU-77')]);
      if (crdSeconds === undefined && stored?.status?.deviceConnected === false) crdSeconds = (Date.now() - begin) / 1000;
      if (statusSeconds === undefined && status.body.device_connected === false) statusSeconds = (Date.now() - begin) / 1000;
      return crdSeconds !== undefined && statusSeconds !== undefined;
    },
    90_000,
    'the device to be shown disconnected',
  );
  console.log(
    `  blackholed device: ProxySession deviceConnected=false after ${crdSeconds!.toFixed(1)} s, /status after ${statusSeconds!.toFixed(1)} s (bound ${BOUND_S} s)`,
  );
  assert.ok(crdSeconds! >= KEEPALIVE_IDLE_S, 'not before the keepalive idle time');
  assert.ok(crdSeconds! <= BOUND_S, `ProxySession after ${crdSeconds} s`);
  assert.ok(statusSeconds! <= BOUND_S, `/status after ${statusSeconds} s`);
  const stored = await c.session('RTU-77');
  assert.is(stored?.status?.phase, 'Active', 'the persistent session goes on');

  const moved = await connectTo({ host: lab!.links[1]!.nsAddr, port: c.devicePort, localAddress: lab!.links[1]!.hostAddr });
  sockets.push(moved);
  moved.write('RTU-77\r\n');
  await waitFor(async () => (await c.session('RTU-77'))?.status?.deviceConnected === true, 30_000, 'the device back in the ProxySession');
  const received: Buffer[] = [];
  moved.on('data', (chunk: Buffer) => received.push(chunk));
  client.write('poll');
  await waitFor(() => Buffer.concat(received).toString() === 'poll', 10_000, 'the poll at the device');
  await lab!.shape(0, { blackhole: false });
});

test.run();
