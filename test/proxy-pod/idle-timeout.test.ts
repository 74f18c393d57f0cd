// The idle timeout and activity times on a manual clock, with real sockets:
// the data plane stamps nothing per chunk, so "last use" and "last activity"
// come from the activity sweep (every 250 ms) and from the idle check's own
// look at the counters. The promise: a session ends at most about a second
// after its idle limit, never before.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock } from '../helpers/fake-clock.ts';
import { freePorts, Received, waitFor } from '../helpers/net.ts';
import { joinPair, startProxy, type TestProxy } from '../helpers/proxy.ts';

const test = suite('idle timeout');
const cleanup: Array<() => unknown> = [];

test.after(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function pairOn(proxy: TestProxy, serial: string, idleTimeoutSeconds: number) {
  const [port] = (await freePorts(1)) as [number];
  const pair = await joinPair(proxy.admin, proxy.pod.devicePort, serial, { port, persistent: true, idleTimeoutSeconds });
  cleanup.push(
    () => pair.device.destroy(),
    () => pair.client.destroy(),
  );
  return { device: pair.device, client: new Received(pair.client) };
}

async function stateOf(proxy: TestProxy, serial: string) {
  return (await proxy.admin.session(serial))?.state;
}

test('traffic keeps a session alive; once it stops, the session ends after its limit, within a second, never before', async () => {
  const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
  const proxy = await startProxy({ clock });
  cleanup.push(() => proxy.stop());
  const { device, client } = await pairOn(proxy, 'IDLE-SWEEP', 10);
  await clock.advance(9000);
  device.write('still here');
  await client.untilLength(10, 2000);
  const sentAt = clock.now();
  await clock.advance(10_000 - 100);
  assert.is(await stateOf(proxy, 'IDLE-SWEEP'), 'listening', '0.1 s before the limit counted from the last byte');
  await clock.advance(100 + 1000);
  assert.ok(clock.now() - sentAt <= 11_000);
  const state = await proxy.admin.session('IDLE-SWEEP');
  assert.equal([state?.state, state?.endedReason], ['ended', 'IdleTimeout'], 'ended within a second after the limit');
});

test('bytes forwarded just before the idle check count even when no sweep has seen them yet', async () => {
  const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
  // No sweep in this test's span: only the idle check's own look at the counters can see the bytes.
  const proxy = await startProxy({ clock, sweepIntervalMs: 3_600_000 });
  cleanup.push(() => proxy.stop());
  const { device, client } = await pairOn(proxy, 'IDLE-CHECK', 10);
  await clock.advance(9900);
  device.write('x');
  await client.untilLength(1, 2000);
  await clock.advance(100);
  assert.is(await stateOf(proxy, 'IDLE-CHECK'), 'listening', 'the byte 0.1 s ago keeps it alive at the first check');
  await clock.advance(9999);
  assert.is(await stateOf(proxy, 'IDLE-CHECK'), 'listening', 'idle for less than the limit since the check saw the byte');
  await clock.advance(1);
  assert.is(await stateOf(proxy, 'IDLE-CHECK'), 'ended');
});

test('bytes dropped while the other side is absent are activity of their side but no use of the session', async () => {
  const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
  const proxy = await startProxy({ clock });
  cleanup.push(() => proxy.stop());
  const { device, client } = await pairOn(proxy, 'IDLE-DROP', 5);
  client.socket.destroy();
  await waitFor(async () => (await proxy.admin.session('IDLE-DROP'))?.clientConnected === false, 2000, 'the client to go');
  await clock.advance(3000);
  device.write('nobody listens');
  await waitFor(async () => (await proxy.admin.session('IDLE-DROP'))?.device.droppedBytes === 14, 2000, 'the dropped bytes');
  const sentAt = clock.now();
  await clock.advance(250);
  const seen = await proxy.admin.session('IDLE-DROP');
  const activity = Date.parse(seen?.device.lastActivity ?? '');
  assert.ok(activity >= sentAt && activity <= sentAt + 250, `last activity stamped by the next sweep (${seen?.device.lastActivity})`);
  await clock.advance(2000);
  assert.is(await stateOf(proxy, 'IDLE-DROP'), 'ended', 'dropped bytes do not keep the session in use');
});

test.run();
