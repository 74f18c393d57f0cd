// The in-memory SessionStore: generations, deletion with a finalizer, change
// notifications, and one session for concurrent creates.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MemorySessionStore } from '../../operator/memory-session-store.ts';
import type { SessionChange } from '../../operator/session-store.ts';

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

test('telemetry sets the live fields of an Active session on its port in place, clears absent ones, and tells no subscriber', async () => {
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

test.run();
