// Overload against a proxy pod running as its own process: a flood of
// connections that never register, file-descriptor exhaustion, and a client
// that never reads.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, connectDevice, freePorts, sleep, waitFor } from '../helpers/net.ts';
import { type Started, startNodeProcess } from '../helpers/processes.ts';
import { AdminCaller } from '../helpers/proxy.ts';

const test = suite('overload');
const MiB = 1024 * 1024;
const SILENT = 10_000;
/** RSS the proxy may gain while holding 10,000 silent connections. */
const SILENT_RSS_BOUND = 96 * MiB;
/** RSS the proxy may gain while a device sends 256 MiB to a client that never reads. */
const STALLED_RSS_BOUND = 48 * MiB;

const dirs: string[] = [];
const processes: Started[] = [];
const sockets: net.Socket[] = [];

test.after.each(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const p of processes.splice(0)) await p.stop();
});

test.after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function startProxyProcess(env: Record<string, string> = {}, fdLimit?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cccp-overload-'));
  dirs.push(dir);
  const [devicePort] = (await freePorts(1)) as [number];
  const socketPath = join(dir, 'admin.sock');
  const proxyEnv = {
    CCCP_ADMIN_SOCKET: socketPath,
    CCCP_DEVICE_PORT: String(devicePort),
    CCCP_BIND_HOST: '127.0.0.1',
    CCCP_PROXY_HEALTH_PORT: '0',
    ...env,
  };
  const proxy = await startNodeProcess('proxy-pod/main.ts', proxyEnv, /proxy pod ready/, 20_000, fdLimit);
  processes.push(proxy);
  return { proxy, devicePort, admin: new AdminCaller({ socketPath }) };
}

/** CPU seconds the process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function openMany(port: number, count: number): Promise<net.Socket[]> {
  const opened: net.Socket[] = [];
  for (let i = 0; i < count; i += 500) {
    const batch = await Promise.all(Array.from({ length: Math.min(500, count - i) }, () => connect(port).catch(() => undefined)));
    for (const s of batch) if (s) opened.push(s.on('error', () => {}));
  }
  return opened;
}

test(`${SILENT} silent connections: a real device still registers at once, memory stays bounded, the silent ones close at the deadline`, async () => {
  const { proxy, devicePort, admin } = await startProxyProcess({ CCCP_REGISTRATION_TIMEOUT_S: '8', CCCP_LOG_LEVEL: 'info' }).catch(
    async () => {
      throw new Error('proxy did not start');
    },
  );
  const [sessionPort] = (await freePorts(1)) as [number];
  assert.is((await admin.put('FLOOD-REAL', { port: sessionPort, persistent: true })).status, 200);
  const before = proxy.rss();
  const started = Date.now();
  const silent = await openMany(devicePort, SILENT);
  sockets.push(...silent);
  assert.is(silent.length, SILENT, 'every silent connection was accepted');
  const held = Date.now() - started;
  const rss = proxy.rss();
  const registeredAt = Date.now();
  sockets.push(await connectDevice(devicePort, 'FLOOD-REAL'));
  await waitFor(async () => (await admin.session('FLOOD-REAL'))?.deviceConnected === true, 2000, 'the real device');
  const registration = Date.now() - registeredAt;
  console.log(
    `  ${SILENT} silent connections opened in ${held} ms; proxy RSS ${(before / MiB).toFixed(0)} -> ${(rss / MiB).toFixed(0)} MiB; a real device registered in ${registration} ms`,
  );
  assert.ok(registration < 1000, `registration took ${registration} ms`);
  assert.ok(rss - before < SILENT_RSS_BOUND, `RSS grew by ${((rss - before) / MiB).toFixed(0)} MiB`);
  const closing = silent.map(
    (s) => new Promise<void>((resolve) => (s.readableEnded || s.destroyed ? resolve() : s.once('end', resolve).once('close', resolve))),
  );
  await Promise.race([Promise.all(closing), sleep(20_000)]);
  const open = silent.filter((s) => !s.readableEnded && !s.destroyed).length;
  console.log(`  all silent connections closed by the proxy ${Date.now() - started} ms after the first connected (deadline 8 s)`);
  assert.is(open, 0, `${open} silent connections still open`);
  assert.ok((await admin.session('FLOOD-REAL'))?.deviceConnected, 'the real device survived the flood');
});

test('file-descriptor exhaustion (EMFILE) is survived without a crash or a busy loop, and service resumes', async () => {
  const { proxy, devicePort, admin } = await startProxyProcess({ CCCP_LOG_LEVEL: 'info' }, 256);
  const [sessionPort] = (await freePorts(1)) as [number];
  const hog = await openMany(devicePort, 400);
  sockets.push(...hog);
  await sleep(500);
  const cpuBefore = cpuSeconds(proxy.child.pid!);
  await sleep(3000);
  const cpuUsed = cpuSeconds(proxy.child.pid!) - cpuBefore;
  console.log(`  with descriptors exhausted the proxy used ${((cpuUsed / 3) * 100).toFixed(0)}% of a core`);
  assert.ok(cpuUsed < 1.5, `busy: ${cpuUsed} CPU seconds in 3 s`);
  assert.is(proxy.child.exitCode, null, 'the proxy is still running');
  for (const s of hog) s.destroy();
  await sleep(1000);
  assert.is((await admin.put('EMFILE-AFTER', { port: sessionPort, persistent: true })).status, 200);
  const device = await connectDevice(devicePort, 'EMFILE-AFTER');
  sockets.push(device);
  await waitFor(async () => (await admin.session('EMFILE-AFTER'))?.deviceConnected === true, 3000, 'a device after the exhaustion');
});

test('a client that never reads cannot grow the proxy past the bound', async () => {
  const { proxy, devicePort, admin } = await startProxyProcess({ CCCP_LOG_LEVEL: 'info' });
  const [sessionPort] = (await freePorts(1)) as [number];
  await admin.put('STALLED', { port: sessionPort, persistent: true });
  const client = await connect(sessionPort);
  client.pause();
  sockets.push(client);
  await waitFor(async () => (await admin.session('STALLED'))?.clientConnected === true, 2000, 'the client');
  const device = await connectDevice(devicePort, 'STALLED');
  sockets.push(device);
  await waitFor(async () => (await admin.session('STALLED'))?.deviceConnected === true, 2000, 'the device');
  const before = proxy.rss();
  let peak = before;
  const chunk = Buffer.alloc(MiB, 1);
  let offered = 0;
  const deadline = Date.now() + 6000;
  // Offer 256 MiB, as fast as the device's socket takes it, for at most 6 s.
  while (offered < 256 * MiB && Date.now() < deadline) {
    offered += MiB;
    if (!device.write(chunk)) {
      const drained = await Promise.race([new Promise<boolean>((r) => device.once('drain', () => r(true))), sleep(500).then(() => false)]);
      if (!drained) device.removeAllListeners('drain');
    }
    peak = Math.max(peak, proxy.rss());
  }
  await sleep(500);
  peak = Math.max(peak, proxy.rss());
  const forwarded = (await admin.session('STALLED'))?.transferredBytes ?? 0;
  console.log(
    `  the device wrote ${(offered / MiB).toFixed(0)} MiB, the proxy forwarded ${(forwarded / MiB).toFixed(1)} MiB; RSS ${(before / MiB).toFixed(0)} -> ${(peak / MiB).toFixed(0)} MiB`,
  );
  assert.ok(peak - before < STALLED_RSS_BOUND, `RSS grew by ${((peak - before) / MiB).toFixed(0)} MiB`);
  assert.ok(forwarded < 64 * MiB, `forwarded ${forwarded} bytes to a client that reads nothing`);
});

test.run();
