// Several proxy pods against the rig's real kube-apiserver: three proxy
// processes stand in for three pods, each on its own loopback address with
// the same ports (like pods on nodes of their own), programmed by real
// operator processes through ProxySession resources.
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { clusterFixture, type PlacedSession, podAddress, type TestCluster } from '../helpers/cluster.ts';
import { keepTraffic } from '../helpers/live-pair.ts';
import { connect, Received, refuses, sleep, waitFor } from '../helpers/net.ts';

const test = suite('several proxy pods');
const PODS = 3;
const sockets: net.Socket[] = [];

const theCluster = clusterFixture(test, { namespace: 'cccp-scale-out', rangeSize: 20, proxyPods: PODS });

test.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

/** A device on its session's own pod and a client, joined; proves bytes flow both ways. */
async function join(c: TestCluster, placed: PlacedSession): Promise<{ device: Received; client: Received }> {
  const device = new Received(await connect(c.devicePort, { host: placed.host }));
  device.socket.write(`${placed.serial}\r`);
  const client = new Received(await connect(placed.port, { host: placed.host }));
  sockets.push(device.socket, client.socket);
  await waitFor(async () => (await c.session(placed.serial))?.status?.deviceConnected === true, 10_000, `${placed.serial}'s device`);
  client.socket.write('ping');
  await device.untilLength(4, 5000);
  device.socket.write('pong');
  await client.untilLength(4, 5000);
  return { device, client };
}

test('sessions spread over the three pods; each listens on its own pod at the host /on answers; kubectl shows the pod', async () => {
  const c = theCluster();
  const placed: PlacedSession[] = [];
  for (let i = 0; i < 6; i++) placed.push(await c.place(`SPREAD-${i}`));
  const perPod = new Map<string, number>();
  for (const p of placed) {
    const ordinal = Number(p.proxy.split('-')[1]);
    assert.is(p.host, podAddress(ordinal), `${p.serial} on ${p.proxy}`);
    assert.not.ok(await refuses(p.port, p.host), `${p.serial} listens on ${p.host}:${p.port}`);
    perPod.set(p.proxy, (perPod.get(p.proxy) ?? 0) + 1);
  }
  assert.equal([...perPod.keys()].sort(), ['proxy-0', 'proxy-1', 'proxy-2']);
  assert.equal([...perPod.values()], [2, 2, 2]);
  await join(c, placed[0]!);
  const table = await c.kubectl(['get', 'pxs']);
  const row = table.stdout.split('\n').find((line) => line.includes('SPREAD-0 '))!;
  assert.match(row, new RegExp(`SPREAD-0\\s+${placed[0]!.port}\\s+Active\\s+${placed[0]!.proxy}\\s`));
  for (const p of placed) assert.is((await c.control(`/off?serial=${p.serial}`)).status, 200);
});

test('a session whose device already waits on a pod is placed on that pod', async () => {
  const c = theCluster();
  // The pods hold one session each, so without the device the next would go to proxy-0.
  const placed: PlacedSession[] = [];
  for (let i = 0; i < 3; i++) placed.push(await c.place(`FILL-${i}`));
  const device = new Received(await connect(c.devicePort, { host: podAddress(2) }));
  sockets.push(device.socket);
  device.socket.write('EARLY-BIRD\r');
  await sleep(300);
  const early = await c.place('EARLY-BIRD');
  assert.is(early.proxy, 'proxy-2');
  const client = new Received(await connect(early.port, { host: early.host }));
  sockets.push(client.socket);
  await waitFor(async () => (await c.session('EARLY-BIRD'))?.status?.deviceConnected === true, 10_000, 'the waiting device to join');
  client.socket.write('hello');
  await device.untilLength(5, 5000);
  for (const p of [...placed, early]) assert.is((await c.control(`/off?serial=${p.serial}`)).status, 200);
});

test('a device that lands on another pod is forwarded to its session’s pod: 8 MiB each way byte-exact, transferredBytes exact', async () => {
  const c = theCluster();
  const placed = await c.place('HOP-1');
  const ordinal = Number(placed.proxy.split('-')[1]);
  const landing = podAddress((ordinal + 1) % PODS);
  const device = new Received(await connect(c.devicePort, { host: landing }));
  const client = new Received(await connect(placed.port, { host: placed.host }));
  sockets.push(device.socket, client.socket);
  device.socket.write('HOP-1\r');
  await waitFor(async () => (await c.session('HOP-1'))?.status?.deviceConnected === true, 10_000, 'the forwarded device');
  const size = 8 * 1024 * 1024;
  const up = Buffer.alloc(size);
  const down = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    up[i] = (i * 31 + 7) & 0xff;
    down[i] = (i * 17 + 3) & 0xff;
  }
  client.socket.write(up);
  device.socket.write(down);
  await device.untilLength(size, 60_000);
  await client.untilLength(size, 60_000);
  assert.ok(device.bytes().equals(up), 'client → device byte-exact across the hop');
  assert.ok(client.bytes().equals(down), 'device → client byte-exact across the hop');
  await waitFor(async () => (await c.session('HOP-1'))?.status?.transferredBytes === 2 * size, 15_000, 'transferredBytes to count 16 MiB');
  const status = await c.control<{ transferred: number; device: { address?: string } }>('/status?serial=HOP-1');
  assert.is(status.body.transferred, 2 * size);
  assert.match(status.body.device.address ?? '', /^127\.0\.0\.1:/, 'the device’s own address, not the relaying pod’s');
  assert.is((await c.control('/off?serial=HOP-1')).status, 200);
});

test('kill -9 of one pod: the other pods’ sessions and transfers go on untouched; its own listen again on the same ports', async () => {
  const c = theCluster();
  const placed: PlacedSession[] = [];
  for (let i = 0; i < 6; i++) placed.push(await c.place(`KILL-${i}`));
  const victim = placed[0]!.proxy;
  const ordinal = placed[0]!.ordinal;
  const others = placed.filter((p) => p.proxy !== victim);
  const pairs = await Promise.all(others.map((p) => join(c, p)));
  // Traffic on the other pods all through the outage.
  const traffic = keepTraffic(pairs, { bothWays: false, timeoutMs: 3000 });
  await c.proxies[ordinal]!.kill9();
  await sleep(1500);
  await c.startProxy(ordinal);
  const own = placed.filter((p) => p.proxy === victim);
  await waitFor(
    async () => (await Promise.all(own.map((p) => refuses(p.port, p.host)))).every((r) => !r),
    15_000,
    'the pod’s sessions to listen again',
  );
  const rounds = await traffic.stop();
  assert.ok(rounds > 10, `${rounds} rounds of traffic on the other pods`);
  for (const p of others) {
    const stored = (await c.session(p.serial))!.status!;
    assert.equal([stored.phase, stored.proxy, stored.port, stored.deviceConnected], ['Active', p.proxy, p.port, true], p.serial);
  }
  for (const p of own) {
    const stored = (await c.session(p.serial))!.status!;
    assert.equal([stored.proxy, stored.port], [victim, p.port]);
  }
  for (const p of placed) assert.is((await c.control(`/off?serial=${p.serial}`)).status, 200);
});

test('two operator replicas: one leads, and the other takes over programming the three pods', async () => {
  const c = theCluster();
  await c.startOperator('operator-b');
  const leader = await c.waitForOperatorLeader();
  assert.is(leader, 'operator-a');
  await c.operators.get('operator-a')!.stop();
  c.operators.delete('operator-a');
  await waitFor(async () => (await c.waitForOperatorLeader()) === 'operator-b', 30_000, 'operator-b to lead');
  const placed: PlacedSession[] = [];
  for (let i = 0; i < 3; i++) placed.push(await c.place(`TAKEOVER-${i}`));
  assert.equal(placed.map((p) => p.proxy).sort(), ['proxy-0', 'proxy-1', 'proxy-2']);
  await join(c, placed[1]!);
});

test.run();
