// The informer's cache orders racing copies of ProxySessions: an older
// resourceVersion never replaces a newer one, and a deleted incarnation never
// comes back. Its indexes by serial and by uid always agree with the copies
// it holds (checked after every step against a scan).
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProxySessionResource } from '../../operator/kube/proxysession-client.ts';
import { compareResourceVersions, SessionCache } from '../../operator/kube/session-cache.ts';

const test = suite('session cache');

function resource(
  uid: string,
  resourceVersion: string,
  extra: { deleting?: boolean; finalizers?: string[]; name?: string; serial?: string } = {},
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
    spec: { serial: extra.serial ?? 'A', persistent: false, ipWhitelist: [] },
    status: {},
  };
}

/**
 * The indexes answer what a scan of the held copies answers, for every uid and
 * serial the cache was ever given (so a stale index entry for a dropped copy
 * shows too).
 */
function assertIndexed(cache: SessionCache, given: Iterable<ProxySessionResource>): void {
  const held = [...cache.values()];
  const uids = new Set<string>();
  const serials = new Set<string>();
  for (const r of given) {
    uids.add(r.metadata.uid);
    serials.add(r.spec.serial);
  }
  for (const uid of uids) {
    assert.is(
      cache.withUid(uid),
      held.find((r) => r.metadata.uid === uid),
      `uid ${uid}`,
    );
  }
  const byName = (a: ProxySessionResource, b: ProxySessionResource) => a.metadata.name.localeCompare(b.metadata.name);
  for (const serial of serials) {
    const indexed = [...cache.withSerial(serial).values()].sort(byName);
    const scanned = held.filter((r) => r.spec.serial === serial).sort(byName);
    assert.is(indexed.length, scanned.length, `serial ${serial}`);
    for (const [i, r] of indexed.entries()) assert.is(r, scanned[i], `serial ${serial}`);
    for (const [name, r] of cache.withSerial(serial)) assert.is(name, r.metadata.name);
  }
  assert.equal([...cache.serials()].sort(), [...new Set(held.map((r) => r.spec.serial))].sort(), 'serials');
}

/** A cache that checks its indexes after every change. */
function checkedCache(options: ConstructorParameters<typeof SessionCache>[0] = {}) {
  const cache = new SessionCache(options);
  const given: ProxySessionResource[] = [];
  return {
    cache,
    upsert(object: ProxySessionResource) {
      given.push(object);
      const changed = cache.upsert(object);
      assertIndexed(cache, given);
      return changed;
    },
    remove(object: ProxySessionResource) {
      given.push(object);
      const dropped = cache.remove(object);
      assertIndexed(cache, given);
      return dropped;
    },
    replaceAll(items: ProxySessionResource[], listVersion: string) {
      given.push(...items);
      const result = cache.replaceAll(items, listVersion);
      assertIndexed(cache, given);
      return result;
    },
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

test('a serial whose resource is replaced by a new incarnation is found under the new uid only', () => {
  const { cache, upsert, remove } = checkedCache();
  upsert(resource('u1', '10'));
  assert.is(cache.withUid('u1')?.metadata.resourceVersion, '10');
  upsert(resource('u1', '11'));
  assert.is(cache.withUid('u1')?.metadata.resourceVersion, '11', 'a newer copy of one incarnation replaces it in the index');
  // Deleted and created again under the same name before the watch told of the deletion.
  upsert(resource('u2', '15'));
  assert.is(cache.withUid('u1'), undefined);
  assert.equal(
    [...cache.withSerial('A').values()].map((r) => r.metadata.uid),
    ['u2'],
  );
  // The old incarnation's deletion, arriving late, leaves the new one indexed.
  remove(resource('u1', '12', { deleting: true, finalizers: [] }));
  assert.is(cache.withUid('u2')?.metadata.resourceVersion, '15');
  // kubectl re-creates the name for another serial: the old serial is gone from the index.
  upsert(resource('u3', '20', { serial: 'B' }));
  assert.equal([...cache.serials()], ['B']);
  assert.is(cache.withSerial('A').size, 0);
});

test('two names carrying one serial are both indexed, and deleting one keeps the other', () => {
  const { cache, upsert, remove } = checkedCache();
  upsert(resource('u1', '10', { name: 'pxs-a' }));
  upsert(resource('u2', '11', { name: 'by-hand' }));
  assert.equal([...cache.withSerial('A').keys()].sort(), ['by-hand', 'pxs-a']);
  remove(resource('u1', '12', { name: 'pxs-a', deleting: true, finalizers: [] }));
  assert.equal([...cache.withSerial('A').keys()], ['by-hand']);
  // A write answer showing the last finalizer gone is a deletion too.
  upsert(resource('u2', '13', { name: 'by-hand', deleting: true, finalizers: [] }));
  assert.is(cache.withSerial('A').size, 0);
  assert.is(cache.withUid('u2'), undefined);
  assert.equal([...cache.serials()], []);
});

test('a relist keeps the indexes consistent with what it dropped, kept and took', () => {
  const { cache, upsert, replaceAll } = checkedCache();
  upsert(resource('u1', '10', { name: 'one', serial: 'A' }));
  upsert(resource('u2', '30', { name: 'two', serial: 'B' }));
  upsert(resource('u3', '12', { name: 'three', serial: 'C' }));
  // 'three' now holds a new incarnation for another serial; 'two' was written after the list was taken.
  replaceAll([resource('u4', '18', { name: 'three', serial: 'A' }), resource('u5', '19', { name: 'four', serial: 'C' })], '20');
  assert.is(cache.withUid('u1'), undefined);
  assert.is(cache.withUid('u3'), undefined);
  assert.is(cache.withUid('u2')?.metadata.name, 'two');
  assert.equal([...cache.withSerial('A').keys()], ['three']);
  assert.equal([...cache.withSerial('C').keys()], ['four']);
  replaceAll([], '40');
  assert.equal([...cache.serials()], []);
});

test('any sequence of copies, deletions and relists leaves the indexes agreeing with the copies', () => {
  // An incarnation (uid) has one name and one serial for life; names and serials recur across incarnations.
  const incarnations = {
    u1: { name: 'pxs-a', serial: 'A' },
    u2: { name: 'pxs-a', serial: 'B' },
    u3: { name: 'pxs-b', serial: 'A' },
    u4: { name: 'by-hand', serial: 'A' },
    u5: { name: 'by-hand', serial: 'B' },
  };
  const incarnation = fc
    .record({
      uid: fc.constantFrom(...(Object.keys(incarnations) as Array<keyof typeof incarnations>)),
      resourceVersion: fc.integer({ min: 1, max: 40 }).map(String),
      gone: fc.boolean(),
    })
    .map((i) => ({ ...i, ...incarnations[i.uid] }));
  const toResource = (i: { name: string; uid: string; serial: string; resourceVersion: string; gone: boolean }) =>
    resource(i.uid, i.resourceVersion, { name: i.name, serial: i.serial, ...(i.gone ? { deleting: true, finalizers: [] } : {}) });
  const step = fc.oneof(
    fc.record({ kind: fc.constant('upsert' as const), object: incarnation }),
    fc.record({ kind: fc.constant('remove' as const), object: incarnation }),
    fc.record({
      kind: fc.constant('relist' as const),
      items: fc.uniqueArray(incarnation, { selector: (i) => i.name, maxLength: 3 }),
      listVersion: fc.integer({ min: 1, max: 40 }).map(String),
    }),
  );
  fc.assert(
    fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
      let now = 0;
      // Tombstones expire now and then, so deleted uids may come back as the sequence goes on.
      const checked = checkedCache({ tombstoneTtlMs: 5, now: () => now });
      for (const s of steps) {
        now++;
        if (s.kind === 'upsert') checked.upsert(toResource(s.object));
        else if (s.kind === 'remove') checked.remove(toResource(s.object));
        else checked.replaceAll(s.items.map(toResource), s.listVersion);
      }
    }),
    { numRuns: 500 },
  );
});

test.run();
