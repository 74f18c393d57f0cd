// The reconciler against the memory store and a fake proxy admin API (the
// end-to-end tests use the real proxy). Time is a manual clock.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { silentLogger } from '../../common/log.ts';
import { MemorySessionStore } from '../../operator/memory-session-store.ts';
import { PortAllocator } from '../../operator/port-allocator.ts';
import { AdminApiError } from '../../operator/proxy-admin-client.ts';
import { Reconciler, type ReconcilerOptions } from '../../operator/reconciler.ts';
import type { ProxySessionSpec, ProxySessionStatus, SessionStore } from '../../operator/session-store.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { FakeProxy } from '../helpers/fake-proxy-admin.ts';

/**
 * A reconciler with one fake proxy pod on a fake clock. `wrapStore` puts
 * another store in front of the memory store the reconciler is given (the
 * memory store itself is returned); `reconciler` overrides its options.
 */
function setup(
  range = { min: 100, max: 102 },
  options: {
    endedRetentionMs?: number;
    store?: MemorySessionStore;
    wrapStore?: (store: MemorySessionStore) => SessionStore;
    reconciler?: Partial<ReconcilerOptions>;
  } = {},
) {
  const clock = new FakeClock();
  const store = options.store ?? new MemorySessionStore({ now: () => new Date(clock.now()) });
  const proxy = new FakeProxy();
  const syncs: string[] = [];
  const allocator = new PortAllocator({ ...range, now: () => clock.now() });
  const reconciler = new Reconciler({
    store: options.wrapStore?.(store) ?? store,
    pods: [{ name: 'proxy-0', admin: proxy, allocator, publicHost: 'proxy.example' }],
    logger: silentLogger(),
    clock,
    pollIntervalMs: 300,
    resyncIntervalMs: 30_000,
    endedRetentionMs: options.endedRetentionMs ?? 60_000,
    observeReconcile: (_seconds, result) => syncs.push(result),
    ...options.reconciler,
  });
  /** For tests that call reconcile() themselves: the view reads the proxy, but nothing is queued. */
  const viewOnly = async () => {
    reconciler.pod('proxy-0')!.view.start({ sessionChanged: () => undefined, telemetry: () => undefined, restarted: () => undefined });
    await reconciler.pod('proxy-0')!.view.refresh();
  };
  return { clock, store, proxy, allocator, reconciler, syncs, viewOnly };
}

const spec = (serial: string, extra: Partial<ProxySessionSpec> = {}): ProxySessionSpec => ({
  serial,
  persistent: false,
  ipWhitelist: [],
  ...extra,
});

test('a new session gets a port written to status before the proxy is programmed, then turns Active', async () => {
  const { store, proxy, reconciler, viewOnly } = setup();
  await viewOnly();
  const { session } = await store.apply(spec('A'));
  const writes: string[] = [];
  store.subscribe((c) => c.type === 'upserted' && writes.push(`${c.session.status.phase}:${c.session.status.port}`));
  proxy.onPut = (_serial, put) => writes.push(`PUT:${put.port}`);
  await reconciler.reconcile('A');
  assert.equal(writes, ['Pending:100', 'PUT:100', 'Active:100']);
  const after = await store.get('A');
  assert.is(after?.status.phase, 'Active');
  assert.is(after?.status.host, 'proxy.example');
  assert.is(after?.status.observedGeneration, session.generation);
  assert.is(after?.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  await reconciler.pod('proxy-0')!.view.stop();
});

test('a spec change is put to the proxy on the same port and observedGeneration follows', async () => {
  const { store, proxy, reconciler, viewOnly } = setup();
  await viewOnly();
  await store.apply(spec('A'));
  await reconciler.reconcile('A');
  const { session } = await store.apply(spec('A', { persistent: true, ipWhitelist: ['10.0.0.0/8'] }));
  await reconciler.reconcile('A');
  assert.equal(proxy.calls, ['PUT A 100', 'PUT A 100']);
  assert.is(proxy.sessions.get('A')?.persistent, true);
  const after = await store.get('A');
  assert.is(after?.status.observedGeneration, session.generation);
  assert.is(session.generation, 2);
  await reconciler.pod('proxy-0')!.view.stop();
});

test('reconciling an unchanged session does not program the proxy again', async () => {
  const { store, proxy, reconciler, viewOnly } = setup();
  await viewOnly();
  await store.apply(spec('A'));
  await reconciler.reconcile('A');
  await reconciler.reconcile('A');
  assert.equal(proxy.calls, ['PUT A 100']);
  await reconciler.pod('proxy-0')!.view.stop();
});

test('when the range is exhausted the session fails with NoAvailablePorts and the proxy is not called', async () => {
  const { store, proxy, reconciler, viewOnly } = setup({ min: 100, max: 100 });
  await viewOnly();
  await store.apply(spec('A'));
  await store.apply(spec('B'));
  await reconciler.reconcile('A');
  await reconciler.reconcile('B');
  const b = await store.get('B');
  assert.is(b?.status.phase, 'Failed');
  assert.is(b?.status.endedReason, 'NoAvailablePorts');
  assert.equal(proxy.calls, ['PUT A 100']);
  await reconciler.pod('proxy-0')!.view.stop();
});

test('a port held by a foreign process is quarantined and another one is used', async () => {
  const { store, proxy, reconciler, allocator, viewOnly } = setup();
  await viewOnly();
  proxy.foreignPorts.add(100);
  await store.apply(spec('A'));
  const result = await reconciler.reconcile('A');
  assert.equal(result, { requeueAfterMs: 0 });
  await reconciler.reconcile('A');
  assert.equal(proxy.calls, ['PUT A 100', 'PUT A 101']);
  assert.is((await store.get('A'))?.status.port, 101);
  assert.ok(allocator.isQuarantined(100));
  await reconciler.pod('proxy-0')!.view.stop();
});

test('deleting a session deletes it from the proxy, frees its port and completes the deletion', async () => {
  const { store, proxy, reconciler, allocator, viewOnly } = setup();
  await viewOnly();
  await store.apply(spec('A'));
  await reconciler.reconcile('A');
  assert.is(await store.delete('A'), 'deleting');
  await reconciler.reconcile('A');
  assert.equal(proxy.calls, ['PUT A 100', 'DELETE A']);
  assert.is(await store.get('A'), undefined);
  assert.is(allocator.ownerOf(100), undefined);
  await reconciler.pod('proxy-0')!.view.stop();
});

test('a session the proxy reports ended turns Ended with its reason, frees the port and removes the tombstone', async () => {
  const { store, proxy, reconciler, allocator, viewOnly } = setup();
  await viewOnly();
  await store.apply(spec('A'));
  await reconciler.reconcile('A');
  proxy.end('A', 'ClientConnectTimeout');
  await reconciler.pod('proxy-0')!.view.refresh();
  await reconciler.reconcile('A');
  const a = await store.get('A');
  assert.is(a?.status.phase, 'Ended');
  assert.is(a?.status.endedReason, 'ClientConnectTimeout');
  assert.is(a?.hasFinalizer, false, 'nothing left to clean up, so deletion is immediate');
  assert.is(allocator.ownerOf(100), undefined);
  assert.not.ok(proxy.sessions.has('A'));
  await reconciler.pod('proxy-0')!.view.stop();
});

test('live counters and addresses are copied from the proxy into status', async () => {
  const { store, proxy, reconciler, viewOnly } = setup();
  await viewOnly();
  await store.apply(spec('A'));
  await reconciler.reconcile('A');
  proxy.update('A', {
    deviceConnected: true,
    clientConnected: true,
    transferredBytes: 42,
    deviceAddress: '127.0.0.1:5000',
    clientAddress: '127.0.0.1:6000',
  });
  await reconciler.pod('proxy-0')!.view.refresh();
  await reconciler.reconcile('A');
  const status = (await store.get('A'))!.status;
  assert.equal(
    [status.deviceConnected, status.clientConnected, status.transferredBytes, status.deviceAddress, status.clientAddress],
    [true, true, 42, '127.0.0.1:5000', '127.0.0.1:6000'],
  );
  assert.equal(proxy.calls, ['PUT A 100'], 'counters alone do not reprogram the proxy');
  await reconciler.pod('proxy-0')!.view.stop();
});

test('the port table is rebuilt from the store before anything is allocated', async () => {
  const { store, proxy, reconciler, clock } = setup();
  const { session } = await store.apply(spec('OLD'));
  await store.writeStatus('OLD', session.uid, { phase: 'Active', host: 'proxy.example', port: 100, observedGeneration: 1 });
  await store.apply(spec('NEW'));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  assert.is((await store.get('NEW'))?.status.port, 101);
  assert.ok(proxy.calls.includes('PUT OLD 100'), 'the old session is reprogrammed on its own port');
  await reconciler.stop();
});

test('a restarted proxy (new instanceId, empty list) gets every live session again on the same port', async () => {
  const { store, proxy, reconciler, clock } = setup();
  await store.apply(spec('A'));
  await store.apply(spec('B'));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  const before = [(await store.get('A'))?.status.port, (await store.get('B'))?.status.port];
  proxy.restart();
  proxy.calls = [];
  await clock.advance(400);
  await reconciler.queue.idle();
  await clock.advance(10);
  assert.equal(proxy.calls.sort(), [`PUT A ${before[0]}`, `PUT B ${before[1]}`]);
  await reconciler.stop();
});

test('the poller notices changed counters and updates status without any other trigger', async () => {
  const { store, proxy, reconciler, clock } = setup();
  await store.apply(spec('A'));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  proxy.update('A', { transferredBytes: 7, deviceConnected: true });
  await clock.advance(350);
  await reconciler.queue.idle();
  assert.is((await store.get('A'))?.status.transferredBytes, 7);
  await reconciler.stop();
});

test('an Ended session is deleted after the retention time', async () => {
  const { store, proxy, reconciler, clock } = setup(undefined, { endedRetentionMs: 1000 });
  await store.apply(spec('A'));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  proxy.end('A', 'DeviceDisconnected');
  await clock.advance(400);
  await reconciler.queue.idle();
  assert.is((await store.get('A'))?.status.phase, 'Ended');
  await clock.advance(1200);
  await reconciler.queue.idle();
  assert.is(await store.get('A'), undefined);
  await reconciler.stop();
});

test('a session the store does not hold is removed from the proxy', async () => {
  const { proxy, reconciler, viewOnly } = setup();
  await viewOnly();
  await proxy.putSession('GHOST', { id: 'x', port: 100, persistent: false, ipWhitelist: [] });
  await reconciler.pod('proxy-0')!.view.refresh();
  await reconciler.reconcile('GHOST');
  assert.not.ok(proxy.sessions.has('GHOST'));
  await reconciler.pod('proxy-0')!.view.stop();
});

test('a proxy that keeps failing is retried with backoff, not on every poll', async () => {
  const { store, proxy, reconciler, clock } = setup();
  proxy.putSession = async (serial) => {
    proxy.calls.push(`PUT ${serial}`);
    throw new AdminApiError(500, 'internal', 'broken');
  };
  await store.apply(spec('A'));
  await reconciler.start();
  await clock.advance(3000);
  // Backoff 100, 200, 400, 800 ms: runs at about 0, 100, 300, 700, 1500; ten polls happened meanwhile.
  assert.ok(proxy.calls.length >= 4 && proxy.calls.length <= 6, `${proxy.calls.length} attempts`);
  assert.is((await store.get('A'))?.status.phase, 'Pending');
  await reconciler.stop();
});

test('a new session costs one sync and one PUT: the reconciler ignores its own status writes', async () => {
  const { store, proxy, reconciler, clock, syncs } = setup();
  await reconciler.start();
  await reconciler.pod('proxy-0')!.view.refresh();
  await reconciler.queue.idle();
  await store.apply(spec('A'));
  await reconciler.queue.idle();
  await clock.advance(1000);
  await reconciler.queue.idle();
  assert.is((await store.get('A'))?.status.phase, 'Active');
  assert.equal(syncs, ['success']);
  assert.equal(proxy.calls, ['PUT A 100']);
  await reconciler.stop();
});

test('moved counters and connects reach status from the feed without a sync or a request per session', async () => {
  const { store, proxy, reconciler, clock, syncs } = setup();
  await store.apply(spec('A'));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  syncs.length = 0;
  proxy.calls = [];
  for (let second = 1; second <= 5; second++) {
    proxy.update('A', { deviceConnected: true, transferredBytes: second * 100 });
    await clock.advance(1000);
    await reconciler.queue.idle();
    assert.is((await store.get('A'))?.status.transferredBytes, second * 100);
  }
  assert.is((await store.get('A'))?.status.deviceConnected, true);
  assert.equal(syncs, [], 'telemetry is reported, never synced');
  assert.equal(proxy.calls, [], 'no PUT, no GET');
  await reconciler.stop();
});

test('a session the proxy ends frees its port at once, before its sync writes Ended', async () => {
  const clock = new FakeClock();
  const inner = new MemorySessionStore({ now: () => new Date(clock.now()) });
  let gate: Promise<void> | undefined;
  const store = Object.assign(Object.create(inner) as MemorySessionStore, {
    writeStatus: async (...args: Parameters<MemorySessionStore['writeStatus']>) => {
      await gate;
      return inner.writeStatus(...args);
    },
  });
  const { proxy, reconciler, allocator } = setup(undefined, { store });
  await store.apply(spec('A'));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  assert.is(allocator.ownerOf(100), 'A');
  let open: () => void = () => undefined;
  gate = new Promise((resolve) => (open = resolve));
  proxy.end('A', 'DeviceDisconnected');
  await reconciler.pod('proxy-0')!.view.refresh();
  assert.is(allocator.ownerOf(100), undefined, 'the port is free while the status write waits');
  assert.is((await store.get('A'))?.status.phase, 'Active');
  open();
  await reconciler.queue.idle();
  assert.is((await store.get('A'))?.status.phase, 'Ended');
  await reconciler.stop();
});

// ---- the steps, one by one ----------------------------------------------

test('allocate: a session that owns its stored port keeps it; a new one gets the lowest free port written as Pending', async () => {
  const { store, reconciler, allocator, viewOnly } = setup();
  await viewOnly();
  const { session } = await store.apply(spec('A'));
  const first = await reconciler.allocate(session);
  assert.is(first?.port, 100);
  assert.is(first?.session.status.phase, 'Pending');
  assert.is((await store.get('A'))?.status.port, 100);
  const again = await reconciler.allocate(first!.session);
  assert.is(again?.port, 100);
  assert.is(allocator.allocatedCount, 1);
});

test('allocate: with no free port the session is Failed with NoAvailablePorts and nothing is allocated', async () => {
  const { store, reconciler, allocator, viewOnly } = setup({ min: 100, max: 100 });
  await viewOnly();
  allocator.allocate('SOMEONE');
  const { session } = await store.apply(spec('A'));
  assert.is(await reconciler.allocate(session), undefined);
  assert.is((await store.get('A'))?.status.endedReason, 'NoAvailablePorts');
  assert.is(allocator.ownerOf(100), 'SOMEONE');
});

test('program: nothing is put when the proxy already runs the spec; a moved port is deleted first; a foreign port asks to retry', async () => {
  const { store, proxy, reconciler, viewOnly } = setup();
  await viewOnly();
  const { session } = await store.apply(spec('A'));
  const put = await reconciler.program(session, reconciler.pod('proxy-0')!, 100, undefined);
  assert.is(typeof put === 'object' && put.port, 100);
  assert.is(
    await reconciler.program(session, reconciler.pod('proxy-0')!, 100, reconciler.pod('proxy-0')!.view.get('A')),
    reconciler.pod('proxy-0')!.view.get('A'),
  );
  assert.equal(proxy.calls, ['PUT A 100']);
  await reconciler.program(session, reconciler.pod('proxy-0')!, 101, reconciler.pod('proxy-0')!.view.get('A'));
  assert.equal(proxy.calls, ['PUT A 100', 'DELETE A', 'PUT A 101']);
  proxy.foreignPorts.add(102);
  assert.is(await reconciler.program(session, reconciler.pod('proxy-0')!, 102, reconciler.pod('proxy-0')!.view.get('A')), 'retry');
  await reconciler.pod('proxy-0')!.view.stop();
});

test('report: connects are written at once, counter-only changes wait for the flush rate', async () => {
  const { store, reconciler } = setup({ min: 100, max: 101 }, { reconciler: { counterFlushesPerSecond: 1 } });
  const { session } = await store.apply(spec('A'));
  const state = await new FakeProxy().putSession('A', { id: session.uid, port: 100, persistent: false, ipWhitelist: [] });
  assert.is(await reconciler.report(session, reconciler.pod('proxy-0')!, 100, state), undefined);
  let current = (await store.get('A'))!;
  assert.is(current.status.phase, 'Active');
  assert.is(
    await reconciler.report(current, reconciler.pod('proxy-0')!, 100, { ...state, transferredBytes: 5 }),
    undefined,
    'the first flush is free',
  );
  current = (await store.get('A'))!;
  await reconciler.report(current, reconciler.pod('proxy-0')!, 100, { ...state, transferredBytes: 9 });
  assert.is((await store.get('A'))?.status.transferredBytes, 5, 'the second counter write within a second waits');
  assert.is(
    await reconciler.report(current, reconciler.pod('proxy-0')!, 100, { ...state, transferredBytes: 9, clientConnected: true }),
    undefined,
  );
  assert.is((await store.get('A'))?.status.clientConnected, true, 'a connect is not held back');
});

test('counter-only writes take turns under the flush rate: every busy session gets one, and waiting costs no reports', async () => {
  let reads = 0;
  let counterWrites = 0;
  const {
    clock,
    store: inner,
    proxy,
    reconciler,
    syncs,
  } = setup(
    { min: 100, max: 199 },
    {
      wrapStore: (store) =>
        withoutTelemetryPath(store, {
          onGet: () => reads++,
          onWrite: (status) => {
            if ((status.transferredBytes ?? 0) > 0) counterWrites++;
          },
        }),
      reconciler: { counterFlushesPerSecond: 2 },
    },
  );
  const serials = Array.from({ length: 20 }, (_, i) => `S${i}`);
  for (const serial of serials) await inner.apply(spec(serial));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  for (const serial of serials) assert.is((await inner.get(serial))?.status.phase, 'Active');
  reads = 0;
  syncs.length = 0;
  const written = new Set<string>();
  for (let second = 1; second <= 12; second++) {
    for (const serial of serials) proxy.update(serial, { transferredBytes: second * 10 });
    // A periodic resync amid it: a sync refused its counter write waits like a report, it does not sync again.
    if (second === 6) await reconciler.resyncLive();
    for (let tick = 0; tick < 10; tick++) {
      await clock.advance(100);
      await reconciler.queue.idle();
      for (const serial of serials) if (((await inner.get(serial))?.status.transferredBytes ?? 0) > 0) written.add(serial);
    }
  }
  assert.ok(counterWrites <= 2 + 2 * 12, `${counterWrites} counter writes in 12 s at 2/s`);
  assert.is(written.size, serials.length, 'every session had its turn');
  // A report when a session's counters move after its write (it joins the line), one per turn, one per
  // resync; none for counters that move while it waits (287 reads when each moved counter was reported).
  assert.ok(reads <= 120, `${reads} reports and syncs`);
  assert.ok(syncs.length <= 2 * serials.length, `${syncs.length} syncs: about one per session for the resync, not one per wait`);
  await reconciler.stop();
});

/** `inner` without the in-process telemetry path, as the Kubernetes store: telemetry goes through the report step. */
function withoutTelemetryPath(
  inner: MemorySessionStore,
  hooks: { onGet?: () => void; onWrite?: (status: ProxySessionStatus) => void } = {},
): SessionStore {
  return {
    get: (serial) => {
      hooks.onGet?.();
      return inner.get(serial);
    },
    list: () => inner.list(),
    apply: (s) => inner.apply(s),
    delete: (serial, uid) => inner.delete(serial, uid),
    setFinalizer: (serial, uid, present) => inner.setFinalizer(serial, uid, present),
    subscribe: (listener) => inner.subscribe(listener),
    writeStatus: (serial, uid, status) => {
      hooks.onWrite?.(status);
      return inner.writeStatus(serial, uid, status);
    },
  };
}

test('a session waiting for its counter write still has a connect written at once, and its turn writes the counters of then', async () => {
  const {
    clock,
    store: inner,
    proxy,
    reconciler,
  } = setup(
    { min: 100, max: 101 },
    { wrapStore: (store) => withoutTelemetryPath(store), reconciler: { pollIntervalMs: 100, counterFlushesPerSecond: 1 } },
  );
  await inner.apply(spec('A'));
  await reconciler.start();
  const settle = async (ms: number) => {
    for (let t = 0; t < ms; t += 100) {
      await clock.advance(100);
      await reconciler.queue.idle();
    }
  };
  await settle(200);
  const status = async () => (await inner.get('A'))!.status;
  proxy.update('A', { transferredBytes: 10 });
  await settle(200);
  assert.is((await status()).transferredBytes, 10, 'the first counter write is free');
  proxy.update('A', { transferredBytes: 20 });
  await settle(200);
  assert.is((await status()).transferredBytes, 10, 'the second waits for its turn');
  proxy.update('A', { transferredBytes: 30, deviceConnected: true, deviceAddress: '127.0.0.1:4000' });
  await settle(200);
  assert.is((await status()).deviceConnected, true, 'a connect does not wait for the turn');
  assert.is((await status()).transferredBytes, 30);
  proxy.update('A', { transferredBytes: 40 });
  await settle(200);
  assert.is((await status()).transferredBytes, 30);
  proxy.update('A', { transferredBytes: 50 });
  await settle(1500);
  assert.is((await status()).transferredBytes, 50, 'the turn wrote the counters of its moment');
  await reconciler.stop();
});

test('the periodic resync syncs every live session once per interval, a slice a second, not all at once', async () => {
  const { clock, store, reconciler, syncs } = setup({ min: 100, max: 199 }, { reconciler: { resyncIntervalMs: 10_000 } });
  for (let i = 0; i < 50; i++) await store.apply(spec(`S${i}`));
  await reconciler.start();
  await clock.advance(100);
  await reconciler.queue.idle();
  const perSecond: number[] = [];
  for (let second = 0; second < 30; second++) {
    syncs.length = 0;
    await clock.advance(1000);
    await reconciler.queue.idle();
    perSecond.push(syncs.length);
  }
  // Nothing in the first interval (start synced everything), then 5 a second: 50 per 10 s.
  assert.equal(perSecond.slice(0, 9), [0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.ok(Math.max(...perSecond) <= 5, `at most 5 syncs a second: ${perSecond.join(' ')}`);
  assert.is(
    perSecond.slice(9, 29).reduce((a, b) => a + b, 0),
    100,
    'every session twice in two intervals',
  );
  await reconciler.stop();
});

test.run();
