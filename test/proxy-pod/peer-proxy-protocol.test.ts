// A device behind a load balancer that sends PROXY protocol headers, landing
// on one pod for a session on another: the owning pod shows the address the
// header named, not the load balancer's or the relaying pod's.
import type net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, freePortRange } from '../helpers/net.ts';
import { type PodRelease, podHost, startRelease, waitForDevice } from '../helpers/peers.ts';

let release: PodRelease;
const sockets: net.Socket[] = [];

test.before(async () => {
  release = await startRelease(2, () => ({
    proxyProtocol: { device: 'v1', sessions: 'off', trustedSources: [], headerTimeoutMs: 5000 },
  }));
});

test.after(async () => {
  for (const s of sockets) s.destroy();
  await release?.stop();
});

test("the forwarded device's address is the one its PROXY header named", async () => {
  const serial = 'PP-forwarded';
  const { min: port } = await freePortRange(1);
  assert.is((await release.pods[1]!.admin.put(serial, { port })).status, 200);
  const device = await connect(release.devicePort, { host: podHost(0) });
  sockets.push(device);
  device.write(`PROXY TCP4 198.51.100.7 203.0.113.1 40000 ${release.devicePort}\r\n${serial}\r`);
  await waitForDevice(release.pods[1]!, serial, 3000);
  assert.is((await release.pods[1]!.admin.session(serial))?.deviceAddress, '198.51.100.7:40000');
});

test.run();
