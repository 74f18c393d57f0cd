// The informer's cache orders racing copies of ProxySessions: an older
// resourceVersion never replaces a newer one, and a deleted incarnation never
// comes back.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProxySessionResource } from '../../operator/kube/proxysession-client.ts';
import { compareResourceVersions, SessionCache } from '../../operator/kube/session-cache.ts';

const test = suite('session cache');

function resource(
  uid: string,
  resourceVersion: string,
  extra: { deleting?: boolean; finalizers?: string[]; name?: string } = {},
): ProxySessionResource {
  return {
    metadata: {
      name: extra.name ?? 'pxs-a',
      namespace: 'ns',
      uid,
      resourceVersion,
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
      ...(extra.deleting ? { deletionTimestamp: '2026-01-01T00:00:01Z' } : {}),
      finalizers: extra.finalizers ?? ['cccp.tcxn.net/port'],
    },
    spec: { serial: 'A', persistent: false, ipWhitelist: [] },
    status: {},
  };
}

test('resourceVersions order as integers, not as strings; anything else is unordered', () => {
  assert.is(compareResourceVersions('9', '10'), -1);
  assert.is(compareResourceVersions('100', '99'), 1);
  assert.is(compareResourceVersions('42', '42'), 0);
  assert.is(compareResourceVersions('123456789012345678901234567890', '123456789012345678901234567891'), -1);
  assert.is(compareResourceVersions('abc', '10'), undefined);
  assert.is(compareResourceVersions('abc', 'abc'), 0);
});

test('an older copy of the same object never replaces a newer one', () => {
  const cache = new SessionCache();
  assert.ok(cache.upsert(resource('u1', '10')));
  assert.not.ok(cache.upsert(resource('u1', '9')));
  assert.not.ok(cache.upsert(resource('u1', '10')));
  assert.is(cache.get('pxs-a')?.metadata.resourceVersion, '10');
  assert.ok(cache.upsert(resource('u1', '11')));
  assert.is(cache.get('pxs-a')?.metadata.resourceVersion, '11');
});

test('a copy fetched before the deletion arrives after it: the object stays deleted', () => {
  const cache = new SessionCache();
  cache.upsert(resource('u1', '10'));
  const inFlight = resource('u1', '11', { deleting: true });
  assert.ok(cache.remove(resource('u1', '12', { deleting: true, finalizers: [] })));
  assert.not.ok(cache.upsert(inFlight));
  assert.is(cache.get('pxs-a'), undefined);
  assert.ok(cache.isDeleted('u1'));
});

test('a write answer that shows the last finalizer removed from a deleting object is its deletion', () => {
  const cache = new SessionCache();
  cache.upsert(resource('u1', '10', { deleting: true }));
  assert.ok(cache.upsert(resource('u1', '11', { deleting: true, finalizers: [] })));
  assert.is(cache.get('pxs-a'), undefined);
  // The watch's DELETED for it, arriving later, changes nothing.
  assert.is(cache.remove(resource('u1', '11', { deleting: true, finalizers: [] })), undefined);
});

test('the deletion of an old incarnation does not drop the new one that took its name', () => {
  const cache = new SessionCache();
  cache.upsert(resource('u1', '10'));
  // The store created the new incarnation and read it back before the watch told of the old one's deletion.
  cache.upsert(resource('u2', '15'));
  assert.is(cache.remove(resource('u1', '12', { deleting: true, finalizers: [] })), undefined);
  assert.is(cache.get('pxs-a')?.metadata.uid, 'u2');
  // Nor does a stale watch event of the old incarnation replace it.
  assert.not.ok(cache.upsert(resource('u1', '11', { deleting: true })));
  assert.is(cache.get('pxs-a')?.metadata.uid, 'u2');
});

test('a relist drops what it no longer lists, but keeps copies written after it was taken', () => {
  const cache = new SessionCache();
  cache.upsert(resource('u1', '10', { name: 'one' }));
  cache.upsert(resource('u2', '30', { name: 'two' }));
  cache.upsert(resource('u3', '12', { name: 'three' }));
  const { removed, upserted } = cache.replaceAll([resource('u3', '13', { name: 'three' })], '20');
  assert.equal(
    removed.map((r) => r.metadata.uid),
    ['u1'],
  );
  assert.equal(
    upserted.map((r) => r.metadata.resourceVersion),
    ['13'],
  );
  assert.is(cache.get('one'), undefined);
  assert.is(cache.get('two')?.metadata.uid, 'u2');
  assert.ok(cache.isDeleted('u1'));
});

test('a relist does not bring back an object whose deletion is already known', () => {
  const cache = new SessionCache();
  cache.upsert(resource('u1', '10'));
  cache.upsert(resource('u1', '12', { deleting: true, finalizers: [] }));
  const { upserted } = cache.replaceAll([resource('u1', '11', { deleting: true })], '11');
  assert.equal(upserted, []);
  assert.is(cache.get('pxs-a'), undefined);
});

test('tombstones expire after their time to live', () => {
  let now = 0;
  const cache = new SessionCache({ tombstoneTtlMs: 1000, now: () => now });
  cache.remove(resource('u1', '10'));
  now = 999;
  assert.ok(cache.isDeleted('u1'));
  now = 1000;
  assert.not.ok(cache.isDeleted('u1'));
});

test.run();
