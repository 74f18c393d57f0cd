// Two proxy pod processes configured as the chart configures them (the peer
// settings from the environment, the admin token from a file, the ordinal
// as the pod name): a device on one joins its session on the other.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { InstanceInfo } from '../../common/admin-protocol.ts';
import { connect, freePortRange, freePorts, Received, waitFor } from '../helpers/net.ts';
import { deviceOn, podHost } from '../helpers/peers.ts';
import { type Started, startNodeProcess } from '../helpers/processes.ts';
import { AdminCaller } from '../helpers/proxy.ts';

let dir: string;
let devicePort: number;
const pods: Started[] = [];
const admins: AdminCaller[] = [];
const sockets: net.Socket[] = [];

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cccp-peer-processes-'));
  writeFileSync(join(dir, 'token'), 'a-token-from-a-mounted-secret\n');
  const [device, peer] = (await freePorts(2)) as [number, number];
  devicePort = device;
  for (const ordinal of [0, 1]) {
    const socketPath = join(dir, `admin-${ordinal}.sock`);
    pods.push(
      await startNodeProcess(
        'proxy-pod/main.ts',
        {
          CCCP_ADMIN_SOCKET: socketPath,
          CCCP_ADMIN_TOKEN_FILE: join(dir, 'token'),
          CCCP_DEVICE_PORT: String(devicePort),
          CCCP_BIND_HOST: podHost(ordinal),
          CCCP_PUBLIC_HOST: `node-${ordinal}.example`,
          CCCP_PROXY_HEALTH_PORT: '0',
          CCCP_LOG_LEVEL: 'info',
          CCCP_PEER_PORT: String(peer),
          CCCP_PROXY_REPLICAS: '2',
          CCCP_POD_ORDINAL: `cccp-proxy-${ordinal}`,
          CCCP_PEER_ADDRESS: `127.0.0.1{ordinal}:${peer}`,
        },
        /peer port listening[\s\S]*proxy pod ready/,
      ),
    );
    admins.push(new AdminCaller({ socketPath }));
  }
});

test.after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(pods.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
});

test('a device on process 0 joins its session on process 1, which reports its public host', async () => {
  const serial = 'PROC-forwarded';
  const { min: port } = await freePortRange(1);
  assert.is((await admins[1]!.put(serial, { port })).status, 200);
  const client = await connect(port, { host: podHost(1) });
  sockets.push(client);
  const device = await deviceOn(podHost(0), devicePort, serial, { payload: 'hello', localAddress: '127.0.0.95' });
  sockets.push(device);
  await new Received(client).untilLength(5);
  await waitFor(async () => (await admins[1]!.session(serial))?.transferredBytes === 5, 3000, 'the count');
  const state = await admins[1]!.session(serial);
  assert.is(state?.deviceAddress, `127.0.0.95:${device.localPort}`);
  assert.is(state?.transferredBytes, 5);
  assert.is((await admins[1]!.request<InstanceInfo>('GET', '/v1/info')).body.publicHost, 'node-1.example');
});

test.run();
