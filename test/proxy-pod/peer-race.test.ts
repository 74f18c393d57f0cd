// The races between a device registering on one pod and its session being
// created on another: an offer and an announcement that cross, and a newer
// registration arriving while the older one's offer is on the wire. The
// crossing is forced with a relay in front of pod 1's peer port that holds
// pod 1's answers until the test lets them go; then it is run freely.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, freePortRange, Received, sleep, waitFor } from '../helpers/net.ts';
import { PeerGate } from '../helpers/peer-gate.ts';
import { deviceOn, metricValue, type PodRelease, podHost, startRelease, waitForDevice } from '../helpers/peers.ts';

const forced = suite('crossing offer and announcement, forced');
let release: PodRelease;
let gate: PeerGate;
let ports: number[];
let nextPort = 0;
const sockets: net.Socket[] = [];

forced.before(async () => {
  // Pod 1's peer port really listens on 127.0.0.21; its address in the pattern, 127.0.0.11, is the gate.
  release = await startRelease(2, (ordinal) => (ordinal === 1 ? { peers: { bindHost: '127.0.0.21' } } : {}));
  gate = new PeerGate({ host: '127.0.0.21', port: release.peerPort });
  await gate.listen(podHost(1), release.peerPort);
  const range = await freePortRange(10);
  ports = Array.from({ length: 10 }, (_, i) => range.min + i);
});

forced.after.each(() => {
  gate.release();
  for (const s of sockets.splice(0)) s.destroy();
});

forced.after(async () => {
  await gate?.close();
  await release?.stop();
});

const pod = (ordinal: number) => release.pods[ordinal]!;

forced(
  'pod 1 declines the offer before its session exists and announces it while the answer is on its way: the device is joined',
  async () => {
    const serial = 'RACE-crossed';
    gate.mode = 'hold-answers';
    const device = await deviceOn(podHost(0), release.devicePort, serial);
    sockets.push(device);
    await waitFor(() => gate.heldAnswers > 0, 3000, "pod 1's answer to reach the gate");
    const answer = await pod(1).admin.put(serial, { port: ports[nextPort++]! });
    assert.is(answer.status, 200);
    await waitFor(
      async () => (await metricValue(pod(1), 'cccp_proxy_peer_wanted_total', { result: 'delivered' })) >= 1,
      3000,
      'the announcement to reach pod 0',
    );
    assert.is((await pod(1).admin.session(serial))?.deviceConnected, false, 'not joined yet: the first answer was no');
    gate.release();
    await waitForDevice(pod(1), serial, 3000);
    assert.is(await metricValue(pod(0), 'cccp_proxy_peer_offers_total', { result: 'declined' }), 1);
    assert.is(await metricValue(pod(0), 'cccp_proxy_peer_offers_total', { result: 'accepted' }), 1);
  },
);

forced(
  "a newer registration while the older one's offer is on the wire replaces it on the owning pod without ending the session",
  async () => {
    const serial = 'RACE-newer';
    const port = ports[nextPort++]!;
    assert.is((await pod(1).admin.put(serial, { port })).status, 200);
    const client = await connect(port, { host: podHost(1) });
    sockets.push(client);
    const atClient = new Received(client);
    gate.mode = 'hold-answers';
    const older = await deviceOn(podHost(0), release.devicePort, serial, { localAddress: '127.0.0.97' });
    sockets.push(older);
    const olderSeen = new Received(older);
    await waitFor(() => gate.heldAnswers > 0, 3000, 'the accepted answer to reach the gate');
    const newer = await deviceOn(podHost(0), release.devicePort, serial, { localAddress: '127.0.0.96' });
    sockets.push(newer);
    await olderSeen.untilClosed(3000);
    gate.release();
    await waitFor(
      async () => (await pod(1).admin.session(serial))?.deviceAddress === `127.0.0.96:${newer.localPort}`,
      3000,
      'the newer device on pod 1',
    );
    await sleep(200);
    const state = await pod(1).admin.session(serial);
    assert.is(state?.state, 'listening', 'a replacement is not the device leaving');
    newer.write('newer');
    await atClient.untilLength(5);
    assert.is(atClient.text(), 'newer');
  },
);

forced.run();

const free = suite('offer and announcement at the same moment, 50 rounds');
let three: PodRelease;
let roundPorts: number[];
const roundSockets: net.Socket[] = [];
const ROUNDS = 50;

free.before(async () => {
  three = await startRelease(3);
  const range = await freePortRange(ROUNDS);
  roundPorts = Array.from({ length: ROUNDS }, (_, i) => range.min + i);
});

free.after(async () => {
  for (const s of roundSockets) s.destroy();
  await three?.stop();
});

free('every round joins the device, whichever of registration and session creation comes first', async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const serial = `RACE-${round}`;
    const devicePod = round % 3;
    const sessionPod = (round + 1 + (round % 2)) % 3;
    const owner = three.pods[sessionPod]!;
    // Staggered by up to 2 ms either way, so both orders and the crossing in between occur.
    const skew = (round % 5) - 2;
    const [device, answer] = await Promise.all([
      sleep(Math.max(0, skew)).then(() => deviceOn(podHost(devicePod), three.devicePort, serial)),
      sleep(Math.max(0, -skew)).then(() => owner.admin.put(serial, { port: roundPorts[round]!, persistent: true })),
    ]);
    roundSockets.push(device);
    assert.is(answer.status, 200);
    await waitForDevice(owner, serial, 3000);
  }
  for (const p of three.pods) assert.is(await metricValue(p, 'cccp_proxy_pending_devices'), 0);
});

free.run();
