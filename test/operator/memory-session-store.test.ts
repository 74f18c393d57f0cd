// The in-memory SessionStore: generations, deletion with a finalizer, change
// notifications, and one session for concurrent creates.

import v8 from 'node:v8';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SessionState } from '../../common/admin-protocol.ts';
import { MemorySessionStore } from '../../operator/memory-session-store.ts';
import { endedStatus, liveStatus, sameBesidesTraffic, TRAFFIC_FIELDS } from '../../operator/session-status.ts';
import { type ProxySession, type ProxySessionStatus, type SessionChange, STATUS_SCALARS } from '../../operator/session-store.ts';

const spec = { serial: 'S', persistent: false, ipWhitelist: [] as string[] };

test('concurrent applies for one serial create one session', async () => {
  const store = new MemorySessionStore();
  const results = await Promise.all(Array.from({ length: 20 }, () => store.apply(spec)));
  assert.equal(results.filter((r) => r.outcome === 'created').length, 1);
  assert.is(new Set(results.map((r) => r.session.uid)).size, 1);
  assert.is((await store.list()).length, 1);
});

test('the generation increments on a spec change only, not on status writes', async () => {
  const store = new MemorySessionStore();
  const { session } = await store.apply(spec);
  assert.is(session.generation, 1);
  assert.is((await store.apply(spec)).outcome, 'unchanged');
  await store.writeStatus('S', session.uid, { phase: 'Active', port: 1 });
  assert.is((await store.get('S'))?.generation, 1);
  const updated = await store.apply({ ...spec, persistent: true });
  assert.is(updated.outcome, 'updated');
  assert.is(updated.session.generation, 2);
  assert.equal(updated.session.status, { phase: 'Active', port: 1 }, 'status survives a spec update');
});

test('deleting a session with the finalizer leaves it deleting until the finalizer is removed', async () => {
  const store = new MemorySessionStore();
  const { session } = await store.apply(spec);
  assert.is(await store.delete('S'), 'deleting');
  assert.is((await store.get('S'))?.deleting, true);
  assert.is((await store.apply(spec)).outcome, 'deleting', 'no spec updates while deleting');
  assert.is(await store.setFinalizer('S', session.uid, false), undefined);
  assert.is(await store.get('S'), undefined);
});

test('deleting without the finalizer, or a stale uid, behaves like the API server', async () => {
  const store = new MemorySessionStore();
  const { session } = await store.apply(spec);
  assert.is(await store.delete('S', 'other-uid'), 'not-found');
  await store.setFinalizer('S', session.uid, false);
  assert.is(await store.delete('S', session.uid), 'deleted');
  assert.is(await store.delete('S'), 'not-found');
});

test('status writes for a gone incarnation are refused', async () => {
  const store = new MemorySessionStore();
  const { session } = await store.apply(spec);
  assert.is(await store.writeStatus('S', 'stale', { phase: 'Active' }), undefined);
  assert.ok(await store.writeStatus('S', session.uid, { phase: 'Active' }));
});

test('subscribers hear every change, and returned sessions are copies', async () => {
  const store = new MemorySessionStore();
  const changes: string[] = [];
  const unsubscribe = store.subscribe((c: SessionChange) =>
    changes.push(c.type === 'removed' ? `removed ${c.serial}` : `upserted g${c.session.generation}`),
  );
  const { session } = await store.apply(spec);
  session.spec.persistent = true;
  assert.is((await store.get('S'))?.spec.persistent, false);
  await store.apply({ ...spec, timeoutSeconds: 5 });
  await store.setFinalizer('S', session.uid, false);
  await store.delete('S');
  unsubscribe();
  await store.apply(spec);
  assert.equal(changes, ['upserted g1', 'upserted g2', 'upserted g2', 'removed S']);
});

test('telemetry sets the live fields of an Active session on its port, clears absent ones, and tells no subscriber', async () => {
  const store = new MemorySessionStore();
  const { session } = await store.apply(spec);
  assert.not.ok(store.writeTelemetry('S', session.uid, 100, { transferredBytes: 1 }), 'not Active yet');
  await store.writeStatus('S', session.uid, { phase: 'Active', port: 100, deviceAddress: '10.0.0.1:1', deviceConnected: true });
  const changes: string[] = [];
  store.subscribe((c) => changes.push(c.type));
  assert.not.ok(store.writeTelemetry('S', 'another-uid', 100, { transferredBytes: 1 }), 'another incarnation');
  assert.not.ok(store.writeTelemetry('S', session.uid, 101, { transferredBytes: 1 }), 'another port');
  assert.ok(store.writeTelemetry('S', session.uid, 100, { transferredBytes: 7, deviceConnected: false, clientConnected: true }));
  const status = (await store.get('S'))!.status;
  assert.equal(
    [status.phase, status.port, status.transferredBytes, status.deviceConnected, status.clientConnected, status.deviceAddress],
    ['Active', 100, 7, false, true, undefined],
  );
  assert.equal(changes, []);
});

// V8's own answer, through its natives syntax (enabled for this process only).
v8.setFlagsFromString('--allow-natives-syntax');
const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

function proxyState(device: boolean, client: boolean, bytes: number): SessionState {
  const side = (connected: boolean) => ({
    forwardedBytes: bytes,
    droppedBytes: 0,
    ...(connected ? { connectedSince: '2026-11-26T10:00:00.000Z', lastActivity: `2026-11-26T10:00:0${bytes % 10}.000Z` } : {}),
  });
  return {
    serial: 'S',
    id: 'uid-1',
    port: 100,
    persistent: true,
    ipWhitelist: [],
    state: 'listening',
    deviceConnected: device,
    clientConnected: client,
    ...(device ? { deviceAddress: '10.0.0.1:1' } : {}),
    ...(client ? { clientAddress: '10.0.0.2:2' } : {}),
    transferredBytes: bytes,
    droppedBytes: 0,
    device: side(device),
    client: side(client),
    clientsRefused: 0,
    listeningSince: '2026-11-26T10:00:00.000Z',
    changeSeq: bytes,
  };
}

test('kept statuses are fast-properties objects sharing one shape across sessions; counters are set in place', async () => {
  const store = new MemorySessionStore();
  // The objects the store keeps (get() returns copies): their shape is what a session costs.
  const kept = (serial: string) => (store as unknown as { sessions: Map<string, ProxySession> }).sessions.get(serial)!;
  const steps: Array<[boolean, boolean, number]> = [
    [true, false, 1],
    [true, true, 2],
    [true, true, 3],
    [false, true, 4],
    [true, true, 5],
  ];
  const serials = Array.from({ length: 50 }, (_, i) => `S${i}`);
  for (const serial of serials) {
    const { session } = await store.apply({ ...spec, serial });
    await store.writeStatus(serial, session.uid, {
      phase: 'Active',
      proxy: 'standalone',
      host: '127.0.0.1',
      port: 100,
      observedGeneration: 1,
      ...liveStatus(undefined),
      conditions: [
        { type: 'Ready', status: 'True', reason: 'Listening', message: 'listening', lastTransitionTime: '2026-11-26T10:00:00.000Z' },
      ],
    });
    for (const [device, client, bytes] of steps) {
      const before = kept(serial).status;
      assert.ok(store.writeTelemetry(serial, session.uid, 100, liveStatus(proxyState(device, client, bytes))));
      const status = kept(serial).status;
      assert.ok(hasFastProperties(status), `fast after device ${device}, client ${client}`);
      assert.is(status.transferredBytes, bytes);
      assert.is('deviceAddress' in status, device, 'an absent live field is absent, not undefined');
      assert.is(status.conditions?.length, 1);
      if (bytes === 3) assert.is(status, before, 'only counters moved: set in place');
    }
  }
  const shared = serials.filter((serial) => haveSameMap(kept(serial).status, kept('S0').status)).length;
  assert.is(shared, serials.length, 'sessions with the same fields share a shape');
  const ended = serials.map((serial) =>
    endedStatus(kept(serial), 'Deleted', proxyState(true, true, 6), new Date('2026-11-26T11:00:00.000Z')),
  );
  assert.ok(hasFastProperties(ended[0]!), 'an ended status, kept for the retention time, is fast too');
  assert.is(ended.filter((status) => haveSameMap(status, ended[0]!)).length, serials.length);
  assert.not.ok('deviceAddress' in ended[0]!);
  assert.is(ended[0]!.transferredBytes, 6);
});

test('sameBesidesTraffic: statuses that differ only in traffic fields are the same; any other field or a condition makes them differ', () => {
  const base: ProxySessionStatus = {
    ...liveStatus(proxyState(true, true, 1)),
    phase: 'Active',
    port: 100,
    conditions: [{ type: 'Ready', status: 'True', reason: 'Listening', message: 'listening', lastTransitionTime: 't0' }],
  };
  const moved = { ...liveStatus(proxyState(true, true, 9)), phase: 'Active', port: 100, conditions: base.conditions };
  assert.ok(sameBesidesTraffic(base, moved as ProxySessionStatus), 'counters and activity times moved');
  const traffic = new Set<string>(TRAFFIC_FIELDS);
  for (const field of STATUS_SCALARS.filter((f) => !traffic.has(f))) {
    const changed = { ...base, [field]: 'something else' } as ProxySessionStatus;
    assert.not.ok(sameBesidesTraffic(base, changed), field);
  }
  const { deviceAddress: _gone, ...withoutAddress } = base;
  assert.not.ok(sameBesidesTraffic(base, withoutAddress), 'a field that went');
  const otherCondition = { ...base, conditions: [{ ...base.conditions![0]!, status: 'False' as const }] };
  assert.not.ok(sameBesidesTraffic(base, otherCondition), 'a condition');
  assert.not.ok(sameBesidesTraffic(base, { ...base, conditions: undefined }), 'conditions that went');
});

test.run();
