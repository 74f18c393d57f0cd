// A release scaled up while its pods run: pods 0 and 1 were started for two
// replicas, pod 2 for three. Pod 2's offer teaches the older pods that it
// exists, so their new sessions are announced to it too.
import type net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePortRange, waitFor } from '../helpers/net.ts';
import { deviceOn, metricValue, type PodRelease, podHost, startRelease, waitForDevice } from '../helpers/peers.ts';

let release: PodRelease;
const sockets: net.Socket[] = [];

test.before(async () => {
  release = await startRelease(2);
  await release.start(2, { peers: { replicas: 3 } });
});

test.after(async () => {
  for (const s of sockets) s.destroy();
  await release?.stop();
});

test('a device waiting on the new pod joins a session created afterwards on an old pod', async () => {
  const serial = 'SCALE-up';
  const [newPod, oldPod] = [release.pods[2]!, release.pods[0]!];
  sockets.push(await deviceOn(podHost(2), release.devicePort, serial));
  await waitFor(async () => (await metricValue(newPod, 'cccp_proxy_pending_devices')) === 1, 3000, 'the device pending on pod 2');
  const { min } = await freePortRange(1);
  assert.is((await oldPod.admin.put(serial, { port: min })).status, 200);
  await waitForDevice(oldPod, serial, 3000);
});

test.run();
