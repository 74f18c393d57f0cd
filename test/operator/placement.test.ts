// The reconciler over several proxy pods: where new sessions go, what a
// pod's restart touches, sessions whose pod is gone, and stray copies.
// In-memory admin APIs with change feeds stand in for the pods (the cluster
// tests run real proxy processes).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { MemorySessionStore } from '../../operator/memory-session-store.ts';
import { PortAllocator } from '../../operator/port-allocator.ts';
import { Reconciler } from '../../operator/reconciler.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeProxy } from '../helpers/fake-proxy-admin.ts';

function setup(podCount = 3, portsPerPod = 4, serviceHost?: (ordinal: number) => string | undefined) {
  const clock = new FakeClock();
  const store = new MemorySessionStore({ now: () => new Date(clock.now()) });
  const proxies = Array.from({ length: podCount }, () => new FakeProxy());
  const reconciler = new Reconciler({
    store,
    pods: proxies.map((admin, i) => ({
      name: `proxy-${i}`,
      admin,
      allocator: new PortAllocator({ min: 100 + i * portsPerPod, max: 100 + (i + 1) * portsPerPod - 1 }),
      publicHost: `pod${i}.example`,
      ...(serviceHost ? { serviceHost: () => serviceHost(i) } : {}),
    })),
    logger: silentLogger(),
    clock,
    pollIntervalMs: 300,
  });
  const settle = async () => {
    for (let i = 0; i < 5; i++) {
      await clock.advance(300);
      await reconciler.queue.idle();
    }
  };
  return { clock, store, proxies, reconciler, settle };
}

const on = (store: MemorySessionStore, serial: string) => store.apply({ serial, persistent: true, ipWhitelist: [] });

test('new sessions go to the least-loaded reachable pod; status names the pod, its host and its port', async () => {
  const { store, proxies, reconciler, settle } = setup();
  await reconciler.start();
  await settle();
  for (let i = 0; i < 6; i++) await on(store, `S${i}`);
  await settle();
  const placed = await Promise.all(Array.from({ length: 6 }, (_, i) => store.get(`S${i}`)));
  const perPod = new Map<string, number>();
  for (const session of placed) {
    const { phase, proxy, host, port } = session!.status;
    assert.is(phase, 'Active');
    const ordinal = Number(proxy!.split('-')[1]);
    assert.is(host, `pod${ordinal}.example`);
    assert.ok(port! >= 100 + ordinal * 4 && port! < 104 + ordinal * 4, `port ${port} lies in ${proxy}'s slice`);
    assert.is(proxies[ordinal]!.sessions.get(session!.serial)?.port, port);
    perPod.set(proxy!, (perPod.get(proxy!) ?? 0) + 1);
  }
  assert.equal([...perPod.values()], [2, 2, 2]);
  await reconciler.stop();
});

test('a pod that is not reachable gets no new sessions; the host a pod reports wins over the configured one', async () => {
  const { store, proxies, reconciler, settle, clock } = setup(2);
  proxies[1]!.changes = async () => {
    throw new Error('down');
  };
  const realChanges = proxies[0]!.changes.bind(proxies[0]!);
  proxies[0]!.changes = async (...args) => ({ ...(await realChanges(...args)), publicHost: '10.0.0.7' });
  await reconciler.start();
  await settle();
  await clock.advance(6000);
  for (let i = 0; i < 3; i++) await on(store, `S${i}`);
  await settle();
  for (let i = 0; i < 3; i++) {
    const { proxy, host } = (await store.get(`S${i}`))!.status;
    assert.equal([proxy, host], ['proxy-0', '10.0.0.7']);
  }
  await reconciler.stop();
});

test('a pod that restarts gets its own sessions again on the same ports; the other pods see no request', async () => {
  const { store, proxies, reconciler, settle } = setup();
  await reconciler.start();
  await settle();
  for (let i = 0; i < 6; i++) await on(store, `S${i}`);
  await settle();
  const before = new Map(proxies[1]!.sessions);
  for (const proxy of proxies) proxy.calls = [];
  proxies[1]!.restart();
  await settle();
  assert.equal(proxies[0]!.calls, []);
  assert.equal(proxies[2]!.calls, []);
  assert.equal(
    [...proxies[1]!.sessions.values()].map((s) => `${s.serial}:${s.port}`).sort(),
    [...before.values()].map((s) => `${s.serial}:${s.port}`).sort(),
  );
  await reconciler.stop();
});

test('a session placed on a pod the release no longer has fails with ProxyLost', async () => {
  const { store, reconciler, settle } = setup(1);
  const { session } = await on(store, 'OLD');
  await store.writeStatus('OLD', session.uid, { phase: 'Active', proxy: 'proxy-5', host: 'h', port: 100, observedGeneration: 1 });
  await reconciler.start();
  await settle();
  const status = (await store.get('OLD'))!.status;
  assert.equal([status.phase, status.endedReason], ['Failed', 'ProxyLost']);
  assert.is(reconciler.pod('proxy-0')!.allocator.ownerOf(100), undefined, 'the port of another pod was never taken here');
  await reconciler.stop();
});

test('a copy of a session on a pod other than its own is removed there', async () => {
  const { store, proxies, reconciler, settle } = setup(2);
  await reconciler.start();
  await settle();
  await on(store, 'A');
  await settle();
  const home = (await store.get('A'))!.status.proxy;
  const other = proxies[home === 'proxy-0' ? 1 : 0]!;
  await other.putSession('A', { id: 'stale', port: 199, persistent: true, ipWhitelist: [] });
  await settle();
  await reconciler.resyncLive();
  await settle();
  assert.not.ok(other.sessions.has('A'));
  assert.is((await store.get('A'))!.status.phase, 'Active');
  await reconciler.stop();
});

test('a pod’s load-balancer address, once known, is the host /on answers; until then the configured one', async () => {
  let lb: string | undefined;
  const { store, reconciler, settle } = setup(1, 4, () => lb);
  await reconciler.start();
  await settle();
  await on(store, 'A');
  await settle();
  assert.is((await store.get('A'))!.status.host, 'pod0.example');
  lb = '203.0.113.7';
  await on(store, 'B');
  await settle();
  assert.is((await store.get('B'))!.status.host, '203.0.113.7');
  await reconciler.stop();
});

test('a session whose device already waits on a pod goes to that pod, even when it is not the least loaded', async () => {
  const { store, proxies, reconciler, settle } = setup();
  await reconciler.start();
  await settle();
  proxies[2]!.pendingDevices.add('WAITING');
  await on(store, 'FIRST');
  await settle();
  await on(store, 'WAITING');
  await settle();
  assert.is((await store.get('FIRST'))!.status.proxy, 'proxy-0');
  assert.is((await store.get('WAITING'))!.status.proxy, 'proxy-2');
  await reconciler.stop();
});

test.run();
