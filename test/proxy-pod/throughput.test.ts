// 64 MiB each way at once through a proxy pod running as its own process,
// with a client that reads slowly: bytes arrive exact and the proxy's memory
// stays bounded because backpressure reaches the fast sender.
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MiB, receiveHashed, sendHashed } from '../helpers/bulk.ts';
import { freePorts, waitFor } from '../helpers/net.ts';
import { type Started, startNodeProcess } from '../helpers/processes.ts';
import { AdminCaller, joinPair } from '../helpers/proxy.ts';

const test = suite('throughput and memory');
const EACH_WAY = 64 * MiB;
/**
 * The proxy's RSS may grow by at most this much while 128 MiB pass through
 * it. Without backpressure the slow direction alone would hold most of its
 * 64 MiB; with it, what remains is garbage not yet collected (about 30 MiB seen).
 */
const RSS_GROWTH_BOUND = 48 * MiB;

let proxy: Started;
let admin: AdminCaller;
let dir: string;
let devicePort: number;
let sessionPort: number;
const sockets: net.Socket[] = [];

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cccp-throughput-'));
  [devicePort, sessionPort] = (await freePorts(2)) as [number, number];
  proxy = await startNodeProcess(
    'proxy-pod/main.ts',
    {
      CCCP_ADMIN_SOCKET: join(dir, 'admin.sock'),
      CCCP_DEVICE_PORT: String(devicePort),
      CCCP_BIND_HOST: '127.0.0.1',
      CCCP_PROXY_HEALTH_PORT: '0',
      CCCP_LOG_LEVEL: 'info',
    },
    /proxy pod ready/,
  );
  admin = new AdminCaller({ socketPath: join(dir, 'admin.sock') });
  await waitFor(async () => (await admin.request('GET', '/v1/info').catch(() => ({ status: 0 }))).status === 200, 10_000, 'the admin API');
});

test.after(async () => {
  for (const s of sockets) s.destroy();
  await proxy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('64 MiB each way at once, slow-reading client: byte-exact, and the proxy RSS grows less than 48 MiB', async () => {
  const { client, device } = await joinPair(admin, devicePort, 'BULK-1', { port: sessionPort, persistent: true });
  sockets.push(client, device);

  const baseline = proxy.rss();
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, proxy.rss())), 50);
  try {
    const [toClient, atClient, toDevice, atDevice] = await Promise.all([
      sendHashed(device, EACH_WAY),
      receiveHashed(client, EACH_WAY, { bytesPerSecond: 16 * MiB }),
      sendHashed(client, EACH_WAY),
      receiveHashed(device, EACH_WAY),
    ]);
    assert.is(atClient, toClient, 'device → client bytes differ');
    assert.is(atDevice, toDevice, 'client → device bytes differ');
  } finally {
    clearInterval(sampler);
  }
  const growth = peak - baseline;
  console.log(
    `  proxy RSS ${(baseline / MiB).toFixed(1)} MiB at start, peak ${(peak / MiB).toFixed(1)} MiB (growth ${(growth / MiB).toFixed(1)} MiB)`,
  );
  assert.ok(growth < RSS_GROWTH_BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
  const state = await admin.session('BULK-1');
  assert.is(state?.transferredBytes, 2 * EACH_WAY);
  assert.is(state?.droppedBytes, 0);
});

test.run();
